#pragma once

#include <spdlog/common.h>

#include <string>

#include "agent/core/clock.h"
#include "agent/core/status.h"

namespace nodewarden::cmd {

// /etc/nodewarden/agent.yaml, with defaults for what it leaves out.
struct AgentConfig {
  std::string stateFile = "/etc/nodewarden/node.yaml";
  core::Duration driftCheckInterval = std::chrono::minutes(5);
  core::Duration jobTimeout = std::chrono::seconds(90);
  spdlog::level::level_enum logLevel = spdlog::level::info;
};

// A missing file means all defaults; a bad one is an error naming
// file:line:column and the field.
core::Result<AgentConfig> loadAgentConfig(const std::string& path);

}  // namespace nodewarden::cmd
