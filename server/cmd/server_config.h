#pragma once

#include <spdlog/common.h>

#include <chrono>
#include <map>
#include <string>
#include <vector>

#include "agent/core/clock.h"
#include "agent/core/status.h"

namespace nodewarden::server {

inline constexpr std::string_view kDefaultConfigPath = "/etc/nodewarden/server.yaml";
inline constexpr std::string_view kDefaultAdminSocket = "/run/nodewarden-server/admin.sock";

struct AlertLimits {
  uint32_t diskPercent = 85;
  core::Duration notSeenFor = std::chrono::minutes(2);
  bool crashLooping = true;
};

// /etc/nodewarden/server.yaml, with defaults for what it leaves out.
struct ServerConfig {
  std::string listen = "0.0.0.0:9443";
  std::string adminSocket = std::string(kDefaultAdminSocket);
  std::string stateDirectory = "/var/lib/nodewarden-server";
  std::vector<std::string> serverNames;  // empty: host name, localhost, 127.0.0.1
  std::string caCertificateFile;
  std::string caKeyFile;
  std::chrono::seconds nodeCertificateValidity = std::chrono::hours(24 * 365);
  spdlog::level::level_enum logLevel = spdlog::level::info;
  AlertLimits limits;
  std::map<std::string, AlertLimits> groupLimits;
  std::string webhookUrl;
  core::Duration alertCheckInterval = std::chrono::seconds(15);
};

// Reads the configuration; a missing file is the defaults. Errors name the
// file, line, column and field.
core::Result<ServerConfig> loadServerConfig(const std::string& path);

}  // namespace nodewarden::server
