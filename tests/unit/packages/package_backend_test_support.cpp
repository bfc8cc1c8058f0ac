#include "tests/unit/packages/package_backend_test_support.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

namespace nodewarden::packages::test {

TemporaryRoot::TemporaryRoot() {
  std::string templ = std::filesystem::temp_directory_path() / "nodewarden-packages-XXXXXX";
  if (::mkdtemp(templ.data()) == nullptr) ADD_FAILURE() << "mkdtemp " << templ;
  path_ = templ;
}

TemporaryRoot::~TemporaryRoot() { std::filesystem::remove_all(path_); }

void TemporaryRoot::write(const std::string& nodePath, std::string_view content,
                          bool executable) const {
  const std::filesystem::path path = path_ + nodePath;
  std::filesystem::create_directories(path.parent_path());
  std::ofstream(path) << content;
  if (executable) {
    std::filesystem::permissions(path, std::filesystem::perms::owner_all,
                                 std::filesystem::perm_options::add);
  }
}

LockingChild::LockingChild(const std::string& path) {
  int ready[2];
  int release[2];
  if (::pipe(ready) < 0 || ::pipe(release) < 0) return;
  pid_ = ::fork();
  if (pid_ == 0) {
    ::close(ready[0]);
    ::close(release[1]);  // or the read below never sees the parent let go
    const int fd = ::open(path.c_str(), O_RDWR | O_CREAT, 0640);
    struct flock lock {};
    lock.l_type = F_WRLCK;
    lock.l_whence = SEEK_SET;
    const char ok = (fd >= 0 && ::fcntl(fd, F_SETLK, &lock) == 0) ? '1' : '0';
    (void)!::write(ready[1], &ok, 1);
    char byte;
    (void)!::read(release[0], &byte, 1);
    ::_exit(0);
  }
  ::close(ready[1]);
  ::close(release[0]);
  release_ = release[1];
  char ok = '0';
  locked_ = ::read(ready[0], &ok, 1) == 1 && ok == '1';
  ::close(ready[0]);
}

LockingChild::~LockingChild() {
  if (pid_ <= 0) return;
  ::close(release_);
  ::waitpid(pid_, nullptr, 0);
}

}  // namespace nodewarden::packages::test
