#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "agent/core/clock.h"
#include "agent/heal/probe.h"
#include "agent/heal/restart_policy.h"
#include "agent/systemd/systemd_manager.h"

namespace nodewarden::heal {

class HealthBoard;
class ProbeMonitor;

// A unit whose desired state is running, and how to tell it works.
struct ManagedUnit {
  std::string name;
  std::optional<ProbeSpec> probe;
};

// Keeps the managed units running between converges. It follows each unit
// through systemd's signals and acts on changes, never on levels: a unit that
// goes down (failed, or stopped with no job left for it, and not about to be
// restarted by systemd's own Restart=) is started again at once, then with
// the restart policy's backoff while it keeps failing; a unit whose probe fails
// past its threshold is restarted the same way. What a unit looks like when
// the watch begins is the converge engine's business, so a restart of the
// agent leaves healthy units alone and never restarts a unit twice.
//
// A unit that cannot be watched (systemd busy re-executing, say) is tried
// again every kWatchRetryDelay; once watched, a unit found down then is
// repaired, since the converge that would have started it has run by then.
//
// Per component it keeps the conditions Healthy, ProbeFailing and
// CrashLooping, and records an event for everything it does. While the node
// or the unit is paused it still watches, probes and reports, and repairs
// nothing; resumed() repairs what went wrong meanwhile.
class Healer final {
 public:
  static constexpr core::Duration kWatchRetryDelay = std::chrono::seconds(10);

  struct Hooks {
    // Whether enforcement is paused for the unit (node-wide or the unit alone).
    std::function<bool(const std::string& unit)> paused;
    // A restart was queued: reason is "failed", "probe" or "dependency".
    std::function<void(const std::string& unit, const std::string& reason)> restarted;
    // A probe check finished.
    std::function<void(const std::string& unit, const ProbeResult& result)> probed;
    // systemd reports the unit's processes killed by the OOM killer.
    std::function<void(const std::string& unit, const std::string& detail)> oomKilled;
  };

  // `prober` may be null: no probes then.
  Healer(core::Clock& clock, systemd::SystemdManager& systemd, HealthBoard& board, Prober* prober,
         RestartPolicy::Options options, Hooks hooks);
  ~Healer();

  Healer(const Healer&) = delete;
  Healer& operator=(const Healer&) = delete;

  void setOptions(const RestartPolicy::Options& options) { policy_.setOptions(options); }
  // The units to keep running, from the desired state. Call before the
  // converge that applies the state, so that a unit the new state stops is no
  // longer kept running when the converge stops it.
  void setUnits(const std::vector<ManagedUnit>& units);
  // Enforcement resumed (node-wide or for some units): repairs the units that
  // went down or failed their probe meanwhile.
  void resumed();

  // The watched units, for `nodewarden-agent status`.
  nlohmann::json componentsJson() const;
  // Units down or failing their probe now.
  size_t unhealthyCount() const;

 private:
  struct Unit;
  // `retry`: the watch failed before, and the converge that followed is past.
  void watch(Unit& unit, bool retry);
  void onActivity(const std::string& name, const systemd::UnitActivity& activity);
  void wentDown(Unit& unit);
  void restartAfterBackoff(Unit& unit, systemd::JobKind kind, std::string reason);
  void restart(Unit& unit, systemd::JobKind kind, std::string reason);
  void jobDone(const std::string& name, core::Status result);
  void probeVerdict(const std::string& name, bool failing, const ProbeResult& last);
  // containerd's restart that kubelet waited for is done, or will not happen.
  void kubeletsTurn(Unit& containerd);
  void restartKubelet();
  void checkCrashLoop(Unit& unit);
  void updateHealthy(const Unit& unit);
  bool paused(const std::string& name) const { return hooks_.paused && hooks_.paused(name); }
  Unit* find(const std::string& name);
  const Unit* find(const std::string& name) const;

  core::Clock& clock_;
  systemd::SystemdManager& systemd_;
  HealthBoard& board_;
  Prober* prober_;
  RestartPolicy policy_;
  Hooks hooks_;
  std::map<std::string, std::unique_ptr<Unit>> units_;
  // Callbacks that outlive the healer find it gone.
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

// "kubelet.service" down because "failed (signal)", "stopped", ...: the
// activity in the words of the Restarted event.
std::string describeDown(const systemd::UnitActivity& activity);

}  // namespace nodewarden::heal
