#include "agent/heal/oom_monitor.h"

#include <algorithm>
#include <iterator>
#include <utility>

#include "agent/core/duration.h"
#include "agent/core/log.h"
#include "agent/heal/health.h"
#include "nodewarden/v1/state.pb.h"

namespace nodewarden::heal {

namespace {

const auto kLog = core::log::category("heal");

constexpr char kOomKilledReason[] = "OOMKilled";
constexpr char kRecoveredReason[] = "NoRecentOOMKills";

}  // namespace

OomMonitor::OomMonitor(core::Clock& clock, HealthBoard& board) : clock_(clock), board_(board) {}

OomMonitor::~OomMonitor() = default;

void OomMonitor::configure(const v1::OomKills& config) {
  const uint32_t kills = config.kills() != 0 ? config.kills() : kDefaultKills;
  core::Duration window = kDefaultWindow;
  if (!config.window().empty()) {
    auto parsed = core::parseDuration(config.window());
    if (parsed && *parsed > core::Duration::zero()) {
      window = *parsed;
    } else {
      NW_LOG(kLog, warn, "oomKills.window: \"{}\" is not a usable duration, using {}",
             config.window(), core::formatDuration(kDefaultWindow));
    }
  }
  if (kills == kills_ && window == window_) return;
  kills_ = kills;
  window_ = window;
  for (auto& [unit, state] : state_) evaluate(unit, state);
}

void OomMonitor::setUnits(std::set<std::string> units) {
  std::erase_if(state_, [&](const auto& entry) { return !units.contains(entry.first); });
  std::set<std::string> added;
  std::set_difference(units.begin(), units.end(), units_.begin(), units_.end(),
                      std::inserter(added, added.end()));
  units_ = std::move(units);
  for (const std::string& unit : added) adopt(unit);
}

void OomMonitor::oomKilled(const std::string& unit, std::string detail) {
  if (!units_.contains(unit)) {
    NW_LOG(kLog, debug, "OOM kill in {}, which is not managed: {}", unit, detail);
    return;
  }
  UnitKills& state = stateOf(unit);
  const core::MonotonicTime now = clock_.now();
  if (!state.kills.empty() && now - state.kills.back() < kSameKill) {
    NW_LOG(kLog, debug, "OOM kill in {} already counted: {}", unit, detail);
    return;
  }
  state.kills.push_back(now);
  forgetOld(state);
  state.lastDetail = detail;
  board_.record(unit, kOomKilledReason,
                std::move(detail) + "; " + std::to_string(state.kills.size()) +
                    (state.kills.size() == 1 ? " OOM kill" : " OOM kills") + " within " +
                    core::formatDuration(window_),
                /*warning=*/true);
  evaluate(unit, state);
}

size_t OomMonitor::recentKills(const std::string& unit) const {
  auto it = state_.find(unit);
  if (it == state_.end()) return 0;
  const core::MonotonicTime now = clock_.now();
  return static_cast<size_t>(
      std::count_if(it->second.kills.begin(), it->second.kills.end(),
                    [&](core::MonotonicTime t) { return now - t < window_; }));
}

void OomMonitor::forgetOld(UnitKills& state) {
  const core::MonotonicTime now = clock_.now();
  while (!state.kills.empty() && now - state.kills.front() >= window_) state.kills.pop_front();
  const size_t bound = std::max<size_t>(kills_, kMaxRemembered);
  while (state.kills.size() > bound) state.kills.pop_front();
}

void OomMonitor::evaluate(const std::string& unit, UnitKills& state) {
  forgetOld(state);
  const core::MonotonicTime now = clock_.now();
  std::optional<core::MonotonicTime> clearAt;
  if (state.holdUntil && *state.holdUntil > now) {
    clearAt = state.holdUntil;
  } else {
    state.holdUntil.reset();
  }

  if (state.kills.size() >= kills_) {
    // Once the kill that made the count leaves the window, fewer remain.
    const core::MonotonicTime below = state.kills[state.kills.size() - kills_] + window_;
    clearAt = std::max(clearAt.value_or(below), below);
    board_.set(unit, condition::kDegraded, true, kOomKilledReason,
               "the kernel's OOM killer killed it " + std::to_string(state.kills.size()) +
                   " times within " + core::formatDuration(window_) +
                   "; last: " + state.lastDetail);
  } else if (!clearAt && raisedByUs(unit)) {
    board_.set(unit, condition::kDegraded, false, kRecoveredReason,
               "fewer than " + std::to_string(kills_) + " OOM kills within " +
                   core::formatDuration(window_));
  }

  if (!clearAt) {
    if (state.clearTimer) state.clearTimer->cancel();
    return;
  }
  if (!state.clearTimer) {
    state.clearTimer = clock_.createTimer([this, unit] {
      if (auto it = state_.find(unit); it != state_.end()) evaluate(unit, it->second);
    });
  }
  state.clearTimer->armIn(*clearAt - now);
}

bool OomMonitor::raisedByUs(const std::string& unit) const {
  const Condition* degraded = board_.get(unit, condition::kDegraded);
  return degraded != nullptr && degraded->status && degraded->reason == kOomKilledReason;
}

void OomMonitor::adopt(const std::string& unit) {
  if (!raisedByUs(unit)) return;
  // The kills behind it are gone with the agent's last run; the condition
  // holds for one window from when it was raised, as it would have at least.
  const Condition& degraded = *board_.get(unit, condition::kDegraded);
  UnitKills& state = stateOf(unit);
  const core::Duration left = degraded.since + window_ - clock_.wallNow();
  state.holdUntil = clock_.now() + std::max(left, core::Duration::zero());
  evaluate(unit, state);
}

OomMonitor::UnitKills& OomMonitor::stateOf(const std::string& unit) { return state_[unit]; }

}  // namespace nodewarden::heal
