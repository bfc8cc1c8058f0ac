// Files and directories that drifted from their desired state after a converge.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>

#include "tests/unit/converge/converge_test_support.h"

namespace nodewarden::converge::test {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

constexpr std::string_view kConfigState = R"(
directories:
  - path: /etc/app
    mode: "0750"
files:
  - path: /etc/app/app.conf
    content: "listen = 8080\n"
    mode: "0640"
)";

class FilesTest : public ConvergeTest {
 protected:
  void SetUp() override {
    ASSERT_EQ(converge(kConfigState).exitCode(), 2);
    fake_.clearCalls();
  }
};

TEST_F(FilesTest, EditedContentIsRewritten) {
  write("/etc/app/app.conf", "listen = 1\n", 0640);

  Plan planned = plan(kConfigState);
  EXPECT_THAT(actions(planned.changes), ElementsAre("update file /etc/app/app.conf"));
  EXPECT_EQ(planned.changes[0].detail, "content");
  Report report = apply(std::move(planned));

  EXPECT_EQ(read("/etc/app/app.conf"), "listen = 8080\n");
  EXPECT_EQ(modeOf("/etc/app/app.conf"), 0640u);
  EXPECT_EQ(report.exitCode(), 2);
  EXPECT_TRUE(plan(kConfigState).empty());
}

TEST_F(FilesTest, ContentOfTheSameSizeIsComparedByBytes) {
  write("/etc/app/app.conf", "listen = 8081\n", 0640);

  Plan planned = plan(kConfigState);

  EXPECT_THAT(actions(planned.changes), ElementsAre("update file /etc/app/app.conf"));
  EXPECT_EQ(planned.changes[0].detail, "content");
}

TEST_F(FilesTest, ContentAndModeDriftAreBothNamed) {
  write("/etc/app/app.conf", "listen = 1\n", 0666);

  Plan planned = plan(kConfigState);
  ASSERT_THAT(actions(planned.changes), ElementsAre("update file /etc/app/app.conf"));
  EXPECT_EQ(planned.changes[0].detail, "content, mode 0666 -> 0640");
  apply(std::move(planned));

  EXPECT_EQ(read("/etc/app/app.conf"), "listen = 8080\n");
  EXPECT_EQ(modeOf("/etc/app/app.conf"), 0640u);
}

TEST_F(FilesTest, ModeDriftIsFixedInPlace) {
  ASSERT_EQ(::chmod(hostPath("/etc/app/app.conf").c_str(), 0666), 0);
  const struct stat before = statOf("/etc/app/app.conf");

  Plan planned = plan(kConfigState);
  ASSERT_THAT(actions(planned.changes), ElementsAre("update file /etc/app/app.conf"));
  EXPECT_EQ(planned.changes[0].detail, "mode 0666 -> 0640");
  EXPECT_EQ(apply(std::move(planned)).exitCode(), 2);

  const struct stat after = statOf("/etc/app/app.conf");
  EXPECT_EQ(after.st_ino, before.st_ino) << "the file was replaced, not changed in place";
  EXPECT_EQ(after.st_mode & 07777, 0640u);
  EXPECT_EQ(read("/etc/app/app.conf"), "listen = 8080\n");
}

TEST_F(FilesTest, DirectoryModeDriftIsFixedInPlace) {
  ASSERT_EQ(::chmod(hostPath("/etc/app").c_str(), 0777), 0);
  const ino_t inode = statOf("/etc/app").st_ino;

  Plan planned = plan(kConfigState);
  ASSERT_THAT(actions(planned.changes), ElementsAre("update directory /etc/app"));
  EXPECT_EQ(planned.changes[0].detail, "mode 0777 -> 0750");
  apply(std::move(planned));

  EXPECT_EQ(statOf("/etc/app").st_ino, inode);
  EXPECT_EQ(modeOf("/etc/app"), 0750u);
  EXPECT_EQ(read("/etc/app/app.conf"), "listen = 8080\n");
}

TEST_F(FilesTest, DeletedFileIsRecreated) {
  std::filesystem::remove(hostPath("/etc/app/app.conf"));

  Plan planned = plan(kConfigState);
  EXPECT_THAT(actions(planned.changes), ElementsAre("create file /etc/app/app.conf"));
  apply(std::move(planned));

  EXPECT_EQ(read("/etc/app/app.conf"), "listen = 8080\n");
  EXPECT_EQ(modeOf("/etc/app/app.conf"), 0640u);
}

TEST_F(FilesTest, DeletedDirectoryIsRecreatedBeforeItsFiles) {
  std::filesystem::remove_all(hostPath("/etc/app"));

  Plan planned = plan(kConfigState);
  EXPECT_THAT(actions(planned.changes),
              ElementsAre("create directory /etc/app", "create file /etc/app/app.conf"));
  EXPECT_EQ(apply(std::move(planned)).failed(), 0u);

  EXPECT_EQ(modeOf("/etc/app"), 0750u);
  EXPECT_EQ(read("/etc/app/app.conf"), "listen = 8080\n");
}

