#include "agent/heal/healer.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <deque>
#include <set>

#include "agent/core/simulated_clock.h"
#include "agent/heal/health.h"
#include "tests/fakes/fake_systemd_manager.h"

namespace nodewarden::heal {
namespace {

using namespace std::chrono_literals;
using ::testing::ElementsAre;
using ::testing::IsEmpty;

constexpr char kUnit[] = "worker.service";

// A prober whose checks the test answers, one at a time, in order.
class ScriptedProber final : public Prober {
 public:
  void check(const ProbeSpec& spec, Callback done) override {
    pending_.push_back({spec.describe(), std::move(done)});
  }
  size_t pending() const { return pending_.size(); }
  std::string nextTarget() const { return pending_.front().first; }
  void answer(bool ok, std::string message = "") {
    ASSERT_FALSE(pending_.empty()) << "no check in flight";
    auto done = std::move(pending_.front().second);
    pending_.pop_front();
    done({.ok = ok, .message = std::move(message), .duration = 1ms});
  }
  // Answers every check in flight whose target contains `target`.
  void answerAll(const std::string& target, bool ok, std::string message = "") {
    std::deque<std::pair<std::string, Callback>> others;
    std::vector<Callback> chosen;
    for (auto& [what, done] : pending_) {
      if (what.find(target) != std::string::npos) {
        chosen.push_back(std::move(done));
      } else {
        others.emplace_back(what, std::move(done));
      }
    }
    pending_ = std::move(others);
    for (auto& done : chosen) done({.ok = ok, .message = message, .duration = 1ms});
  }

 private:
  std::deque<std::pair<std::string, Callback>> pending_;
};

systemd::UnitStatus running() {
  return {.loadState = "loaded", .activeState = "active", .subState = "running"};
}

class HealerTest : public ::testing::Test {
 protected:
  HealerTest() {
    systemd_.setUnit(kUnit, running());
    systemd_.setUnit("kubelet.service", running());
    systemd_.setUnit("containerd.service", running());
  }

  Healer& healer(RestartPolicy::Options options = {}) {
    healer_ = std::make_unique<Healer>(
        clock_, systemd_, board_, &prober_, options,
        Healer::Hooks{.paused = [this](const std::string& unit) { return paused_.contains(unit); },
                      .restarted =
                          [this](const std::string& unit, const std::string& reason) {
                            restarts_.push_back(unit + " " + reason);
                          },
                      .probed = {},
                      .oomKilled = [this](const std::string& unit,
                                          const std::string&) { ooms_.push_back(unit); }});
    return *healer_;
  }

  void crash(const std::string& unit, const std::string& result = "signal") {
    systemd_.setActivity(unit, {.activeState = "failed", .subState = "failed", .result = result});
  }

  std::vector<std::string> eventReasons(const std::string& subject) const {
    std::vector<std::string> reasons;
    for (const Event& e : board_.events()) {
      if (e.subject == subject) reasons.push_back(e.reason);
    }
    return reasons;
  }

  bool conditionHolds(const std::string& subject, const std::string& type) const {
    return board_.holds(subject, type);
  }

  size_t count(const std::string& change) const {
    const auto changes = systemd_.changes();
    return static_cast<size_t>(std::count(changes.begin(), changes.end(), change));
  }

  static ProbeSpec httpProbe(const std::string& url) {
    ProbeSpec spec;
    spec.kind = ProbeSpec::Kind::kHttp;
    spec.url = url;
    spec.interval = 10s;
    spec.timeout = 2s;
    spec.initialDelay = 0s;
    spec.failureThreshold = 3;
    spec.successThreshold = 1;
    return spec;
  }

