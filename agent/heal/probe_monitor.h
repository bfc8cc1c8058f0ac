#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>

#include "agent/core/clock.h"
#include "agent/heal/probe.h"

namespace nodewarden::heal {

// Runs one unit's probe on its schedule while the unit runs, and tells when
// the unit should count as failing or as healthy again.
//
// Each start of the unit (unitStarted()) waits initialDelay before the first
// check, with the counts reset: a slow starter gets its grace period again
// after every restart instead of being killed while it comes up. Checks then
// follow every interval, measured from the start of one check to the start
// of the next; one still running when the next is due delays it, so two
// checks of a probe never overlap. Nothing is checked while the unit is
// stopped, and a result that arrives after the unit stopped or restarted is
// dropped: it describes a process that is gone.
//
// The verdict listener hears failing=true when failureThreshold checks in a
// row have failed since the unit started or since the last success: once per
// such run of failures, so a unit restarted for it that keeps failing is
// reported again. It hears failing=false when, after that, successThreshold
// checks in a row succeed. The result hook hears every counted result.
// Lives on the loop thread; destroying it abandons the check in flight.
class ProbeMonitor final {
 public:
  using VerdictListener = std::function<void(bool failing, const ProbeResult& last)>;
  using ResultHook = std::function<void(const ProbeResult& result)>;

  ProbeMonitor(core::Clock& clock, Prober& prober, ProbeSpec spec, VerdictListener onVerdict,
               ResultHook onResult = {});
  ~ProbeMonitor();

  ProbeMonitor(const ProbeMonitor&) = delete;
  ProbeMonitor& operator=(const ProbeMonitor&) = delete;

  // The unit (re)started: probe it after initialDelay, counting afresh.
  void unitStarted();
  // The unit stopped: no checks until it starts again.
  void unitStopped();

  const ProbeSpec& spec() const { return spec_; }
  // Whether checks are scheduled (the unit runs).
  bool probing() const { return probing_; }
  // The last verdict: failing since failureThreshold failures, until
  // successThreshold successes. It outlives restarts and stops.
  bool failing() const { return failing_; }
  uint32_t consecutiveFailures() const { return failures_; }
  uint32_t consecutiveSuccesses() const { return successes_; }
  const std::optional<ProbeResult>& lastResult() const { return lastResult_; }
  // When the check that gave lastResult() began, for display.
  std::optional<core::WallTime> lastCheck() const { return lastCheck_; }
  bool checkInFlight() const { return inFlight_; }

 private:
  void due();
  void startCheck();
  void finished(uint64_t start, ProbeResult result);

  core::Clock& clock_;
  Prober& prober_;
  const ProbeSpec spec_;
  VerdictListener onVerdict_;
  ResultHook onResult_;
  std::unique_ptr<core::Timer> timer_;

  bool probing_ = false;
  // Counts unitStarted() and unitStopped(): a check begun under another
  // value concerns a process that is gone.
  uint64_t generation_ = 0;
  bool inFlight_ = false;
  // The timer fired while a stale check was still in flight.
  bool dueWhileInFlight_ = false;
  core::MonotonicTime checkStarted_{};
  core::WallTime checkStartedWall_{};

  bool failing_ = false;
  uint32_t failures_ = 0;
  uint32_t successes_ = 0;
  std::optional<ProbeResult> lastResult_;
  std::optional<core::WallTime> lastCheck_;

  // Prober callbacks that outlive the monitor find it gone.
  std::shared_ptr<ProbeMonitor*> self_;
};

}  // namespace nodewarden::heal
