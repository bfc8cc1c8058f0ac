#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>

#include "agent/core/clock.h"

namespace nodewarden::v1 {
class OomKills;
}

namespace nodewarden::heal {

class HealthBoard;

// Counts the kernel's OOM kills of each managed unit. Every kill is an
// OOMKilled event on the unit; `kills` of them within `window` raise its
// Degraded condition (reason OOMKilled), which clears once the window has
// passed without that many. Kills are reported by the kernel log and by
// systemd (a service's Result "oom-kill"); both sources telling of one kill
// count it once. Lives on the loop thread.
class OomMonitor final {
 public:
  static constexpr uint32_t kDefaultKills = 3;
  static constexpr core::Duration kDefaultWindow = std::chrono::hours(1);
  // Reports of one unit this close together are one kill: the kernel log and
  // systemd telling of it, or the kernel killing several processes of one
  // unit in a single out-of-memory episode.
  static constexpr core::Duration kSameKill = std::chrono::seconds(2);
  // Kill times remembered per unit at most (beyond `kills`), so a unit that
  // is killed over and over in a long window cannot grow the agent.
  static constexpr size_t kMaxRemembered = 100;

  OomMonitor(core::Clock& clock, HealthBoard& board);
  OomMonitor(const OomMonitor&) = delete;
  OomMonitor& operator=(const OomMonitor&) = delete;
  ~OomMonitor();

  // Takes the settings of a new desired state; unset fields take their
  // defaults, so an absent message counts with 3 kills in 1h. The same
  // settings again change nothing.
  void configure(const v1::OomKills& config);
  // The units the agent manages; kills of other units are not counted. A
  // unit that is no longer managed is forgotten (its conditions are for the
  // code that drops its subject).
  void setUnits(std::set<std::string> units);
  // A process of `unit` was killed for lack of memory; `detail` says which
  // and why, for the event.
  void oomKilled(const std::string& unit, std::string detail);

  // The kills of `unit` counted within the window.
  size_t recentKills(const std::string& unit) const;

 private:
  struct UnitKills {
    std::deque<core::MonotonicTime> kills;  // oldest first
    std::string lastDetail;
    // A condition raised before the kills were known (in the agent's last
    // run) holds until then.
    std::optional<core::MonotonicTime> holdUntil;
    std::unique_ptr<core::Timer> clearTimer;
  };

  void forgetOld(UnitKills& state);
  void evaluate(const std::string& unit, UnitKills& state);
  // A Degraded condition this monitor raised, say in the agent's last run.
  bool raisedByUs(const std::string& unit) const;
  void adopt(const std::string& unit);
  UnitKills& stateOf(const std::string& unit);

  core::Clock& clock_;
  HealthBoard& board_;
  uint32_t kills_ = kDefaultKills;
  core::Duration window_ = kDefaultWindow;
  std::set<std::string> units_;
  std::map<std::string, UnitKills> state_;
};

}  // namespace nodewarden::heal
