#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <string>

#include "agent/core/clock.h"

namespace nodewarden::heal {

// When to restart a unit that keeps failing, and when it counts as
// crash-looping. The first restart is immediate; each one that follows a
// failure soon after the previous restart waits twice as long as the one
// before (1s, 2s, 4s, ... up to the cap), less up to a fifth at random so that
// units failing together on many nodes don't restart in step. A unit that ran
// for backoffResetAfter since its last restart starts over at immediate.
// Restarts counted within the crash-loop window make it CrashLooping.
class RestartPolicy final {
 public:
  struct Options {
    core::Duration backoffBase = std::chrono::seconds(1);
    core::Duration backoffCap = std::chrono::minutes(5);
    uint32_t crashLoopRestarts = 5;
    core::Duration crashLoopWindow = std::chrono::minutes(10);
    core::Duration backoffResetAfter = std::chrono::minutes(1);
    // The largest share of a delay that jitter takes off.
    double jitter = 0.2;
  };
  // Returns a number in [0, 1).
  using Random = std::function<double()>;

  RestartPolicy(core::Clock& clock, Options options, Random random = {});

  void setOptions(const Options& options) { options_ = options; }
  const Options& options() const { return options_; }

  // How long to wait, from now, before restarting `unit`, which just went down.
  core::Duration delayBeforeRestart(const std::string& unit);
  // The unit was restarted now.
  void restarted(const std::string& unit);
  // Restarts within the crash-loop window ending now.
  uint32_t recentRestarts(const std::string& unit) const;
  bool crashLooping(const std::string& unit) const {
    return recentRestarts(unit) >= options_.crashLoopRestarts;
  }
  // When the oldest restart in the window leaves it; nullopt without restarts.
  std::optional<core::MonotonicTime> windowMovesAt(const std::string& unit) const;
  // Every restart since the agent started, the crash-loop window aside.
  uint64_t totalRestarts(const std::string& unit) const;
  void forget(const std::string& unit) { units_.erase(unit); }

 private:
  struct History {
    std::deque<core::MonotonicTime> restarts;  // within the window, oldest first
    core::MonotonicTime lastRestart{};
    uint32_t streak = 0;  // restarts in a row, each soon after the one before
    uint64_t total = 0;
  };
  void prune(History& history) const;

  core::Clock& clock_;
  Options options_;
  Random random_;
  std::map<std::string, History> units_;
};

}  // namespace nodewarden::heal
