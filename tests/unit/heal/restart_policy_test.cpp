#include "agent/heal/restart_policy.h"

#include <gtest/gtest.h>

#include "agent/core/simulated_clock.h"

namespace nodewarden::heal {
namespace {

using namespace std::chrono_literals;

class RestartPolicyTest : public ::testing::Test {
 protected:
  RestartPolicy policy(RestartPolicy::Options options = {}) {
    return RestartPolicy(clock_, options, [this] { return random_; });
  }
  // Fails, waits as told, restarts; returns the delay.
  core::Duration failAndRestart(RestartPolicy& policy, const std::string& unit) {
    const core::Duration delay = policy.delayBeforeRestart(unit);
    clock_.advance(delay);
    policy.restarted(unit);
    return delay;
  }

  core::SimulatedClock clock_;
  double random_ = 0.0;
};

TEST_F(RestartPolicyTest, FirstRestartIsImmediate) {
  auto p = policy();
  EXPECT_EQ(p.delayBeforeRestart("kubelet.service"), 0s);
}

TEST_F(RestartPolicyTest, RepeatedFailuresBackOffExponentiallyUpToTheCap) {
  auto p = policy({.backoffCap = 20s});
  std::vector<core::Duration> delays;
  for (int i = 0; i < 8; ++i) {
    delays.push_back(failAndRestart(p, "kubelet.service"));
    clock_.advance(100ms);  // runs briefly, then fails again
  }
  EXPECT_EQ(delays, (std::vector<core::Duration>{0s, 1s, 2s, 4s, 8s, 16s, 20s, 20s}));
}

TEST_F(RestartPolicyTest, JitterOnlyShortensTheDelayByAtMostItsShare) {
  auto p = policy({.backoffCap = 5min, .jitter = 0.2});
  failAndRestart(p, "a.service");
  failAndRestart(p, "a.service");  // 1 s
  random_ = 0.999;
  const core::Duration delay = p.delayBeforeRestart("a.service");  // 2 s less up to 20 %
  EXPECT_GT(delay, 1600ms);
  EXPECT_LE(delay, 2s);
  random_ = 0.5;
  EXPECT_EQ(p.delayBeforeRestart("a.service"), 1800ms);
}

TEST_F(RestartPolicyTest, AUnitThatRanLongEnoughStartsOverAtImmediate) {
  auto p = policy({.backoffResetAfter = 1min});
  failAndRestart(p, "a.service");
  failAndRestart(p, "a.service");
  failAndRestart(p, "a.service");
  EXPECT_EQ(p.delayBeforeRestart("a.service"), 4s);
  clock_.advance(1min);
  EXPECT_EQ(p.delayBeforeRestart("a.service"), 0s);
  p.restarted("a.service");
  clock_.advance(1s);
  EXPECT_EQ(p.delayBeforeRestart("a.service"), 1s) << "the streak starts over";
}

TEST_F(RestartPolicyTest, UnitsBackOffIndependently) {
  auto p = policy();
  failAndRestart(p, "a.service");
  failAndRestart(p, "a.service");
  EXPECT_EQ(p.delayBeforeRestart("a.service"), 2s);
  EXPECT_EQ(p.delayBeforeRestart("b.service"), 0s);
}

TEST_F(RestartPolicyTest, CrashLoopingAtTheThresholdWithinTheWindow) {
  auto p = policy({.crashLoopRestarts = 5, .crashLoopWindow = 10min});
  for (int i = 0; i < 4; ++i) {
    failAndRestart(p, "a.service");
    EXPECT_FALSE(p.crashLooping("a.service")) << "after restart " << i + 1;
  }
  failAndRestart(p, "a.service");
  EXPECT_TRUE(p.crashLooping("a.service"));
  EXPECT_EQ(p.recentRestarts("a.service"), 5u);
  EXPECT_EQ(p.totalRestarts("a.service"), 5u);
}

TEST_F(RestartPolicyTest, CrashLoopingEndsAsRestartsLeaveTheWindow) {
  auto p = policy({.crashLoopRestarts = 3, .crashLoopWindow = 10min});
  failAndRestart(p, "a.service");  // t = 0
  failAndRestart(p, "a.service");  // t = 1 s
  failAndRestart(p, "a.service");  // t = 3 s
  ASSERT_TRUE(p.crashLooping("a.service"));
  auto moves = p.windowMovesAt("a.service");
  ASSERT_TRUE(moves.has_value());
  clock_.advance(*moves - clock_.now());
  EXPECT_FALSE(p.crashLooping("a.service"));
  EXPECT_EQ(p.recentRestarts("a.service"), 2u);
  EXPECT_EQ(p.totalRestarts("a.service"), 3u);
}

TEST_F(RestartPolicyTest, RestartsSpreadBeyondTheWindowNeverCrashLoop) {
  auto p = policy({.crashLoopRestarts = 3, .crashLoopWindow = 10min});
  for (int i = 0; i < 10; ++i) {
    failAndRestart(p, "a.service");
    clock_.advance(6min);
    EXPECT_FALSE(p.crashLooping("a.service"));
  }
}

TEST_F(RestartPolicyTest, ForgottenUnitsStartOver) {
  auto p = policy();
  failAndRestart(p, "a.service");
  failAndRestart(p, "a.service");
  p.forget("a.service");
  EXPECT_EQ(p.delayBeforeRestart("a.service"), 0s);
  EXPECT_EQ(p.totalRestarts("a.service"), 0u);
}

}  // namespace
}  // namespace nodewarden::heal
