#pragma once

#include <memory>

#include "agent/core/clock.h"
#include "agent/core/http_client.h"
#include "server/cmd/server_config.h"
#include "server/service/node_service.h"
#include "server/store/store.h"

namespace nodewarden::server {

// Checks every node against its group's limits at an interval: a mount
// fuller than diskPercent (DiskUsage), a node not connected and not heard
// from for notSeenFor (NotSeen), a component crash-looping (CrashLooping).
// An alert is raised once and stays until what raised it is gone; both are
// logged, and POSTed as JSON to the webhook when one is configured.
class AlertMonitor final {
 public:
  // `webhook` null: no webhook.
  AlertMonitor(core::Clock& clock, Store& store, const NodeRegistry& registry,
               const ServerConfig& config, core::HttpClient* webhook = nullptr);

  void start();
  // One pass over the fleet at `now`; the timer calls it, and tests.
  void check(std::chrono::system_clock::time_point now);

 private:
  const AlertLimits& limitsOf(const std::string& group) const;
  void set(const NodeRecord& node, const std::string& kind, const std::string& message,
           std::chrono::system_clock::time_point now);
  void post(const NodeRecord& node, const std::string& kind, const std::string& message,
            bool firing, std::chrono::system_clock::time_point now);

  core::Clock& clock_;
  Store& store_;
  const NodeRegistry& registry_;
  const ServerConfig& config_;
  core::HttpClient* webhook_;
  std::unique_ptr<core::Timer> timer_;
};

}  // namespace nodewarden::server
