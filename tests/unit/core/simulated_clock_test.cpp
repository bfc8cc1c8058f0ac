#include "agent/core/simulated_clock.h"

#include <gtest/gtest.h>

#include <vector>

namespace nodewarden::core {
namespace {

using namespace std::chrono_literals;

TEST(SimulatedClockTest, TimersFireInDeadlineOrderAtTheirOwnTime) {
  SimulatedClock clock;
  const MonotonicTime start = clock.now();
  std::vector<std::pair<int, Duration>> fired;
  auto late = clock.createTimer([&] { fired.emplace_back(2, clock.now() - start); });
  auto early = clock.createTimer([&] { fired.emplace_back(1, clock.now() - start); });
  late->armIn(10s);
  early->armIn(3s);

  clock.advance(2s);
  EXPECT_TRUE(fired.empty());
  clock.advance(20s);
  ASSERT_EQ(fired.size(), 2u);
  EXPECT_EQ(fired[0], std::make_pair(1, Duration(3s)));
  EXPECT_EQ(fired[1], std::make_pair(2, Duration(10s)));
  EXPECT_EQ(clock.now() - start, 22s);
  EXPECT_FALSE(late->armed());
}

TEST(SimulatedClockTest, CancelledAndDestroyedTimersDoNotFire) {
  SimulatedClock clock;
  int fired = 0;
  auto cancelled = clock.createTimer([&] { ++fired; });
  cancelled->armIn(1s);
  cancelled->cancel();
  {
    auto destroyed = clock.createTimer([&] { ++fired; });
    destroyed->armIn(1s);
  }
  clock.advance(5s);
  EXPECT_EQ(fired, 0);
  EXPECT_EQ(clock.armedTimers(), 0u);
}

TEST(SimulatedClockTest, TimerRearmedFromItsCallbackFiresAgainWithinOneAdvance) {
  SimulatedClock clock;
  int fired = 0;
  std::unique_ptr<Timer> timer;
  timer = clock.createTimer([&] {
    if (++fired < 3) timer->armIn(1s);
  });
  timer->armIn(1s);
  clock.advance(10s);
  EXPECT_EQ(fired, 3);
}

TEST(SimulatedClockTest, WallTimeMovesWithMonotonicTime) {
  SimulatedClock clock;
  const WallTime before = clock.wallNow();
  clock.advance(90s);
  EXPECT_EQ(clock.wallNow() - before, 90s);
}

}  // namespace
}  // namespace nodewarden::core