TEST_F(FilesTest, AbsentFileIsDeleted) {
  write("/etc/app/old.conf", "stale");
  constexpr std::string_view kState = R"(
files:
  - path: /etc/app/old.conf
    ensure: absent
  - path: /etc/app/never-there.conf
    ensure: absent
)";

  Plan planned = plan(kState);
  EXPECT_THAT(actions(planned.changes), ElementsAre("delete file /etc/app/old.conf"));
  EXPECT_EQ(apply(std::move(planned)).exitCode(), 2);

  EXPECT_FALSE(exists("/etc/app/old.conf"));
  EXPECT_TRUE(exists("/etc/app/app.conf"));
  EXPECT_TRUE(plan(kState).empty());
}

TEST_F(FilesTest, AbsentDirectoryIsRemovedAfterTheFilesInIt) {
  write("/var/lib/old/cache/blob", "x");
  write("/var/lib/old/state.db", "y");
  // Directories first and the parent before its child: the plan must still
  // empty each directory before removing it.
  constexpr std::string_view kState = R"(
directories:
  - path: /var/lib/old
    ensure: absent
  - path: /var/lib/old/cache
    ensure: absent
files:
  - path: /var/lib/old/cache/blob
    ensure: absent
  - path: /var/lib/old/state.db
    ensure: absent
)";

  Plan planned = plan(kState);
  EXPECT_THAT(
      actions(planned.changes),
      ElementsAre("delete file /var/lib/old/cache/blob", "delete file /var/lib/old/state.db",
                  "delete directory /var/lib/old/cache", "delete directory /var/lib/old"));
  Report report = apply(std::move(planned));

  EXPECT_EQ(report.failed(), 0u);
  EXPECT_FALSE(exists("/var/lib/old"));
  EXPECT_TRUE(exists("/var/lib"));
}

TEST_F(FilesTest, FileWithoutContentIsCreatedEmptyWhenMissing) {
  constexpr std::string_view kState = R"(
files:
  - path: /var/log/app/audit.log
    mode: "0600"
)";

  Plan planned = plan(kState);
  EXPECT_THAT(actions(planned.changes), ElementsAre("create file /var/log/app/audit.log"));
  EXPECT_EQ(planned.changes[0].detail, "mode 0600, 0 bytes");
  apply(std::move(planned));

  EXPECT_EQ(read("/var/log/app/audit.log"), "");
  EXPECT_EQ(modeOf("/var/log/app/audit.log"), 0600u);
  EXPECT_TRUE(plan(kState).empty());
}

TEST_F(FilesTest, FileWithoutContentKeepsWhatItHolds) {
  write("/var/log/app/audit.log", "written by the app\n", 0644);
  const ino_t inode = statOf("/var/log/app/audit.log").st_ino;
  constexpr std::string_view kState = R"(
files:
  - path: /var/log/app/audit.log
    mode: "0600"
)";

  Plan planned = plan(kState);
  ASSERT_THAT(actions(planned.changes), ElementsAre("update file /var/log/app/audit.log"));
  EXPECT_EQ(planned.changes[0].detail, "mode 0644 -> 0600");
  apply(std::move(planned));

  EXPECT_EQ(read("/var/log/app/audit.log"), "written by the app\n");
  EXPECT_EQ(modeOf("/var/log/app/audit.log"), 0600u);
  EXPECT_EQ(statOf("/var/log/app/audit.log").st_ino, inode);

  // The app keeps writing: that is not drift.
  write("/var/log/app/audit.log", "written by the app\nand more\n", 0600);
  EXPECT_TRUE(plan(kState).empty());
}

TEST_F(FilesTest, UnmanagedModeIsKeptWhenContentIsRewritten) {
  write("/etc/app/plain.conf", "old\n", 0604);
  constexpr std::string_view kState = R"(
files:
  - path: /etc/app/plain.conf
    content: "new\n"
)";

  Plan planned = plan(kState);
  ASSERT_THAT(actions(planned.changes), ElementsAre("update file /etc/app/plain.conf"));
  EXPECT_EQ(planned.changes[0].detail, "content");
  apply(std::move(planned));

  EXPECT_EQ(read("/etc/app/plain.conf"), "new\n");
  EXPECT_EQ(modeOf("/etc/app/plain.conf"), 0604u);
}

TEST_F(FilesTest, NoOpLeavesFilesAlone) {
  const auto before = snapshot();
  Plan planned = plan(kConfigState);
  EXPECT_THAT(actions(planned.changes), IsEmpty());
  EXPECT_EQ(apply(std::move(planned)).exitCode(), 0);
  EXPECT_EQ(snapshot(), before);
}

}  // namespace
}  // namespace nodewarden::converge::test
