#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>

#include "agent/core/atomic_file.h"

namespace nodewarden::core {
namespace {

class CopyFileAtomicTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char templ[] = "/tmp/nodewarden-copy-XXXXXX";
    ASSERT_NE(::mkdtemp(templ), nullptr);
    dir_ = templ;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  struct stat statOf(const std::string& path) const {
    struct stat st {};
    EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
    return st;
  }

  std::string dir_;
};

TEST_F(CopyFileAtomicTest, CopiesContentWithTheGivenAttributes) {
  const std::string from = dir_ + "/from", to = dir_ + "/to";
  const std::string content(5'000'000, 'x');
  ASSERT_TRUE(writeFileAtomic(from, content, {.mode = 0600}));

  Status copied = copyFileAtomic(from, to, {.mode = 0750, .uid = ::getuid(), .gid = ::getgid()});

  ASSERT_TRUE(copied) << copied.message();
  EXPECT_EQ(*readFile(to, 10'000'000), content);
  EXPECT_EQ(statOf(to).st_mode & 07777, 0750u);
  EXPECT_EQ(statOf(to).st_uid, ::getuid());
  EXPECT_EQ(statOf(from).st_mode & 07777, 0600u) << "the source is left as it was";
}

TEST_F(CopyFileAtomicTest, ReplacesTheTargetWithANewInodeAndLeavesNothingElse) {
  const std::string from = dir_ + "/from", to = dir_ + "/to";
  ASSERT_TRUE(writeFileAtomic(from, "new", {}));
  ASSERT_TRUE(writeFileAtomic(to, "old content", {}));
  const ino_t before = statOf(to).st_ino;

  ASSERT_TRUE(copyFileAtomic(from, to, {}));

  EXPECT_NE(statOf(to).st_ino, before);
  EXPECT_EQ(*readFile(to, 64), "new");
  size_t entries = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir_)) {
    (void)entry;
    ++entries;
  }
  EXPECT_EQ(entries, 2u);
}

TEST_F(CopyFileAtomicTest, AMissingSourceLeavesTheTargetAlone) {
  const std::string to = dir_ + "/to";
  ASSERT_TRUE(writeFileAtomic(to, "kept", {}));

  Status copied = copyFileAtomic(dir_ + "/missing", to, {});

  ASSERT_FALSE(copied);
  EXPECT_EQ(copied.message().rfind("open " + dir_ + "/missing: ", 0), 0u) << copied.message();
  EXPECT_EQ(*readFile(to, 64), "kept");
}

// copy_file_range may refuse to cross filesystems; the copy still happens.
TEST_F(CopyFileAtomicTest, CopiesAcrossFilesystems) {
  struct stat shm {};
  if (::stat("/dev/shm", &shm) < 0 || shm.st_dev == statOf(dir_).st_dev) {
    GTEST_SKIP() << "no second filesystem at /dev/shm";
  }
  char templ[] = "/dev/shm/nodewarden-copy-XXXXXX";
  ASSERT_NE(::mkdtemp(templ), nullptr);
  const std::string from = std::string(templ) + "/from";
  ASSERT_TRUE(writeFileAtomic(from, std::string(100'000, 'y'), {}));

  Status copied = copyFileAtomic(from, dir_ + "/to", {});

  std::filesystem::remove_all(templ);
  ASSERT_TRUE(copied) << copied.message();
  EXPECT_EQ(*readFile(dir_ + "/to", 200'000), std::string(100'000, 'y'));
}

}  // namespace
}  // namespace nodewarden::core