  core::SimulatedClock clock_;
  systemd::FakeSystemdManager systemd_;
  HealthBoard board_{clock_, ""};
  ScriptedProber prober_;
  std::set<std::string> paused_;
  std::vector<std::string> restarts_;
  std::vector<std::string> ooms_;
  std::unique_ptr<Healer> healer_;
};

TEST_F(HealerTest, AFailedUnitIsStartedAgainAtOnce) {
  healer().setUnits({{.name = kUnit}});
  ASSERT_TRUE(systemd_.watched(kUnit));

  crash(kUnit);

  EXPECT_THAT(systemd_.changes(),
              ElementsAre("reset-failed worker.service", "start worker.service"));
  EXPECT_THAT(restarts_, ElementsAre("worker.service failed"));
  systemd_.completeJobs();
  EXPECT_EQ(systemd_.unit(kUnit).activeState, "active");
  EXPECT_TRUE(conditionHolds(kUnit, condition::kHealthy));
  EXPECT_THAT(eventReasons(kUnit), ElementsAre("Restarted"));
  EXPECT_THAT(board_.events().back().message, ::testing::HasSubstr("failed (signal)"));
}

TEST_F(HealerTest, RepeatedSignalsOfOneFailureRestartOnce) {
  healer().setUnits({{.name = kUnit}});
  crash(kUnit);
  // systemd repeats the state in further signals for the same event.
  systemd_.setActivity(
      kUnit, {.activeState = "failed", .subState = "failed", .result = "signal", .restarts = 0});
  systemd_.setActivity(
      kUnit,
      {.activeState = "failed", .subState = "failed", .result = "signal", .jobPending = false});
  EXPECT_THAT(restarts_, ElementsAre("worker.service failed"));
}

TEST_F(HealerTest, WhatAUnitLooksLikeWhenTheWatchBeginsIsLeftToTheConverge) {
  systemd_.setUnit(kUnit, {.loadState = "loaded", .activeState = "failed", .subState = "failed"});
  healer().setUnits({{.name = kUnit}});
  EXPECT_THAT(systemd_.changes(), IsEmpty());
  EXPECT_FALSE(conditionHolds(kUnit, condition::kHealthy));
}

TEST_F(HealerTest, AUnitThatSystemdRestartsItselfIsLeftToSystemd) {
  healer().setUnits({{.name = kUnit}});
  systemd_.setActivity(
      kUnit, {.activeState = "activating", .subState = "auto-restart", .result = "signal"});
  systemd_.setActivity(kUnit, {.activeState = "active", .subState = "running"});
  EXPECT_THAT(systemd_.changes(), IsEmpty());
}

TEST_F(HealerTest, AStopWithAJobStillQueuedIsNotADownUnit) {
  healer().setUnits({{.name = kUnit}});
  // A restart by the converge engine passes through inactive with its job queued.
  systemd_.setActivity(kUnit, {.activeState = "inactive", .subState = "dead", .jobPending = true});
  EXPECT_THAT(systemd_.changes(), IsEmpty());
  systemd_.setActivity(kUnit, {.activeState = "active", .subState = "running"});
  EXPECT_THAT(systemd_.changes(), IsEmpty());
}

TEST_F(HealerTest, AnOperatorStopIsUndoneWhenNotPaused) {
  healer().setUnits({{.name = kUnit}});
  systemd_.setActivity(
      kUnit, {.activeState = "deactivating", .subState = "stop-sigterm", .jobPending = true});
  systemd_.setActivity(kUnit, {.activeState = "inactive", .subState = "dead"});
  EXPECT_THAT(systemd_.changes(), ElementsAre("start worker.service"));
}

TEST_F(HealerTest, RepeatedFailuresBackOffThenCrashLoop) {
  healer({.backoffCap = 5min, .crashLoopRestarts = 3, .jitter = 0});
  healer_->setUnits({{.name = kUnit}});

  crash(kUnit);  // restart 1: immediate
  systemd_.completeJobs();
  clock_.advance(100ms);
  crash(kUnit);  // restart 2 after 1 s
  EXPECT_EQ(restarts_.size(), 1u);
  EXPECT_THAT(eventReasons(kUnit), ElementsAre("Restarted", "BackOff"));
  clock_.advance(999ms);
  EXPECT_EQ(restarts_.size(), 1u);
  clock_.advance(1ms);
  EXPECT_EQ(restarts_.size(), 2u);
  systemd_.completeJobs();
  EXPECT_FALSE(conditionHolds(kUnit, condition::kCrashLooping));

  clock_.advance(100ms);
  crash(kUnit);  // restart 3 after 2 s
  clock_.advance(1999ms);
  EXPECT_EQ(restarts_.size(), 2u);
  clock_.advance(1ms);
  EXPECT_EQ(restarts_.size(), 3u);
  EXPECT_TRUE(conditionHolds(kUnit, condition::kCrashLooping));
  EXPECT_THAT(eventReasons(kUnit), ElementsAre("Restarted", "BackOff", "Restarted", "BackOff",
                                               "Restarted", "CrashLooping"));

  // Ten minutes on, the restarts have left the window.
  systemd_.completeJobs();
  clock_.advance(10min);
  EXPECT_FALSE(conditionHolds(kUnit, condition::kCrashLooping));
  EXPECT_EQ(eventReasons(kUnit).back(), "CrashLoopEnded");
}

TEST_F(HealerTest, ABackedOffRestartIsDroppedWhenSomeoneElseStartsTheUnit) {
  healer({.jitter = 0});
  healer_->setUnits({{.name = kUnit}});
  crash(kUnit);
  systemd_.completeJobs();
  crash(kUnit);  // waits 1 s
  systemd_.setActivity(kUnit, {.activeState = "active", .subState = "running"});
  clock_.advance(5s);
  EXPECT_EQ(restarts_.size(), 1u);
}

TEST_F(HealerTest, AStartThatFailsIsRetriedAfterTheBackoff) {
  healer({.jitter = 0});
  healer_->setUnits({{.name = kUnit}});
  systemd_.failJobsFor(kUnit);
  crash(kUnit);
  systemd_.completeJobs();
  EXPECT_THAT(eventReasons(kUnit), ElementsAre("Restarted", "RestartFailed", "BackOff"));
  systemd_.clearFailures();
  clock_.advance(1s);
  EXPECT_EQ(restarts_.size(), 2u);
  systemd_.completeJobs();
  EXPECT_EQ(systemd_.unit(kUnit).activeState, "active");
}

TEST_F(HealerTest, NothingIsRepairedWhilePausedAndResumeRepairs) {
  healer().setUnits({{.name = kUnit}});
  paused_.insert(kUnit);
  crash(kUnit);
  EXPECT_THAT(systemd_.changes(), IsEmpty());
  EXPECT_THAT(eventReasons(kUnit), ElementsAre("NotRepaired"));
  EXPECT_FALSE(conditionHolds(kUnit, condition::kHealthy));

  paused_.clear();
  healer_->resumed();
  EXPECT_THAT(systemd_.changes(),
              ElementsAre("reset-failed worker.service", "start worker.service"));
}

TEST_F(HealerTest, UnitsLeavingTheStateAreNoLongerWatchedNorRepaired) {
  healer().setUnits({{.name = kUnit}});
  healer_->setUnits({});
  EXPECT_FALSE(systemd_.watched(kUnit));
  crash(kUnit);
  EXPECT_THAT(systemd_.changes(), IsEmpty());
  EXPECT_EQ(board_.get(kUnit, condition::kHealthy), nullptr);
}

TEST_F(HealerTest, AProbeFailingPastItsThresholdRestartsTheUnit) {
  healer().setUnits({{.name = kUnit, .probe = httpProbe("http://127.0.0.1:8080/healthz")}});
  clock_.advance(0s);
  ASSERT_EQ(prober_.pending(), 1u);
  prober_.answer(true);
  for (int i = 0; i < 2; ++i) {
    clock_.advance(10s);
    prober_.answer(false, "HTTP 500");
  }
  EXPECT_THAT(systemd_.changes(), IsEmpty()) << "two failures are below the threshold";
  clock_.advance(10s);
  prober_.answer(false, "HTTP 500");
  EXPECT_THAT(systemd_.changes(), ElementsAre("restart worker.service"));
  EXPECT_THAT(restarts_, ElementsAre("worker.service probe"));
  EXPECT_TRUE(conditionHolds(kUnit, condition::kProbeFailing));
  EXPECT_FALSE(conditionHolds(kUnit, condition::kHealthy));
  EXPECT_THAT(eventReasons(kUnit), ElementsAre("ProbeFailed", "Restarted"));

  // The restart is a new start: the probe starts over and recovers.
  systemd_.completeJobs();
  clock_.advance(0s);
  ASSERT_EQ(prober_.pending(), 1u);
  prober_.answer(true);
  EXPECT_FALSE(conditionHolds(kUnit, condition::kProbeFailing));
  EXPECT_TRUE(conditionHolds(kUnit, condition::kHealthy));
}

TEST_F(HealerTest, KubeletFailingWithContainerdRestartsContainerdFirst) {
  healer().setUnits(
      {{.name = "containerd.service", .probe = httpProbe("http://127.0.0.1:1/containerd")},
       {.name = "kubelet.service", .probe = httpProbe("http://127.0.0.1:1/kubelet")}});
  clock_.advance(0s);
  ASSERT_EQ(prober_.pending(), 2u);
  // Both fail three times in a row; containerd's verdict comes first.
  for (int round = 0; round < 3; ++round) {
    if (round > 0) clock_.advance(10s);
    for (int i = 0; i < 2; ++i) {
      if (prober_.nextTarget().find("containerd") != std::string::npos) {
        prober_.answer(false, "connection refused");
      } else {
        prober_.answer(false, "HTTP 503");
      }
    }
    if (round == 2) break;
  }
  // containerd failed its probe and was restarted on its own; kubelet then
  // waits for containerd's restart to finish before its own.
  std::vector<std::string> changes = systemd_.changes();
  ASSERT_FALSE(changes.empty());
  EXPECT_EQ(changes.front(), "restart containerd.service");
  systemd_.completeJobs();
  changes = systemd_.changes();
  EXPECT_EQ(changes.back(), "restart kubelet.service");
}

TEST_F(HealerTest, ARestartSeenRunningTwiceIsOneRestart) {
  healer().setUnits({{.name = kUnit}});
  crash(kUnit);
  // systemd repeats a failure with other fields changed.
  systemd_.setActivity(
      kUnit, {.activeState = "failed", .subState = "failed", .result = "signal", .restarts = 1});
  // The start as systemd signals it: its job clears only in a later signal,
  // after the job's end.
  systemd_.setActivity(
      kUnit,
      {.activeState = "activating", .subState = "start", .mainPid = 4242, .jobPending = true});
  systemd_.setActivity(
      kUnit, {.activeState = "active", .subState = "running", .mainPid = 4242, .jobPending = true});
  systemd_.completeJobs();
  systemd_.setActivity(kUnit, {.activeState = "active", .subState = "running", .mainPid = 4242});

  EXPECT_THAT(restarts_, ElementsAre("worker.service failed"));
  EXPECT_EQ(count("start worker.service"), 1u);
  EXPECT_TRUE(conditionHolds(kUnit, condition::kHealthy));
}

TEST_F(HealerTest, AStartRefusedBeforeTheUnitComesUpIsRetriedOnceItsJobIsGone) {
  healer({.jitter = 0}).setUnits({{.name = kUnit}});
  crash(kUnit);
  ASSERT_THAT(restarts_, ElementsAre("worker.service failed"));
  // A dependency failed: the unit never comes up, and systemd clears its Job
  // in a signal after the job's end.
  systemd_.failCall("start worker.service",
                    core::Status::failedPrecondition(
                        "start worker.service: job failed because a dependency failed"));
  systemd_.setActivity(kUnit, {.activeState = "inactive", .subState = "dead", .jobPending = true});
  systemd_.completeJobs();
  systemd_.clearFailures();
  systemd_.setActivity(kUnit, {.activeState = "inactive", .subState = "dead"});

  EXPECT_THAT(eventReasons(kUnit), ElementsAre("Restarted", "RestartFailed", "BackOff"));
  clock_.advance(1s);
  EXPECT_EQ(restarts_.size(), 2u);
  systemd_.completeJobs();
  EXPECT_EQ(systemd_.unit(kUnit).activeState, "active");
}

TEST_F(HealerTest, AProbeRestartWaitingOutItsBackoffIsDroppedWhenTheUnitGetsANewProcess) {
  healer({.jitter = 0}).setUnits({{.name = kUnit, .probe = httpProbe("http://127.0.0.1:1/h")}});
  for (int round = 0; round < 2; ++round) {
    // Three failures in a row: restarted at once the first time, after 1 s the next.
    for (int i = 0; i < 3; ++i) {
      clock_.advance(i == 0 ? 0s : 10s);
      prober_.answer(false, "HTTP 500");
    }
    systemd_.completeJobs();
  }
  ASSERT_EQ(restarts_.size(), 1u);
  ASSERT_EQ(eventReasons(kUnit).back(), "BackOff");

  // An operator restarts it meanwhile.
  systemd_.setActivity(kUnit, {.activeState = "active", .subState = "running", .mainPid = 4242});
  clock_.advance(5s);

  EXPECT_EQ(restarts_.size(), 1u) << "restarted a process that had just started";
}

TEST_F(HealerTest, KubeletWaitsForContainerdsRestartInItsBackoffRatherThanRestartingItTwice) {
  healer({.backoffBase = 1min, .jitter = 0})
      .setUnits(
          {{.name = "containerd.service", .probe = httpProbe("http://127.0.0.1:1/containerd")},
           {.name = "kubelet.service", .probe = httpProbe("http://127.0.0.1:1/kubelet")}});
  // containerd fails its probe from the start and is restarted at once (t=20s).
  for (int t = 0; t <= 20; t += 10) {
    clock_.advance(t == 0 ? 0s : 10s);
    prober_.answerAll("containerd", false, "connection refused");
    prober_.answerAll("kubelet", true);
  }
  ASSERT_EQ(count("restart containerd.service"), 1u);
  systemd_.completeJobs();
  // It keeps failing: its next restart waits 1 min (t=40s → 100s). kubelet
  // fails meanwhile, its third time at t=50s.
  clock_.advance(0s);
  prober_.answerAll("containerd", false, "connection refused");
  for (int t = 30; t <= 50; t += 10) {
    clock_.advance(10s);
    prober_.answerAll("containerd", false, "connection refused");
    prober_.answerAll("kubelet", false, "HTTP 503");
  }
  EXPECT_EQ(count("restart containerd.service"), 1u) << "containerd restarted during its backoff";
  EXPECT_EQ(count("restart kubelet.service"), 0u) << "kubelet restarted before containerd";

  clock_.advance(50s);
  EXPECT_EQ(count("restart containerd.service"), 2u);
  EXPECT_EQ(count("restart kubelet.service"), 0u);
  systemd_.completeJobs();
  EXPECT_EQ(count("restart containerd.service"), 2u);
  EXPECT_EQ(count("restart kubelet.service"), 1u);
}

TEST_F(HealerTest, ConditionsReadBackFromAnEarlierAgentAreRenewed) {
  // As health.json holds them from before the agent restarted.
  board_.set(kUnit, condition::kCrashLooping, true, "RestartedTooOften", "5 restarts within 10m");
  board_.set(kUnit, condition::kProbeFailing, true, "ProbeFailed", "HTTP 500");

  healer().setUnits({{.name = kUnit, .probe = httpProbe("http://127.0.0.1:8080/healthz")}});
  EXPECT_FALSE(conditionHolds(kUnit, condition::kCrashLooping))
      << "no restart is known to this agent, and none would end the condition";
  clock_.advance(0s);
  prober_.answer(true);

  EXPECT_FALSE(conditionHolds(kUnit, condition::kProbeFailing));
  EXPECT_TRUE(conditionHolds(kUnit, condition::kHealthy));
  EXPECT_THAT(eventReasons(kUnit), IsEmpty());
}

TEST_F(HealerTest, AUnitThatCannotBeWatchedIsTriedAgainAndRepairedOnceWatched) {
  systemd_.failCall("watch worker.service",
                    core::Status::internal("watch worker.service: Connection refused"));
  healer().setUnits({{.name = kUnit}});
  EXPECT_FALSE(systemd_.watched(kUnit));
  const Condition* healthy = board_.get(kUnit, condition::kHealthy);
  ASSERT_NE(healthy, nullptr);
  EXPECT_FALSE(healthy->status);
  EXPECT_EQ(healthy->reason, "NotWatched");
  EXPECT_THAT(healthy->message, ::testing::HasSubstr("Connection refused"));

  crash(kUnit);  // unheard
  systemd_.clearFailures();
  clock_.advance(Healer::kWatchRetryDelay - 1ns);
  EXPECT_FALSE(systemd_.watched(kUnit));
  EXPECT_THAT(systemd_.changes(), IsEmpty());

  clock_.advance(1ns);
  EXPECT_TRUE(systemd_.watched(kUnit));
  EXPECT_THAT(systemd_.changes(),
              ElementsAre("reset-failed worker.service", "start worker.service"));
}

TEST_F(HealerTest, ARestartDueWhilePausedIsOwedUntilResumed) {
  healer({.jitter = 0}).setUnits({{.name = kUnit}});
  crash(kUnit);
  systemd_.completeJobs();
  crash(kUnit);  // restart in 1 s
  paused_.insert(kUnit);
  clock_.advance(1s);
  EXPECT_EQ(restarts_.size(), 1u);

  healer_->resumed();  // something else resumed: the unit is still paused
  EXPECT_EQ(restarts_.size(), 1u);
  paused_.clear();
  healer_->resumed();
  clock_.advance(1min);
  EXPECT_EQ(restarts_.size(), 2u);
  systemd_.completeJobs();
  EXPECT_EQ(systemd_.unit(kUnit).activeState, "active");
}

TEST_F(HealerTest, SystemdReportingAnOomKillIsPassedOn) {
  healer().setUnits({{.name = kUnit}});
  crash(kUnit, "oom-kill");
  EXPECT_THAT(ooms_, ElementsAre(kUnit));
}

}  // namespace
}  // namespace nodewarden::heal
