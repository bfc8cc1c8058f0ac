#pragma once

#include <chrono>
#include <functional>
#include <memory>

namespace nodewarden::core {

using MonotonicTime = std::chrono::steady_clock::time_point;
using WallTime = std::chrono::system_clock::time_point;
using Duration = std::chrono::nanoseconds;

// A one-shot timer. Destroying it cancels it.
class Timer {
 public:
  virtual ~Timer() = default;
  // (Re)arms the timer to fire once, `delay` from now.
  virtual void armIn(Duration delay) = 0;
  virtual void cancel() = 0;
  virtual bool armed() const = 0;
};

// Time as code that waits or measures sees it. The real clock runs timers on the
// event loop; the simulated clock fires them when a test advances time.
class Clock {
 public:
  virtual ~Clock() = default;
  // Monotonic time, for intervals and deadlines.
  virtual MonotonicTime now() const = 0;
  // Wall-clock time, for display and certificates only.
  virtual WallTime wallNow() const = 0;
  virtual std::unique_ptr<Timer> createTimer(std::function<void()> callback) = 0;
};

}  // namespace nodewarden::core
