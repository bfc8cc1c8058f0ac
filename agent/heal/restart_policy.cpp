#include "agent/heal/restart_policy.h"

#include <algorithm>
#include <random>

namespace nodewarden::heal {

namespace {

RestartPolicy::Random defaultRandom() {
  return [engine = std::minstd_rand(std::random_device{}())]() mutable {
    return std::uniform_real_distribution<double>(0.0, 1.0)(engine);
  };
}

}  // namespace

RestartPolicy::RestartPolicy(core::Clock& clock, Options options, Random random)
    : clock_(clock), options_(options), random_(random ? std::move(random) : defaultRandom()) {}

core::Duration RestartPolicy::delayBeforeRestart(const std::string& unit) {
  auto it = units_.find(unit);
  if (it == units_.end()) return core::Duration::zero();
  History& history = it->second;
  if (history.total == 0 || clock_.now() - history.lastRestart >= options_.backoffResetAfter) {
    history.streak = 0;
    return core::Duration::zero();
  }
  // streak restarts in a row so far: the next waits base * 2^(streak - 1).
  core::Duration delay = options_.backoffBase;
  for (uint32_t i = 1; i < history.streak && delay < options_.backoffCap; ++i) delay *= 2;
  delay = std::min(delay, options_.backoffCap);
  const double cut = options_.jitter * random_();
  return std::chrono::duration_cast<core::Duration>(delay * (1.0 - cut));
}

void RestartPolicy::restarted(const std::string& unit) {
  History& history = units_[unit];
  const core::MonotonicTime now = clock_.now();
  const bool soon = history.total > 0 && now - history.lastRestart < options_.backoffResetAfter;
  history.streak = soon ? history.streak + 1 : 1;
  history.lastRestart = now;
  history.total++;
  history.restarts.push_back(now);
  prune(history);
}

uint32_t RestartPolicy::recentRestarts(const std::string& unit) const {
  auto it = units_.find(unit);
  if (it == units_.end()) return 0;
  const core::MonotonicTime since = clock_.now() - options_.crashLoopWindow;
  return static_cast<uint32_t>(std::count_if(it->second.restarts.begin(), it->second.restarts.end(),
                                             [since](auto t) { return t > since; }));
}

std::optional<core::MonotonicTime> RestartPolicy::windowMovesAt(const std::string& unit) const {
  auto it = units_.find(unit);
  if (it == units_.end()) return std::nullopt;
  const core::MonotonicTime since = clock_.now() - options_.crashLoopWindow;
  for (core::MonotonicTime t : it->second.restarts) {
    if (t > since) return t + options_.crashLoopWindow;
  }
  return std::nullopt;
}

uint64_t RestartPolicy::totalRestarts(const std::string& unit) const {
  auto it = units_.find(unit);
  return it == units_.end() ? 0 : it->second.total;
}

void RestartPolicy::prune(History& history) const {
  const core::MonotonicTime since = clock_.now() - options_.crashLoopWindow;
  while (!history.restarts.empty() && history.restarts.front() <= since) {
    history.restarts.pop_front();
  }
  // Bounded however the window is set: the count that matters is the threshold.
  while (history.restarts.size() > std::max<uint32_t>(options_.crashLoopRestarts, 1) + 1) {
    history.restarts.pop_front();
  }
}

}  // namespace nodewarden::heal
