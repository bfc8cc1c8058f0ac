#include "agent/core/simulated_clock.h"

#include <utility>

namespace nodewarden::core {

class SimulatedClock::SimulatedTimer final : public Timer {
 public:
  SimulatedTimer(SimulatedClock& clock, std::function<void()> callback)
      : clock_(clock), callback_(std::move(callback)) {}
  ~SimulatedTimer() override { cancel(); }

  void armIn(Duration delay) override {
    cancel();
    entry_ = clock_.schedule_.emplace(clock_.now_ + delay, this);
    armed_ = true;
  }
  void cancel() override {
    if (!armed_) return;
    clock_.schedule_.erase(entry_);
    armed_ = false;
  }
  bool armed() const override { return armed_; }

  void fire() {
    armed_ = false;
    callback_();  // may re-arm or destroy this timer: touch nothing after
  }

 private:
  SimulatedClock& clock_;
  std::function<void()> callback_;
  Schedule::iterator entry_;
  bool armed_ = false;
};

SimulatedClock::SimulatedClock()
    : now_(MonotonicTime(std::chrono::hours(1))),
      monotonicEpoch_(now_),
      wallEpoch_(WallTime(std::chrono::seconds(1'800'000'000))) {}

SimulatedClock::~SimulatedClock() = default;

std::unique_ptr<Timer> SimulatedClock::createTimer(std::function<void()> callback) {
  return std::make_unique<SimulatedTimer>(*this, std::move(callback));
}

void SimulatedClock::advance(Duration delta) {
  const MonotonicTime target = now_ + delta;
  while (!schedule_.empty() && schedule_.begin()->first <= target) {
    auto due = schedule_.begin();
    now_ = due->first;
    SimulatedTimer* timer = due->second;
    schedule_.erase(due);
    timer->fire();
  }
  now_ = target;
}

}  // namespace nodewarden::core
