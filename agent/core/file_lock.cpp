#include "agent/core/file_lock.h"

#include <fcntl.h>
#include <sys/file.h>

#include <cerrno>

namespace nodewarden::core {

Result<FileLock> FileLock::tryAcquire(const std::string& path) { return lock(path, false); }

Result<FileLock> FileLock::acquire(const std::string& path) { return lock(path, true); }

Result<FileLock> FileLock::lock(const std::string& path, bool wait) {
  UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  if (!fd.isValid()) return Status::fromErrno(errno, "open " + path);
  while (::flock(fd.get(), LOCK_EX | (wait ? 0 : LOCK_NB)) < 0) {
    if (errno == EINTR) continue;
    if (errno == EWOULDBLOCK) {
      return Status::failedPrecondition(path + " is locked by another process");
    }
    return Status::fromErrno(errno, "lock " + path);
  }
  return FileLock(std::move(fd));
}

}  // namespace nodewarden::core
