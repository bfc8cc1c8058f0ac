#pragma once

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

}  // namespace nodewarden::packages::test
