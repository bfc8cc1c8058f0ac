// The alerts an operator is paged with: raised once when a limit is crossed,
// resolved once when it no longer is, with each group's own limits.

#include "server/service/alert_monitor.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>

#include <nlohmann/json.hpp>

#include "agent/core/simulated_clock.h"
#include "tests/fakes/fake_http_client.h"
#include "tests/unit/server/service/service_test_support.h"

namespace nodewarden::server {
namespace {

using namespace std::chrono_literals;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

constexpr char kWebhook[] = "https://hooks.example/nodewarden";

class AlertMonitorTest : public test::ServiceTest {
 protected:
  void SetUp() override {
    ServiceTest::SetUp();
    config_.webhookUrl = kWebhook;
    http_.respond(kWebhook, 200);
    t0_ = clock_.wallNow();
  }

  AlertMonitor& monitor() {
    if (!monitor_) monitor_.emplace(clock_, *store_, registry_, config_, &http_);
    return *monitor_;
  }

  void usage(const std::string& node, uint64_t usedPercent, Time now,
             const std::string& mount = "/") {
    v1::Usage usage;
    auto* disk = usage.add_disks();
    disk->set_mount(mount);
    disk->set_size_bytes(1000);
    disk->set_used_bytes(usedPercent * 10);
    auto stored = store_->recordUsage(node, ++sequence_, usage.SerializeAsString(), now);
    ASSERT_TRUE(stored.isOk() && *stored);
  }

  void crashLooping(const std::string& node, bool looping, Time now) {
    v1::HealthUpdate health;
    auto* condition = health.add_conditions();
    condition->set_subject("worker.service");
    condition->set_type("CrashLooping");
    condition->set_status(looping);
    auto stored = store_->recordHealth(node, ++sequence_, health.SerializeAsString(), {}, now);
    ASSERT_TRUE(stored.isOk() && *stored);
  }

  // The unresolved alerts as "node kind: message", newest first.
  std::vector<std::string> open() {
    auto alerts = store_->alerts(false);
    EXPECT_TRUE(alerts.isOk());
    std::vector<std::string> out;
    if (!alerts.isOk()) return out;
    for (const auto& alert : *alerts)
      out.push_back(alert.node + " " + alert.kind + ": " + alert.message);
    return out;
  }

  // What the webhook was sent, as "node kind status".
  std::vector<std::string> posted() {
    std::vector<std::string> out;
    for (const auto& request : http_.requests()) {
      EXPECT_EQ(request.url, kWebhook);
      EXPECT_TRUE(request.body.has_value());
      auto alert = nlohmann::json::parse(request.body.value_or("{}"));
      out.push_back(alert.value("node", "") + " " + alert.value("kind", "") + " " +
                    alert.value("status", ""));
    }
    return out;
  }

