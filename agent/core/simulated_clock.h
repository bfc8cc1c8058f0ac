#pragma once

#include <map>
#include <memory>

#include "agent/core/clock.h"

namespace nodewarden::core {

// A clock for tests: time stands still until advance(), which fires the timers
// that fall due, in order of their deadlines, each seeing now() at its deadline.
class SimulatedClock final : public Clock {
 public:
  SimulatedClock();
  ~SimulatedClock() override;

  MonotonicTime now() const override { return now_; }
  WallTime wallNow() const override { return wallEpoch_ + (now_ - monotonicEpoch_); }
  std::unique_ptr<Timer> createTimer(std::function<void()> callback) override;

  void advance(Duration delta);
  size_t armedTimers() const { return schedule_.size(); }

 private:
  class SimulatedTimer;
  friend class SimulatedTimer;

  using Schedule = std::multimap<MonotonicTime, SimulatedTimer*>;

  MonotonicTime now_;
  const MonotonicTime monotonicEpoch_;
  const WallTime wallEpoch_;
  Schedule schedule_;
};

}  // namespace nodewarden::core
