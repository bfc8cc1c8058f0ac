#pragma once

#include <chrono>
#include <string>

#include "agent/core/clock.h"

namespace nodewarden::pki::test {

// 2030-01-01T00:00:00Z: tests issue and verify at fixed times, never the
// machine's, so that they pass the same in any year.
inline const core::WallTime kNow = std::chrono::system_clock::from_time_t(1893456000);

// A directory under /tmp that lives as long as the object.
class TemporaryDirectory final {
 public:
  TemporaryDirectory();
  ~TemporaryDirectory();
  TemporaryDirectory(const TemporaryDirectory&) = delete;
  TemporaryDirectory& operator=(const TemporaryDirectory&) = delete;

  const std::string& path() const { return path_; }
  // Writes `data` to path()/name and returns the file's path.
  std::string write(const std::string& name, const std::string& data) const;

 private:
  std::string path_;
};

// Runs `command` with sh and returns its standard output; a failing command
// fails the test and returns what it printed.
std::string run(const std::string& command);

// "sha256:<hex>" from the sha256sum of what `command` prints: what an
// operator computes with the openssl CLI to pin a key.
std::string pinFromCommand(const std::string& command);

}  // namespace nodewarden::pki::test
