#pragma once

#include <spdlog/common.h>

#include <cstdint>
#include <map>
#include <string>
#include <string_view>

#include "agent/core/clock.h"
#include "agent/core/status.h"

namespace nodewarden::daemon {

// How the healer restarts failed units (see heal::RestartPolicy).
struct HealingConfig {
  core::Duration restartBackoffCap = std::chrono::minutes(5);
  uint32_t crashLoopRestarts = 5;
  core::Duration crashLoopWindow = std::chrono::minutes(10);
  core::Duration backoffResetAfter = std::chrono::minutes(1);

  bool operator==(const HealingConfig&) const = default;
};

struct MetricsConfig {
  bool enabled = false;
  std::string address = "127.0.0.1:9558";

  bool operator==(const MetricsConfig&) const = default;
};

// The control plane the node enrolls with; no server: the local state file.
struct ServerConnection {
  std::string server;  // host:port
  std::string bootstrapToken;
  std::string caCertHash;
  std::string nodeName;
  std::map<std::string, std::string> labels;
  core::Duration usageInterval = std::chrono::minutes(1);

  bool operator==(const ServerConnection&) const = default;
};

// /etc/nodewarden/agent.yaml, with defaults for what it leaves out.
struct AgentConfig {
  std::string stateFile = "/etc/nodewarden/node.yaml";
  core::Duration driftCheckInterval = std::chrono::minutes(5);
  core::Duration jobTimeout = std::chrono::seconds(90);
  spdlog::level::level_enum logLevel = spdlog::level::info;
  HealingConfig healing;
  MetricsConfig metrics;
  ServerConnection connection;
};

// A missing file means all defaults; a bad one is an error naming
// file:line:column and the field.
core::Result<AgentConfig> loadAgentConfig(const std::string& path);

// Where the agent keeps its state: systemd's $STATE_DIRECTORY, otherwise
// /var/lib/nodewarden, created (0700) when missing.
core::Result<std::string> stateDirectory();
// The same path, without creating anything (for commands that only read).
std::string stateDirectoryPath();

// The file in the state directory that holds restarts owed by a run that was
// interrupted (see converge::RestartLedger).
inline constexpr char kRestartLedgerName[] = "restarts-owed";
// Held by whoever converges the node (the daemon, a one-shot apply), so two
// never interleave their changes.
inline constexpr char kConvergeLockName[] = "converge.lock";

}  // namespace nodewarden::daemon
