#include "agent/core/file_lock.h"

#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>

namespace nodewarden::core {
namespace {

// flock() locks belong to open file descriptions, so a second open in the same
// process conflicts just as another process would.
TEST(FileLockTest, SecondHolderIsRefusedUntilTheFirstReleases) {
  char dir[] = "/tmp/nodewarden-lock-XXXXXX";
  ASSERT_NE(::mkdtemp(dir), nullptr);
  const std::string path = std::string(dir) + "/converge.lock";
  {
    auto first = FileLock::tryAcquire(path);
    ASSERT_TRUE(first.isOk()) << first.status().message();
    auto second = FileLock::tryAcquire(path);
    ASSERT_FALSE(second.isOk());
    EXPECT_EQ(second.status().code(), Status::Code::kFailedPrecondition);
    EXPECT_NE(second.status().message().find("locked by another process"), std::string::npos);
  }
  EXPECT_TRUE(FileLock::tryAcquire(path).isOk());
  std::filesystem::remove_all(dir);
}

TEST(FileLockTest, AKilledHolderReleasesTheLock) {
  char dir[] = "/tmp/nodewarden-lock-XXXXXX";
  ASSERT_NE(::mkdtemp(dir), nullptr);
  const std::string path = std::string(dir) + "/converge.lock";
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    auto held = FileLock::acquire(path);
    (void)!::write(ready[1], "x", 1);
    ::pause();
    ::_exit(0);
  }
  char c;
  ASSERT_EQ(::read(ready[0], &c, 1), 1);
  EXPECT_FALSE(FileLock::tryAcquire(path).isOk());
  ::kill(child, SIGKILL);
  ::waitpid(child, nullptr, 0);
  EXPECT_TRUE(FileLock::tryAcquire(path).isOk());
  ::close(ready[0]);
  ::close(ready[1]);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace nodewarden::core
