#pragma once

#include <cstddef>
#include <ostream>
#include <string>

#include <nlohmann/json_fwd.hpp>

#include "agent/core/clock.h"

namespace nodewarden::control {

// How the agent is doing, in one word, as the header of `status` says it.
enum class Health {
  kHealthy,   // nothing wrong known
  kPaused,    // healthy, but the operator paused the node or a unit
  kDegraded,  // a component is unhealthy or its probe fails, disk pressure, a failed converge
  kFailed,    // a component failed or is crash-looping
};

struct Assessment {
  Health health = Health::kHealthy;
  // What made it so: "kubelet.service CrashLooping", "node DiskPressure".
  std::string because;
};

// Judges a status (the "status" result, see control_server.h).
Assessment assess(const nlohmann::json& status);

struct StatusTextOptions {
  // ANSI colours: only for a terminal.
  bool colour = false;
  // How many of the latest events to show.
  size_t events = 10;
  // For "2h14m ago".
  core::WallTime now{};
};

// "2026-11-22 09:14:03 UTC; 2h14m ago" for an RFC 3339 time, "in 16m" for a
// time ahead; text that is not such a time comes back as it is.
std::string describeTime(const std::string& time, core::WallTime now);

// Writes a status the way `systemctl status` writes a unit's: a header with a
// state dot, the agent, pauses and the last converge, then the conditions and
// components as tables and the latest events as journal lines. Fields the
// agent left out are left out here too.
void printStatus(const nlohmann::json& status, std::ostream& out, const StatusTextOptions& options);

}  // namespace nodewarden::control
