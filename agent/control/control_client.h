#pragma once

#include <string>

#include <nlohmann/json_fwd.hpp>

#include "agent/core/clock.h"
#include "agent/core/status.h"

namespace nodewarden::control {

// The command line's side of the control socket (see control_server.h for the
// protocol): connects, sends one request and waits for the answer, blocking,
// within one time limit for the whole exchange. Errors tell the operator what
// to do about them.
class ControlClient final {
 public:
  static constexpr core::Duration kDefaultTimeout = std::chrono::seconds(10);
  // Bounds what a broken agent can make the command line hold in memory.
  static constexpr size_t kMaxResponseBytes = 16 * 1024 * 1024;

  explicit ControlClient(std::string path, core::Duration timeout = kDefaultTimeout);

  // Sends `request` and returns the "result" of an ok answer; the agent's
  // "error", or what kept the request from being answered, otherwise.
  core::Result<nlohmann::json> call(const nlohmann::json& request) const;
  // The whole answer, {"ok": ..., "result"|"error": ...}, whatever it says.
  core::Result<nlohmann::json> exchange(const nlohmann::json& request) const;

  const std::string& path() const { return path_; }

 private:
  const std::string path_;
  const core::Duration timeout_;
};

}  // namespace nodewarden::control
