#include "server/service/alert_monitor.h"

#include <fmt/chrono.h>
#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "agent/core/duration.h"
#include "agent/core/log.h"
#include "nodewarden/v1/control.pb.h"

namespace nodewarden::server {

namespace {

const auto kLog = core::log::category("alerts");

}  // namespace

AlertMonitor::AlertMonitor(core::Clock& clock, Store& store, const NodeRegistry& registry,
                           const ServerConfig& config, core::HttpClient* webhook)
    : clock_(clock), store_(store), registry_(registry), config_(config), webhook_(webhook) {}

void AlertMonitor::start() {
  timer_ = clock_.createTimer([this] {
    check(clock_.wallNow());
    timer_->armIn(config_.alertCheckInterval);
  });
  timer_->armIn(config_.alertCheckInterval);
}

const AlertLimits& AlertMonitor::limitsOf(const std::string& group) const {
  auto it = config_.groupLimits.find(group);
  return it != config_.groupLimits.end() ? it->second : config_.limits;
}

// Raises the alert with `message`, or resolves it when the message is empty.
void AlertMonitor::set(const NodeRecord& node, const std::string& kind, const std::string& message,
                       std::chrono::system_clock::time_point now) {
  if (message.empty()) {
    auto resolved = store_.resolveAlert(node.name, kind, now);
    if (!resolved) {
      NW_LOG(kLog, err, "Failed to resolve alert {} of {}: {}", kind, node.name,
             resolved.status().message());
    } else if (*resolved) {
      NW_LOG(kLog, info, "Resolved: {} on node {}", kind, node.name);
      post(node, kind, "", /*firing=*/false, now);
    }
    return;
  }
  AlertRecord alert{0, node.name, node.group, kind, message, now, std::nullopt};
  auto raised = store_.raiseAlert(alert);
  if (!raised) {
    NW_LOG(kLog, err, "Failed to raise alert {} of {}: {}", kind, node.name,
           raised.status().message());
  } else if (*raised) {
    NW_LOG(kLog, warn, "Alert: {} on node {}: {}", kind, node.name, message);
    post(node, kind, message, /*firing=*/true, now);
  }
}

// One POST per change; a webhook that fails misses that change (logged).
void AlertMonitor::post(const NodeRecord& node, const std::string& kind, const std::string& message,
                        bool firing, std::chrono::system_clock::time_point now) {
  if (webhook_ == nullptr) return;
  const nlohmann::json alert = {
      {"node", node.name},
      {"group", node.group},
      {"kind", kind},
      {"status", firing ? "firing" : "resolved"},
      {"message", message},
      {"time", fmt::format("{:%Y-%m-%dT%H:%M:%SZ}",
                           fmt::gmtime(std::chrono::system_clock::to_time_t(now)))}};
  core::HttpRequest request;
  request.url = config_.webhookUrl;
  request.body = alert.dump();
  request.timeout = std::chrono::seconds(10);
  request.connectTimeout = std::chrono::seconds(5);
  request.followRedirects = false;
  request.maxBytes = 64 * 1024;
  const std::string url = request.url;
  webhook_->get(std::move(request),
                [url, kind, name = node.name](core::Result<core::HttpResponse> response) {
                  if (!response) {
                    NW_LOG(kLog, err, "Failed to post alert {} of {} to {}: {}, ignoring", kind,
                           name, url, response.status().message());
                  } else if (response->status < 200 || response->status >= 300) {
                    NW_LOG(kLog, err, "Webhook {} answered {} to alert {} of {}, ignoring", url,
                           response->status, kind, name);
                  }
                });
}

void AlertMonitor::check(std::chrono::system_clock::time_point now) {
  auto nodes = store_.nodes();
  if (!nodes) {
    NW_LOG(kLog, err, "Failed to check alerts: {}", nodes.status().message());
    return;
  }
  for (const NodeRecord& node : *nodes) {
    if (node.revoked) {
      // Out of the fleet: nothing about it is news any more.
      for (const char* kind : {"NotSeen", "DiskUsage", "CrashLooping"}) set(node, kind, "", now);
      continue;
    }
    const AlertLimits& limits = limitsOf(node.group);

    std::string notSeen;
    const auto silent = now - node.lastSeen;
    if (!registry_.connected(node.name) && silent > limits.notSeenFor) {
      notSeen = "not seen for " +
                core::formatDuration(std::chrono::duration_cast<core::Duration>(silent)) +
                " (limit " + core::formatDuration(limits.notSeenFor) + ")";
    }
    set(node, "NotSeen", notSeen, now);

    std::string full;
    v1::Usage usage;
    if (limits.diskPercent < 100 && usage.ParseFromString(node.usage)) {
      for (const auto& disk : usage.disks()) {
        if (disk.size_bytes() == 0) continue;
        const double percent = 100.0 * double(disk.used_bytes()) / double(disk.size_bytes());
        if (percent > limits.diskPercent) {
          full +=
              fmt::format("{}{} is {:.0f}% full", full.empty() ? "" : ", ", disk.mount(), percent);
        }
      }
      if (!full.empty()) full += fmt::format(" (limit {}%)", limits.diskPercent);
    }
    set(node, "DiskUsage", full, now);

    std::string looping;
    v1::HealthUpdate health;
    if (limits.crashLooping && health.ParseFromString(node.conditions)) {
      for (const auto& condition : health.conditions()) {
        if (condition.type() == "CrashLooping" && condition.status()) {
          looping += (looping.empty() ? "" : ", ") + condition.subject() + " is crash-looping";
        }
      }
    }
    set(node, "CrashLooping", looping, now);
  }
}

}  // namespace nodewarden::server
