#pragma once

#include <string>

#include "agent/core/status.h"
#include "agent/core/unique_fd.h"

namespace nodewarden::core {

// An exclusive flock() on a file, held until destroyed. The kernel releases it
// when the process dies, so a killed holder never leaves it stuck.
class FileLock final {
 public:
  // Takes the lock, or fails with kFailedPrecondition when another process
  // holds it.
  static Result<FileLock> tryAcquire(const std::string& path);
  // Takes the lock, waiting for its holder to release it.
  static Result<FileLock> acquire(const std::string& path);

  FileLock(FileLock&&) = default;
  FileLock& operator=(FileLock&&) = default;

 private:
  explicit FileLock(UniqueFd fd) : fd_(std::move(fd)) {}
  static Result<FileLock> lock(const std::string& path, bool wait);

  UniqueFd fd_;
};

}  // namespace nodewarden::core
