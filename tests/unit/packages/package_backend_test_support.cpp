#include "tests/unit/packages/package_backend_test_support.h"

#include <gtest/gtest.h>
#include <stdlib.h>

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

}  // namespace nodewarden::packages::test
