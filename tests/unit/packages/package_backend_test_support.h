#pragma once

#include <sys/types.h>

#include <string>
#include <string_view>

namespace nodewarden::packages::test {

// A fresh temporary directory standing for a node's root; removed when destroyed.
class TemporaryRoot final {
 public:
  TemporaryRoot();
  ~TemporaryRoot();
  TemporaryRoot(const TemporaryRoot&) = delete;
  TemporaryRoot& operator=(const TemporaryRoot&) = delete;

  const std::string& path() const { return path_; }
  // Writes `content` to `nodePath` ("/var/lib/dpkg/status") under the root.
  void write(const std::string& nodePath, std::string_view content, bool executable = false) const;

 private:
  std::string path_;
};

// Holds `path` locked with fcntl from a child process until destroyed, as
// another apt or rpm would: fcntl locks of this process would not show in
// F_GETLK.
class LockingChild final {
 public:
  explicit LockingChild(const std::string& path);
  ~LockingChild();
  LockingChild(const LockingChild&) = delete;
  LockingChild& operator=(const LockingChild&) = delete;

  pid_t pid() const { return pid_; }
  bool locked() const { return locked_; }

 private:
  pid_t pid_ = -1;
  int release_ = -1;
  bool locked_ = false;
};

}  // namespace nodewarden::packages::test
