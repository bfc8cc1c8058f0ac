#include "agent/heal/probe_monitor.h"

#include <algorithm>
#include <utility>

#include "agent/core/log.h"

namespace nodewarden::heal {

namespace {
const auto kLog = core::log::category("heal");
}  // namespace

ProbeMonitor::ProbeMonitor(core::Clock& clock, Prober& prober, ProbeSpec spec,
                           VerdictListener onVerdict, ResultHook onResult)
    : clock_(clock),
      prober_(prober),
      spec_(std::move(spec)),
      onVerdict_(std::move(onVerdict)),
      onResult_(std::move(onResult)),
      timer_(clock.createTimer([this] { due(); })),
      self_(std::make_shared<ProbeMonitor*>(this)) {}

ProbeMonitor::~ProbeMonitor() = default;

void ProbeMonitor::unitStarted() {
  probing_ = true;
  ++generation_;
  failures_ = 0;
  successes_ = 0;
  dueWhileInFlight_ = false;
  timer_->armIn(spec_.initialDelay);
}

void ProbeMonitor::unitStopped() {
  probing_ = false;
  ++generation_;
  dueWhileInFlight_ = false;
  timer_->cancel();
}

void ProbeMonitor::due() {
  if (!probing_) return;
  if (inFlight_) {
    // Only a check from before the last start can still run: this one's
    // schedule is re-armed when it ends.
    dueWhileInFlight_ = true;
    return;
  }
  startCheck();
}

void ProbeMonitor::startCheck() {
  inFlight_ = true;
  checkStarted_ = clock_.now();
  checkStartedWall_ = clock_.wallNow();
  std::weak_ptr<ProbeMonitor*> self = self_;
  prober_.check(spec_, [self, generation = generation_](ProbeResult result) {
    if (auto monitor = self.lock()) (*monitor)->finished(generation, std::move(result));
  });
}

void ProbeMonitor::finished(uint64_t generation, ProbeResult result) {
  inFlight_ = false;
  if (generation != generation_ || !probing_) {
    if (probing_ && dueWhileInFlight_) {
      dueWhileInFlight_ = false;
      startCheck();
    }
    return;
  }
  const core::Duration sinceStart = clock_.now() - checkStarted_;
  timer_->armIn(std::max(core::Duration::zero(), spec_.interval - sinceStart));

  lastCheck_ = checkStartedWall_;
  std::optional<bool> verdict;
  if (result.ok) {
    failures_ = 0;
    ++successes_;
    if (failing_ && successes_ == spec_.successThreshold) verdict = false;
  } else {
    successes_ = 0;
    ++failures_;
    NW_LOG(kLog, debug, "{} failed ({} in a row): {}", spec_.describe(), failures_, result.message);
    if (failures_ == spec_.failureThreshold) verdict = true;
  }
  if (verdict) failing_ = *verdict;
  lastResult_ = std::move(result);

  // Either callback may stop, restart or destroy this monitor.
  std::weak_ptr<ProbeMonitor*> self = self_;
  const ProbeResult last = *lastResult_;
  if (onResult_) onResult_(last);
  if (verdict && !self.expired() && onVerdict_) onVerdict_(*verdict, last);
}

}  // namespace nodewarden::heal
