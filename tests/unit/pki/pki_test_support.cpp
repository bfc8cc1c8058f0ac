#include "tests/unit/pki/pki_test_support.h"

#include <sys/wait.h>

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "agent/core/atomic_file.h"

namespace nodewarden::pki::test {

TemporaryDirectory::TemporaryDirectory() {
  std::string templ = (std::filesystem::temp_directory_path() / "nodewarden-pki-XXXXXX").string();
  if (::mkdtemp(templ.data()) == nullptr) ADD_FAILURE() << "mkdtemp " << templ;
  path_ = templ;
}

TemporaryDirectory::~TemporaryDirectory() { std::filesystem::remove_all(path_); }

std::string TemporaryDirectory::write(const std::string& name, const std::string& data) const {
  const std::string file = path_ + "/" + name;
  core::Status written = core::writeFileAtomic(file, data, {.mode = 0600});
  EXPECT_TRUE(written.isOk()) << written.message();
  return file;
}

std::string run(const std::string& command) {
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) {
    ADD_FAILURE() << "popen " << command;
    return {};
  }
  std::string output;
  char buffer[4096];
  size_t n;
  while ((n = std::fread(buffer, 1, sizeof(buffer), pipe)) > 0) output.append(buffer, n);
  const int status = ::pclose(pipe);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
      << command << " failed (" << status << "): " << output;
  return output;
}

std::string pinFromCommand(const std::string& command) {
  // -o pipefail: a failing openssl must not pass for the digest of nothing.
  const std::string output = run("bash -o pipefail -c '" + command + " | sha256sum'");
  if (output.size() < 64) return "no digest: " + output;
  return "sha256:" + output.substr(0, 64);
}

}  // namespace nodewarden::pki::test
