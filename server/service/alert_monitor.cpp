#include "server/service/alert_monitor.h"

#include <fmt/format.h>

#include "agent/core/duration.h"
#include "agent/core/log.h"
#include "nodewarden/v1/control.pb.h"

namespace nodewarden::server {

namespace {

const auto kLog = core::log::category("alerts");

}  // namespace

AlertMonitor::AlertMonitor(core::Clock& clock, Store& store, const NodeRegistry& registry,
                           const ServerConfig& config)
    : clock_(clock), store_(store), registry_(registry), config_(config) {}

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
  }
}

void AlertMonitor::check(std::chrono::system_clock::time_point now) {
  auto nodes = store_.nodes();
  if (!nodes) {
    NW_LOG(kLog, err, "Failed to check alerts: {}", nodes.status().message());
    return;
  }
  for (const NodeRecord& node : *nodes) {
    if (node.revoked) continue;
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
