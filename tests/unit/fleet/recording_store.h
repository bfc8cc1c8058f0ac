#pragma once

#include <cstdint>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "nodewarden/v1/control.pb.h"
#include "server/store/store.h"

namespace nodewarden::fleet::test {

// A Store that forwards to a real one and remembers every numbered message a
// node delivered, and whether the store applied it or found it a resend: the
// real store keeps only the latest report, and a test that checks "each
// report once, in order" needs all of them. Thread-safe, like the store.
class RecordingStore final : public server::Store {
 public:
  struct Delivery {
    std::string kind;  // "report", "health", "usage", "dropped"
    uint64_t sequence = 0;
    bool applied = false;
    std::string version;  // a report's desired_version
  };

  explicit RecordingStore(server::Store& store) : store_(store) {}

  std::vector<Delivery> deliveries() const {
    std::lock_guard lock(mutex_);
    return deliveries_;
  }

  // The versions of the reports the store applied, in the order it applied them.
  std::vector<std::string> appliedReports() const {
    std::vector<std::string> versions;
    for (const Delivery& delivery : deliveries()) {
      if (delivery.kind == "report" && delivery.applied) versions.push_back(delivery.version);
    }
    return versions;
  }

  core::Status putToken(const server::TokenRecord& token) override {
    return store_.putToken(token);
  }
  core::Result<std::vector<server::TokenRecord>> tokens() override { return store_.tokens(); }
  core::Result<std::optional<server::TokenRecord>> token(const std::string& id) override {
    return store_.token(id);
  }
  core::Status deleteToken(const std::string& id) override { return store_.deleteToken(id); }

  core::Result<server::NodeRecord> enroll(const server::Enrollment& enrollment,
                                          server::Time now) override {
    return store_.enroll(enrollment, now);
  }
  core::Result<std::optional<server::NodeRecord>> node(const std::string& name) override {
    return store_.node(name);
  }
  core::Result<std::vector<server::NodeRecord>> nodes() override { return store_.nodes(); }
  core::Status revokeNode(const std::string& name) override { return store_.revokeNode(name); }
  core::Result<bool> isRevokedSerial(const std::string& serial) override {
    return store_.isRevokedSerial(serial);
  }

  core::Status recordHello(const std::string& node, const std::string& facts,
                           server::Time now) override {
    return store_.recordHello(node, facts, now);
  }
  core::Status touch(const std::string& node, server::Time now) override {
    return store_.touch(node, now);
  }
  core::Status restartSequence(const std::string& node, uint64_t lastSequence) override {
    return store_.restartSequence(node, lastSequence);
  }
  core::Status setDesiredVersion(const std::string& node, const std::string& version) override {
    return store_.setDesiredVersion(node, version);
  }

  core::Result<bool> recordReport(const std::string& node, uint64_t sequence,
                                  const std::string& report, const std::string& appliedVersion,
                                  const std::string& result, server::Time now) override {
    auto applied = store_.recordReport(node, sequence, report, appliedVersion, result, now);
    v1::ConvergeReport parsed;
    parsed.ParseFromString(report);
    remember("report", sequence, applied, parsed.desired_version());
    return applied;
  }
  core::Result<bool> recordHealth(const std::string& node, uint64_t sequence,
                                  const std::string& conditions,
                                  const std::vector<std::pair<server::Time, std::string>>& events,
                                  server::Time now) override {
    auto applied = store_.recordHealth(node, sequence, conditions, events, now);
    remember("health", sequence, applied, "");
    return applied;
  }
  core::Result<bool> recordUsage(const std::string& node, uint64_t sequence,
                                 const std::string& usage, server::Time now) override {
    auto applied = store_.recordUsage(node, sequence, usage, now);
    remember("usage", sequence, applied, "");
    return applied;
  }
  core::Result<bool> recordDropped(const std::string& node, uint64_t sequence, uint64_t count,
                                   server::Time now) override {
    auto applied = store_.recordDropped(node, sequence, count, now);
    remember("dropped", sequence, applied, "");
    return applied;
  }

  core::Result<std::vector<std::string>> events(const std::string& node, size_t limit) override {
    return store_.events(node, limit);
  }

  core::Result<int64_t> putState(const std::string& group, const std::string& node,
                                 const std::string& document, server::Time now) override {
    return store_.putState(group, node, document, now);
  }
  core::Result<std::optional<server::StateRecord>> groupState(const std::string& group) override {
    return store_.groupState(group);
  }
  core::Result<std::optional<server::StateRecord>> nodeState(const std::string& node) override {
    return store_.nodeState(node);
  }
  core::Result<std::vector<server::StateRecord>> states() override { return store_.states(); }

  core::Result<bool> raiseAlert(const server::AlertRecord& alert) override {
    return store_.raiseAlert(alert);
  }
  core::Result<bool> resolveAlert(const std::string& node, const std::string& kind,
                                  server::Time now) override {
    return store_.resolveAlert(node, kind, now);
  }
  core::Result<std::vector<server::AlertRecord>> alerts(bool includeResolved) override {
    return store_.alerts(includeResolved);
  }

 private:
  void remember(const char* kind, uint64_t sequence, const core::Result<bool>& applied,
                std::string version) {
    std::lock_guard lock(mutex_);
    deliveries_.push_back({kind, sequence, applied.isOk() && *applied, std::move(version)});
  }

  server::Store& store_;
  mutable std::mutex mutex_;
  std::vector<Delivery> deliveries_;
};

}  // namespace nodewarden::fleet::test
