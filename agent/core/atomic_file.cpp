#include "agent/core/atomic_file.h"

#include <fcntl.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <functional>
#include <random>

#include "agent/core/paths.h"
#include "agent/core/unique_fd.h"

namespace nodewarden::core {

namespace {

Status writeAll(int fd, std::string_view data, const std::string& path) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status::fromErrno(errno, "write " + path);
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return Status::ok();
}

std::string temporaryName(const std::string& path) {
  static thread_local std::mt19937_64 random{std::random_device{}()};
  auto slash = path.rfind('/');
  return path.substr(0, slash + 1) + std::string(kTemporaryFilePrefix) +
         std::to_string(random() % 1'000'000'000) + "." + path.substr(slash + 1);
}

// An unnamed file in `directory` when the filesystem can make one; otherwise
// a named temporary, which a crash could leave behind (never the target).
Result<UniqueFd> openTemporary(const std::string& directory, const std::string& path,
                               std::string& namedTemporary) {
  UniqueFd fd(::open(directory.c_str(), O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600));
  if (fd.isValid()) return fd;
  if (errno != EOPNOTSUPP && errno != EISDIR) {
    return Status::fromErrno(errno, "create temporary file in " + directory);
  }
  namedTemporary = temporaryName(path);
  fd.reset(::open(namedTemporary.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600));
  if (!fd.isValid()) return Status::fromErrno(errno, "create " + namedTemporary);
  return fd;
}

}  // namespace

Status syncParentDirectory(const std::string& path) {
  const std::string directory = parentDirectory(path);
  UniqueFd fd(::open(directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd.isValid()) return Status::fromErrno(errno, "open " + directory);
  if (::fsync(fd.get()) < 0) return Status::fromErrno(errno, "fsync " + directory);
  return Status::ok();
}

Status removePath(const std::string& path) {
  if (::remove(path.c_str()) < 0) {
    if (errno == ENOENT) return Status::ok();
    return Status::fromErrno(errno, "delete " + path);
  }
  return syncParentDirectory(path);
}

namespace {

// Copies what is left of `from` to `to`, in the kernel.
Status copyAll(int from, int to, const std::string& fromPath, const std::string& toPath) {
  constexpr size_t kChunk = size_t{1} << 30;
  bool copyRange = true;
  while (true) {
    ssize_t n = copyRange ? ::copy_file_range(from, nullptr, to, nullptr, kChunk, 0)
                          : ::sendfile(to, from, nullptr, kChunk);
    if (n < 0) {
      if (errno == EINTR) continue;
      // Across filesystems, or where the filesystem cannot: sendfile goes on
      // from the same offsets.
      if (copyRange &&
          (errno == EXDEV || errno == EINVAL || errno == ENOSYS || errno == EOPNOTSUPP)) {
        copyRange = false;
        continue;
      }
      return Status::fromErrno(errno, "copy " + fromPath + " to " + toPath);
    }
    if (n == 0) return Status::ok();
  }
}

// What writeFileAtomic() and copyFileAtomic() share: `fill` writes the
// unnamed file's content, and the rest is the same.
Status replaceFile(const std::string& path, const FileAttributes& attributes,
                   const std::function<Status(int fd)>& fill) {
  const std::string directory = parentDirectory(path);
  std::string namedTemporary;
  auto fd = openTemporary(directory, path, namedTemporary);
  if (!fd) return fd.status();

  auto fail = [&](Status status) {
    if (!namedTemporary.empty()) ::unlink(namedTemporary.c_str());
    return status;
  };

  if (Status s = fill(fd->get()); !s) return fail(s);
  if (attributes.uid || attributes.gid) {
    uid_t uid = attributes.uid.value_or(static_cast<uid_t>(-1));
    gid_t gid = attributes.gid.value_or(static_cast<gid_t>(-1));
    if (::fchown(fd->get(), uid, gid) < 0) return fail(Status::fromErrno(errno, "chown " + path));
  }
  // After chown, which clears set-id bits.
  if (::fchmod(fd->get(), attributes.mode) < 0) {
    return fail(Status::fromErrno(errno, "chmod " + path));
  }
  if (::fsync(fd->get()) < 0) return fail(Status::fromErrno(errno, "fsync " + path));

  if (namedTemporary.empty()) {
    // Give the unnamed file a name, then move it over the target.
    namedTemporary = temporaryName(path);
    const std::string procPath = "/proc/self/fd/" + std::to_string(fd->get());
    if (::linkat(AT_FDCWD, procPath.c_str(), AT_FDCWD, namedTemporary.c_str(), AT_SYMLINK_FOLLOW) <
        0) {
      int error = errno;
      namedTemporary.clear();
      return Status::fromErrno(error, "link " + path);
    }
  }
  if (::rename(namedTemporary.c_str(), path.c_str()) < 0) {
    return fail(Status::fromErrno(errno, "rename to " + path));
  }
  return syncParentDirectory(path);
}

}  // namespace

Status writeFileAtomic(const std::string& path, std::string_view data,
                       const FileAttributes& attributes) {
  return replaceFile(path, attributes, [&](int fd) { return writeAll(fd, data, path); });
}

Status copyFileAtomic(const std::string& from, const std::string& to,
                      const FileAttributes& attributes) {
  UniqueFd source(::open(from.c_str(), O_RDONLY | O_CLOEXEC));
  if (!source.isValid()) return Status::fromErrno(errno, "open " + from);
  return replaceFile(to, attributes, [&](int fd) { return copyAll(source.get(), fd, from, to); });
}

Result<std::string> readFile(const std::string& path, size_t maxBytes) {
  auto tooLarge = [&] {
    return Status::invalidArgument(path + " is larger than " + std::to_string(maxBytes) + " bytes");
  };
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.isValid()) return Status::fromErrno(errno, "open " + path);
  struct stat st;
  if (::fstat(fd.get(), &st) < 0) return Status::fromErrno(errno, "stat " + path);
  if (static_cast<size_t>(st.st_size) > maxBytes) return tooLarge();
  // One byte more than the size, to see the end of the file without growing.
  std::string data(static_cast<size_t>(st.st_size) + 1, '\0');
  size_t done = 0;
  while (true) {
    ssize_t n = ::read(fd.get(), data.data() + done, data.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status::fromErrno(errno, "read " + path);
    }
    if (n == 0) break;
    done += static_cast<size_t>(n);
    if (done > maxBytes) return tooLarge();
    if (done == data.size()) {
      // The file grew, or is in /proc: read on, at most one byte past the limit.
      data.resize(done + std::min<size_t>(4096, maxBytes - done) + 1);
    }
  }
  data.resize(done);
  return data;
}

}  // namespace nodewarden::core
