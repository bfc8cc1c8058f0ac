#include "agent/heal/probe_monitor.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "agent/core/simulated_clock.h"
#include "agent/heal/probe.h"
#include "nodewarden/v1/state.pb.h"

namespace nodewarden::heal {
namespace {

using namespace std::chrono_literals;
using ::testing::ElementsAre;
using ::testing::IsEmpty;

// Keeps every check in flight until the test finishes it, oldest first.
class FakeProber final : public Prober {
 public:
  void check(const ProbeSpec& spec, Callback done) override {
    ++started_;
    maxInFlight_ = std::max(maxInFlight_, pending_.size() + 1);
    specs_.push_back(spec);
    pending_.push_back(std::move(done));
  }

  void finish(bool ok, std::string message = "", core::Duration duration = 1ms) {
    ASSERT_FALSE(pending_.empty()) << "no check in flight";
    Callback done = std::move(pending_.front());
    pending_.pop_front();
    done(ProbeResult{.ok = ok, .message = std::move(message), .duration = duration});
  }

  size_t started() const { return started_; }
  size_t inFlight() const { return pending_.size(); }
  size_t maxInFlight() const { return maxInFlight_; }
  const std::vector<ProbeSpec>& specs() const { return specs_; }

 private:
  std::deque<Callback> pending_;
  std::vector<ProbeSpec> specs_;
  size_t started_ = 0;
  size_t maxInFlight_ = 0;
};

ProbeSpec spec(uint32_t failureThreshold = 3, uint32_t successThreshold = 1) {
  ProbeSpec s;
  s.kind = ProbeSpec::Kind::kTcp;
  s.address = "127.0.0.1:10250";
  s.interval = 10s;
  s.timeout = 2s;
  s.initialDelay = 30s;
  s.failureThreshold = failureThreshold;
  s.successThreshold = successThreshold;
  return s;
}

class ProbeMonitorTest : public ::testing::Test {
 protected:
  void make(ProbeSpec s) {
    monitor_ = std::make_unique<ProbeMonitor>(
        clock_, prober_, std::move(s),
        [this](bool failing, const ProbeResult& last) {
          verdicts_.push_back(std::string(failing ? "failing" : "healthy") + ": " + last.message);
        },
        [this](const ProbeResult& result) { results_.push_back(result); });
  }

  // Runs the check that is due now (at the next interval) and finishes it.
  void checkOnce(bool ok, std::string message = "") {
    const size_t before = prober_.started();
    clock_.advance(10s);
    ASSERT_EQ(prober_.started(), before + 1) << "no check was due";
    prober_.finish(ok, std::move(message));
  }