  core::SimulatedClock clock_;
  NodeRegistry registry_;
  ServerConfig config_;
  core::FakeHttpClient http_;
  std::optional<AlertMonitor> monitor_;
  Time t0_;
  uint64_t sequence_ = 0;
};

TEST_F(AlertMonitorTest, AFullDiskIsRaisedOnceAndResolvedWhenItIsNoLonger) {
  enroll("node-1", "workers", t0_);
  usage("node-1", 90, t0_);
  monitor().check(t0_ + 1s);
  EXPECT_THAT(open(), ElementsAre("node-1 DiskUsage: / is 90% full (limit 85%)"));
  monitor().check(t0_ + 2s);
  EXPECT_THAT(open(), ElementsAre("node-1 DiskUsage: / is 90% full (limit 85%)"));
  EXPECT_THAT(posted(), ElementsAre("node-1 DiskUsage firing"));

  usage("node-1", 50, t0_ + 3s);
  monitor().check(t0_ + 4s);
  EXPECT_THAT(open(), IsEmpty());
  monitor().check(t0_ + 5s);
  EXPECT_THAT(posted(), ElementsAre("node-1 DiskUsage firing", "node-1 DiskUsage resolved"));
  auto all = store_->alerts(true);
  ASSERT_TRUE(all.isOk());
  ASSERT_EQ(all->size(), 1u);
  EXPECT_EQ((*all)[0].since, t0_ + 1s);
  EXPECT_EQ((*all)[0].resolved, t0_ + 4s);
}

TEST_F(AlertMonitorTest, EveryFullMountIsNamed) {
  enroll("node-1", "workers", t0_);
  v1::Usage usage;
  for (const auto& [mount, used] :
       {std::pair<std::string, uint64_t>{"/", 900}, {"/var", 100}, {"/data", 990}, {"/empty", 0}}) {
    auto* disk = usage.add_disks();
    disk->set_mount(mount);
    disk->set_used_bytes(used);
    disk->set_size_bytes(mount == "/empty" ? 0 : 1000);
  }
  ASSERT_TRUE(store_->recordUsage("node-1", 1, usage.SerializeAsString(), t0_).isOk());
  monitor().check(t0_ + 1s);
  EXPECT_THAT(open(),
              ElementsAre("node-1 DiskUsage: / is 90% full, /data is 99% full (limit 85%)"));
}

TEST_F(AlertMonitorTest, ADiskAtTheLimitIsNotOverIt) {
  enroll("node-1", "workers", t0_);
  usage("node-1", 85, t0_);
  monitor().check(t0_ + 1s);
  EXPECT_THAT(open(), IsEmpty());
  EXPECT_THAT(posted(), IsEmpty());
}

TEST_F(AlertMonitorTest, ALimitOf100NeverFires) {
  config_.limits.diskPercent = 100;
  enroll("node-1", "workers", t0_);
  usage("node-1", 100, t0_);
  monitor().check(t0_ + 1s);
  EXPECT_THAT(open(), IsEmpty());
}

TEST_F(AlertMonitorTest, ANodeNotConnectedAndSilentPastTheLimitIsNotSeen) {
  enroll("node-1", "workers", t0_);
  monitor().check(t0_ + 2min);
  EXPECT_THAT(open(), IsEmpty());
  monitor().check(t0_ + 2min + 1s);
  ASSERT_EQ(open().size(), 1u);
  EXPECT_THAT(open()[0], HasSubstr("node-1 NotSeen: not seen for "));
  EXPECT_THAT(open()[0], HasSubstr("(limit 2m"));

  // Heard from again: resolved.
  usage("node-1", 10, t0_ + 3min);
  monitor().check(t0_ + 3min + 1s);
  EXPECT_THAT(open(), IsEmpty());
  EXPECT_THAT(posted(), ElementsAre("node-1 NotSeen firing", "node-1 NotSeen resolved"));
}

TEST_F(AlertMonitorTest, AConnectedNodeIsSeenHoweverQuiet) {
  enroll("node-1", "workers", t0_);
  registry_.add("node-1", "workers", {});
  monitor().check(t0_ + 1h);
  EXPECT_THAT(open(), IsEmpty());
}

TEST_F(AlertMonitorTest, ACrashLoopingComponentIsRaisedUntilItStops) {
  enroll("node-1", "workers", t0_);
  crashLooping("node-1", true, t0_);
  monitor().check(t0_ + 1s);
  EXPECT_THAT(open(), ElementsAre("node-1 CrashLooping: worker.service is crash-looping"));
  crashLooping("node-1", false, t0_ + 2s);
  monitor().check(t0_ + 3s);
  EXPECT_THAT(open(), IsEmpty());
  EXPECT_THAT(posted(), ElementsAre("node-1 CrashLooping firing", "node-1 CrashLooping resolved"));
}

TEST_F(AlertMonitorTest, CrashLoopingCanBeTurnedOff) {
  config_.limits.crashLooping = false;
  enroll("node-1", "workers", t0_);
  crashLooping("node-1", true, t0_);
  monitor().check(t0_ + 1s);
  EXPECT_THAT(open(), IsEmpty());
}

TEST_F(AlertMonitorTest, AGroupsOwnLimitsReplaceTheDefaults) {
  config_.groupLimits["db"] =
      AlertLimits{.diskPercent = 95, .notSeenFor = 10min, .crashLooping = false};
  enroll("db-1", "db", t0_);
  enroll("worker-1", "workers", t0_);
  usage("db-1", 90, t0_);
  usage("worker-1", 90, t0_);
  crashLooping("db-1", true, t0_);
  crashLooping("worker-1", true, t0_);
  monitor().check(t0_ + 5min);
  auto alerts = open();
  std::sort(alerts.begin(), alerts.end());
  ASSERT_EQ(alerts.size(), 3u) << ::testing::PrintToString(alerts);
  EXPECT_THAT(alerts[0], HasSubstr("worker-1 CrashLooping"));
  EXPECT_THAT(alerts[1], HasSubstr("worker-1 DiskUsage"));
  EXPECT_THAT(alerts[2], HasSubstr("worker-1 NotSeen"));

  usage("db-1", 96, t0_ + 5min);
  monitor().check(t0_ + 5min + 1s);
  EXPECT_THAT(open(), ::testing::Contains("db-1 DiskUsage: / is 96% full (limit 95%)"));
}

TEST_F(AlertMonitorTest, ARevokedNodeRaisesNothing) {
  enroll("node-1", "workers", t0_);
  usage("node-1", 99, t0_);
  ASSERT_TRUE(store_->revokeNode("node-1").isOk());
  monitor().check(t0_ + 1h);
  EXPECT_THAT(open(), IsEmpty());
}

TEST_F(AlertMonitorTest, AFailingWebhookDoesNotRaiseTheAlertAgain) {
  http_.respond(kWebhook, core::Status::timeout("POST timed out"));
  enroll("node-1", "workers", t0_);
  usage("node-1", 90, t0_);
  monitor().check(t0_ + 1s);
  http_.complete();
  monitor().check(t0_ + 2s);
  http_.complete();
  EXPECT_EQ(http_.requests().size(), 1u);
  EXPECT_EQ(open().size(), 1u);
}

TEST_F(AlertMonitorTest, TheTimerChecksAtTheIntervalOnTheClock) {
  config_.alertCheckInterval = 15s;
  enroll("node-1", "workers", t0_);
  monitor().start();
  // Checked at 15s, 30s, ... 120s: silent for exactly the limit, not past it.
  clock_.advance(2min);
  EXPECT_THAT(open(), IsEmpty());
  clock_.advance(14s);
  EXPECT_THAT(open(), IsEmpty());
  clock_.advance(1s);
  ASSERT_EQ(open().size(), 1u);
  EXPECT_THAT(open()[0], HasSubstr("node-1 NotSeen"));
  auto alerts = store_->alerts(false);
  ASSERT_TRUE(alerts.isOk());
  EXPECT_EQ(alerts->front().since, t0_ + 2min + 15s);
  EXPECT_EQ(clock_.armedTimers(), 1u);
}

}  // namespace
}  // namespace nodewarden::server
