#include "agent/core/atomic_file.h"

#include <dirent.h>
#include <sys/stat.h>

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>

namespace nodewarden::core {
namespace {

class AtomicFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char templ[] = "/tmp/nodewarden-atomic-XXXXXX";
    ASSERT_NE(::mkdtemp(templ), nullptr);
    dir_ = templ;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  size_t entries() const {
    return static_cast<size_t>(std::distance(std::filesystem::directory_iterator(dir_),
                                             std::filesystem::directory_iterator()));
  }

  std::string dir_;
};

TEST_F(AtomicFileTest, WritesContentAndModeAndLeavesNothingElse) {
  const std::string path = dir_ + "/config.toml";
  ASSERT_TRUE(writeFileAtomic(path, "version = 2\n", {.mode = 0640}).isOk());

  auto data = readFile(path, 1024);
  ASSERT_TRUE(data.isOk()) << data.status().message();
  EXPECT_EQ(*data, "version = 2\n");
  struct stat st;
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0640u);
  EXPECT_EQ(entries(), 1u);
}

TEST_F(AtomicFileTest, ReplacesAnExistingFileWithANewInode) {
  const std::string path = dir_ + "/f";
  ASSERT_TRUE(writeFileAtomic(path, "old", {}).isOk());
  struct stat before;
  ASSERT_EQ(::stat(path.c_str(), &before), 0);
  ASSERT_TRUE(writeFileAtomic(path, "new", {.mode = 0600}).isOk());
  struct stat after;
  ASSERT_EQ(::stat(path.c_str(), &after), 0);
  EXPECT_NE(before.st_ino, after.st_ino);
  EXPECT_EQ(*readFile(path, 16), "new");
  EXPECT_EQ(entries(), 1u);
}

TEST_F(AtomicFileTest, MissingDirectoryIsAClearError) {
  Status s = writeFileAtomic(dir_ + "/missing/f", "x", {});
  ASSERT_FALSE(s.isOk());
  EXPECT_NE(s.message().find(dir_ + "/missing"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("No such file or directory"), std::string::npos) << s.message();
}

TEST_F(AtomicFileTest, ReadRefusesFilesOverTheLimit) {
  const std::string path = dir_ + "/big";
  ASSERT_TRUE(writeFileAtomic(path, std::string(100, 'x'), {}).isOk());
  auto data = readFile(path, 99);
  ASSERT_FALSE(data.isOk());
  EXPECT_EQ(data.status().code(), Status::Code::kInvalidArgument);
}

TEST_F(AtomicFileTest, ReadTakesAFileOfExactlyTheLimit) {
  const std::string path = dir_ + "/exact";
  ASSERT_TRUE(writeFileAtomic(path, std::string(100, 'x'), {}).isOk());
  auto data = readFile(path, 100);
  ASSERT_TRUE(data.isOk()) << data.status().message();
  EXPECT_EQ(data->size(), 100u);
}

TEST_F(AtomicFileTest, ReadStopsAtTheLimitWhenTheSizeIsNotKnownAhead) {
  // /proc files report size 0 and have more to read, like a file that grows.
  auto whole = readFile("/proc/self/status", 1 << 20);
  ASSERT_TRUE(whole.isOk()) << whole.status().message();
  ASSERT_GT(whole->size(), 100u);
  auto data = readFile("/proc/self/status", 100);
  ASSERT_FALSE(data.isOk()) << data->size() << " bytes read";
  EXPECT_EQ(data.status().code(), Status::Code::kInvalidArgument);
  EXPECT_EQ(data.status().message(), "/proc/self/status is larger than 100 bytes");
}

}  // namespace
}  // namespace nodewarden::core