  core::SimulatedClock clock_;
  FakeProber prober_;
  std::unique_ptr<ProbeMonitor> monitor_;
  std::vector<std::string> verdicts_;
  std::vector<ProbeResult> results_;
};

TEST_F(ProbeMonitorTest, WaitsInitialDelayAfterStart) {
  make(spec());
  clock_.advance(1h);
  EXPECT_EQ(prober_.started(), 0u) << "probed a unit that was never started";
  monitor_->unitStarted();
  EXPECT_TRUE(monitor_->probing());
  clock_.advance(30s - 1ms);
  EXPECT_EQ(prober_.started(), 0u);
  clock_.advance(1ms);
  EXPECT_EQ(prober_.started(), 1u);
  EXPECT_EQ(prober_.specs().front().describe(), "TCP connect 127.0.0.1:10250");
}

TEST_F(ProbeMonitorTest, FailingOnlyAtTheThreshold) {
  make(spec(3));
  monitor_->unitStarted();
  clock_.advance(20s);  // the first check, at 30s, is due in the next 10s
  checkOnce(false, "connect 127.0.0.1:10250: Connection refused");
  checkOnce(false, "connect 127.0.0.1:10250: Connection refused");
  EXPECT_THAT(verdicts_, IsEmpty()) << "reported failing before the threshold";
  EXPECT_FALSE(monitor_->failing());
  EXPECT_EQ(monitor_->consecutiveFailures(), 2u);
  checkOnce(false, "connect 127.0.0.1:10250: Connection refused");
  EXPECT_THAT(verdicts_, ElementsAre("failing: connect 127.0.0.1:10250: Connection refused"));
  EXPECT_TRUE(monitor_->failing());
  // Failing on is still the same run of failures: nothing new to act on.
  checkOnce(false, "again");
  checkOnce(false, "again");
  EXPECT_EQ(verdicts_.size(), 1u);
  EXPECT_EQ(monitor_->consecutiveFailures(), 5u);
}

TEST_F(ProbeMonitorTest, ASuccessStartsTheCountAgain) {
  make(spec(3));
  monitor_->unitStarted();
  clock_.advance(20s);
  checkOnce(false);
  checkOnce(false);
  checkOnce(true);
  EXPECT_EQ(monitor_->consecutiveFailures(), 0u);
  checkOnce(false);
  checkOnce(false);
  EXPECT_THAT(verdicts_, IsEmpty());
  checkOnce(false, "down");
  EXPECT_THAT(verdicts_, ElementsAre("failing: down"));
}

// The cooldown after each start: a unit restarted for failing its probe gets
// its initialDelay again before it can be found failing again.
TEST_F(ProbeMonitorTest, EachStartWaitsInitialDelayAndCountsAfresh) {
  make(spec(2));
  monitor_->unitStarted();
  clock_.advance(20s);
  checkOnce(false, "down");
  checkOnce(false, "down");
  ASSERT_THAT(verdicts_, ElementsAre("failing: down"));

  // The healer restarted it.
  monitor_->unitStarted();
  EXPECT_EQ(monitor_->consecutiveFailures(), 0u);
  const size_t before = prober_.started();
  clock_.advance(30s - 1ms);
  EXPECT_EQ(prober_.started(), before) << "probed a restarted unit during its initial delay";
  clock_.advance(1ms);
  ASSERT_EQ(prober_.started(), before + 1);
  prober_.finish(false, "still down");
  EXPECT_EQ(verdicts_.size(), 1u) << "one failure after a restart is below the threshold";
  checkOnce(false, "still down");
  // Reported again, so that the unit is restarted again (with backoff).
  EXPECT_THAT(verdicts_, ElementsAre("failing: down", "failing: still down"));
}

TEST_F(ProbeMonitorTest, HealthyAgainAfterSuccessThreshold) {
  make(spec(1, 2));
  monitor_->unitStarted();
  clock_.advance(20s);
  checkOnce(false, "down");
  ASSERT_THAT(verdicts_, ElementsAre("failing: down"));
  checkOnce(true, "HTTP 200");
  EXPECT_TRUE(monitor_->failing()) << "one success is below the success threshold";
  EXPECT_EQ(verdicts_.size(), 1u);
  checkOnce(true, "HTTP 200");
  EXPECT_FALSE(monitor_->failing());
  EXPECT_THAT(verdicts_, ElementsAre("failing: down", "healthy: HTTP 200"));
  // Healthy on: no news.
  checkOnce(true);
  EXPECT_EQ(verdicts_.size(), 2u);
}

TEST_F(ProbeMonitorTest, SuccessesMustBeInARow) {
  make(spec(1, 2));
  monitor_->unitStarted();
  clock_.advance(20s);
  checkOnce(false, "down");
  checkOnce(true);
  checkOnce(false, "down");
  checkOnce(true);
  EXPECT_TRUE(monitor_->failing());
  checkOnce(true, "up");
  EXPECT_FALSE(monitor_->failing());
  EXPECT_EQ(verdicts_.back(), "healthy: up");
}

// The verdict outlives a restart: a unit restarted for its probe reports
// healthy once it passes again, which clears what was raised for it.
TEST_F(ProbeMonitorTest, RecoveryAfterARestartIsReported) {
  make(spec(1, 1));
  monitor_->unitStarted();
  clock_.advance(20s);
  checkOnce(false, "down");
  monitor_->unitStarted();
  EXPECT_TRUE(monitor_->failing());
  clock_.advance(30s);
  prober_.finish(true, "up");
  EXPECT_THAT(verdicts_, ElementsAre("failing: down", "healthy: up"));
}

TEST_F(ProbeMonitorTest, NoOverlapWhenACheckOutlastsTheInterval) {
  make(spec());
  monitor_->unitStarted();
  clock_.advance(30s);
  ASSERT_EQ(prober_.started(), 1u);
  clock_.advance(95s);  // nine and a half intervals without an answer
  EXPECT_EQ(prober_.started(), 1u);
  EXPECT_TRUE(monitor_->checkInFlight());
  prober_.finish(false);
  // Overdue: the next one starts right away, not an interval later.
  clock_.advance(0s);
  EXPECT_EQ(prober_.started(), 2u);
  prober_.finish(true);
  EXPECT_EQ(prober_.maxInFlight(), 1u);
}

TEST_F(ProbeMonitorTest, IntervalCountsFromTheStartOfEachCheck) {
  make(spec());
  monitor_->unitStarted();
  clock_.advance(30s);
  ASSERT_EQ(prober_.started(), 1u);
  clock_.advance(3s);
  prober_.finish(true);
  clock_.advance(7s - 1ms);
  EXPECT_EQ(prober_.started(), 1u);
  clock_.advance(1ms);
  EXPECT_EQ(prober_.started(), 2u);
}

TEST_F(ProbeMonitorTest, NothingWhileStopped) {
  make(spec(1));
  monitor_->unitStarted();
  clock_.advance(30s);
  ASSERT_EQ(prober_.started(), 1u);
  monitor_->unitStopped();
  EXPECT_FALSE(monitor_->probing());
  // The answer about the process that is gone counts for nothing.
  prober_.finish(false, "down");
  EXPECT_THAT(verdicts_, IsEmpty());
  EXPECT_THAT(results_, IsEmpty());
  EXPECT_FALSE(monitor_->lastResult().has_value());
  clock_.advance(1h);
  EXPECT_EQ(prober_.started(), 1u);

  monitor_->unitStarted();
  clock_.advance(30s);
  EXPECT_EQ(prober_.started(), 2u);
  prober_.finish(false, "down");
  EXPECT_THAT(verdicts_, ElementsAre("failing: down"));
}

TEST_F(ProbeMonitorTest, ARestartDuringACheckDropsItsResultAndWaitsForIt) {
  ProbeSpec s = spec(1);
  s.initialDelay = 0s;
  make(s);
  monitor_->unitStarted();
  clock_.advance(0s);
  ASSERT_EQ(prober_.started(), 1u);
  monitor_->unitStarted();
  clock_.advance(0s);
  EXPECT_EQ(prober_.started(), 1u) << "a second check started while the first was in flight";
  prober_.finish(false, "about the old process");
  EXPECT_THAT(verdicts_, IsEmpty());
  // The check that was due meanwhile starts now.
  EXPECT_EQ(prober_.started(), 2u);
  prober_.finish(false, "about the new one");
  EXPECT_THAT(verdicts_, ElementsAre("failing: about the new one"));
  EXPECT_EQ(prober_.maxInFlight(), 1u);
}

TEST_F(ProbeMonitorTest, EveryCountedResultReachesTheHookAndTheAccessors) {
  make(spec());
  monitor_->unitStarted();
  clock_.advance(30s);
  const core::WallTime checkedAt = clock_.wallNow();
  clock_.advance(250ms);
  prober_.finish(true, "HTTP 200", 250ms);
  ASSERT_EQ(results_.size(), 1u);
  EXPECT_TRUE(results_[0].ok);
  EXPECT_EQ(results_[0].duration, 250ms);
  ASSERT_TRUE(monitor_->lastResult().has_value());
  EXPECT_EQ(monitor_->lastResult()->message, "HTTP 200");
  EXPECT_EQ(monitor_->lastCheck(), checkedAt);
  EXPECT_EQ(monitor_->consecutiveSuccesses(), 1u);
  checkOnce(false, "HTTP 500 from http://x/");
  ASSERT_EQ(results_.size(), 2u);
  EXPECT_FALSE(results_[1].ok);
  EXPECT_EQ(monitor_->consecutiveSuccesses(), 0u);
  EXPECT_EQ(monitor_->consecutiveFailures(), 1u);
}

TEST_F(ProbeMonitorTest, TheListenerMayDestroyTheMonitor) {
  monitor_ = std::make_unique<ProbeMonitor>(clock_, prober_, spec(1),
                                            [this](bool, const ProbeResult&) { monitor_.reset(); });
  monitor_->unitStarted();
  clock_.advance(30s);
  prober_.finish(false);
  EXPECT_EQ(monitor_, nullptr);
  clock_.advance(1h);
  EXPECT_EQ(prober_.started(), 1u);
}

TEST_F(ProbeMonitorTest, AnAnswerAfterDestructionIsIgnored) {
  make(spec(1));
  monitor_->unitStarted();
  clock_.advance(30s);
  monitor_.reset();
  prober_.finish(false);
  EXPECT_THAT(verdicts_, IsEmpty());
}

v1::Unit unit(const std::string& name, v1::UnitState state = v1::UNIT_STATE_RUNNING) {
  v1::Unit u;
  u.set_name(name);
  u.set_state(state);
  return u;
}

TEST(ProbeForTest, KubeletAndContainerdHaveBuiltInProbes) {
  auto kubelet = probeFor(unit("kubelet.service"));
  ASSERT_TRUE(kubelet.has_value());
  EXPECT_EQ(kubelet->describe(), "HTTP GET http://127.0.0.1:10248/healthz");
  EXPECT_EQ(kubelet->initialDelay, 60s);
  EXPECT_EQ(kubelet->failureThreshold, 3u);
  EXPECT_TRUE(kubelet->accepts(200));
  EXPECT_FALSE(kubelet->accepts(500));
  auto containerd = probeFor(unit("containerd.service"));
  ASSERT_TRUE(containerd.has_value());
  EXPECT_EQ(containerd->describe(), "TCP connect unix:/run/containerd/containerd.sock");
  EXPECT_EQ(containerd->initialDelay, 30s);
  EXPECT_FALSE(probeFor(unit("app.service")).has_value());
}

TEST(ProbeForTest, OnlyUnitsKeptRunningAreProbed) {
  EXPECT_FALSE(probeFor(unit("kubelet.service", v1::UNIT_STATE_UNSPECIFIED)).has_value());
  EXPECT_FALSE(probeFor(unit("kubelet.service", v1::UNIT_STATE_STOPPED)).has_value());
}

TEST(ProbeForTest, DisabledMeansNoProbeAtAll) {
  v1::Unit kubelet = unit("kubelet.service");
  kubelet.mutable_probe()->set_disabled(true);
  EXPECT_FALSE(probeFor(kubelet).has_value());
}

TEST(ProbeForTest, OwnProbeWithDefaultsApplied) {
  v1::Unit kubelet = unit("kubelet.service");
  auto* http = kubelet.mutable_probe()->mutable_http();
  http->set_url("https://127.0.0.1:10250/healthz");
  http->add_expected_statuses(204);
  http->set_ca_file("/etc/kubernetes/pki/ca.crt");
  kubelet.mutable_probe()->set_interval("30s");
  kubelet.mutable_probe()->set_success_threshold(2);
  auto probe = probeFor(kubelet);
  ASSERT_TRUE(probe.has_value());
  EXPECT_EQ(probe->describe(), "HTTP GET https://127.0.0.1:10250/healthz");
  EXPECT_EQ(probe->caFile, "/etc/kubernetes/pki/ca.crt");
  EXPECT_TRUE(probe->accepts(204));
  EXPECT_FALSE(probe->accepts(200));
  EXPECT_EQ(probe->interval, 30s);
  EXPECT_EQ(probe->timeout, 2s);
  EXPECT_EQ(probe->initialDelay, 10s);
  EXPECT_EQ(probe->failureThreshold, 3u);
  EXPECT_EQ(probe->successThreshold, 2u);

  v1::Unit app = unit("app.service");
  app.mutable_probe()->mutable_exec()->add_command("/usr/bin/crictl");
  app.mutable_probe()->mutable_exec()->add_command("info");
  app.mutable_probe()->set_initial_delay("0s");
  auto exec = probeFor(app);
  ASSERT_TRUE(exec.has_value());
  EXPECT_EQ(exec->describe(), "exec /usr/bin/crictl info");
  EXPECT_EQ(exec->initialDelay, 0s);
}

}  // namespace
}  // namespace nodewarden::heal
