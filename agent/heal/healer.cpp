#include "agent/heal/healer.h"

#include <nlohmann/json.hpp>

#include "agent/core/duration.h"
#include "agent/core/log.h"
#include "agent/heal/health.h"
#include "agent/heal/probe_monitor.h"

namespace nodewarden::heal {

namespace {

const auto kLog = core::log::category("heal");

constexpr char kKubelet[] = "kubelet.service";
constexpr char kContainerd[] = "containerd.service";

bool isUp(const systemd::UnitActivity& a) {
  return a.activeState == "active" || a.activeState == "activating" || a.activeState == "reloading";
}

// Down for good: nothing will bring it back unless someone acts. systemd's own
// Restart= shows as "auto-restart"; a queued job (an operator's start, the
// converge engine's restart) is on its way.
bool isDown(const systemd::UnitActivity& a) {
  return (a.activeState == "failed" || a.activeState == "inactive") && !a.jobPending &&
         a.subState != "auto-restart";
}

// "1 restart", "3 restarts".
std::string restartsText(uint32_t count) {
  return std::to_string(count) + (count == 1 ? " restart" : " restarts");
}

}  // namespace

std::string describeDown(const systemd::UnitActivity& activity) {
  if (activity.activeState == "failed") {
    return activity.result.empty() || activity.result == "success"
               ? "failed"
               : "failed (" + activity.result + ")";
  }
  return "stopped";
}

struct Healer::Unit {
  std::string name;
  std::optional<ProbeSpec> probeSpec;
  std::unique_ptr<ProbeMonitor> probe;
  bool watching = false;
  systemd::UnitActivity activity;
  // It went down and that was handled (restarted, or left alone while
  // paused); cleared once it is up again.
  bool downHandled = false;
  // Left down, or its probe failure left alone, while paused: resumed() repairs it.
  bool owedRepair = false;
  // A restart of ours is queued: how it ends, not the signals meanwhile,
  // tells whether the unit is down again.
  bool jobInFlight = false;
  std::unique_ptr<core::Timer> watchRetryTimer;
  bool watchFailedBefore = false;  // warned once, then quiet until it works
  std::unique_ptr<core::Timer> backoffTimer;
  std::optional<core::WallTime> nextRestart;
  // What the backoff timer does when it fires.
  systemd::JobKind pendingKind = systemd::JobKind::kStart;
  std::string pendingReason;
  std::unique_ptr<core::Timer> crashLoopTimer;
  // Restart kubelet once containerd's restart (queued for it) is done.
  bool restartKubeletAfter = false;
};

Healer::Healer(core::Clock& clock, systemd::SystemdManager& systemd, HealthBoard& board,
               Prober* prober, RestartPolicy::Options options, Hooks hooks)
    : clock_(clock),
      systemd_(systemd),
      board_(board),
      prober_(prober),
      policy_(clock, options),
      hooks_(std::move(hooks)) {}

Healer::~Healer() {
  *alive_ = false;
  for (auto& [name, unit] : units_) {
    if (unit->watching) systemd_.unwatchUnit(name);
  }
}

Healer::Unit* Healer::find(const std::string& name) {
  auto it = units_.find(name);
  return it == units_.end() ? nullptr : it->second.get();
}

const Healer::Unit* Healer::find(const std::string& name) const {
  auto it = units_.find(name);
  return it == units_.end() ? nullptr : it->second.get();
}

void Healer::setUnits(const std::vector<ManagedUnit>& units) {
  std::map<std::string, const ManagedUnit*> wanted;
  for (const ManagedUnit& unit : units) wanted[unit.name] = &unit;
  bool kubeletWaits = false;
  for (auto it = units_.begin(); it != units_.end();) {
    if (wanted.contains(it->first)) {
      ++it;
      continue;
    }
    kubeletWaits |= it->second->restartKubeletAfter;
    if (it->second->watching) systemd_.unwatchUnit(it->first);
    board_.removeSubject(it->first);
    policy_.forget(it->first);
    NW_LOG(kLog, debug, "No longer keeping {} running", it->first);
    it = units_.erase(it);
  }
  for (const auto& [name, managed] : wanted) {
    auto& slot = units_[name];
    if (!slot) {
      slot = std::make_unique<Unit>();
      slot->name = name;
      slot->backoffTimer = clock_.createTimer([this, name] {
        Unit* unit = find(name);
        if (unit == nullptr) return;
        unit->nextRestart.reset();
        restart(*unit, unit->pendingKind, unit->pendingReason);
      });
      slot->crashLoopTimer = clock_.createTimer([this, name] {
        if (Unit* unit = find(name)) checkCrashLoop(*unit);
      });
      slot->watchRetryTimer = clock_.createTimer([this, name] {
        if (Unit* unit = find(name); unit != nullptr && !unit->watching) watch(*unit, true);
      });
      // What an earlier agent saw (read back from disk) no longer holds:
      // this one knows of no restarts of the unit.
      board_.set(name, condition::kCrashLooping, false, "RestartsWithinLimit",
                 "0 restarts within " + core::formatDuration(policy_.options().crashLoopWindow));
    }
    Unit& unit = *slot;
    if (unit.probeSpec != managed->probe) {
      unit.probeSpec = managed->probe;
      unit.probe.reset();
      if (unit.probeSpec && prober_ != nullptr) {
        unit.probe = std::make_unique<ProbeMonitor>(
            clock_, *prober_, *unit.probeSpec,
            [this, name](bool failing, const ProbeResult& last) {
              probeVerdict(name, failing, last);
            },
            [this, name](const ProbeResult& result) {
              if (hooks_.probed) hooks_.probed(name, result);
            });
        // A new probe has no verdict yet, whatever an earlier one said.
        board_.set(name, condition::kProbeFailing, false, "NotProbedYet", "");
        if (unit.watching && unit.activity.activeState == "active") unit.probe->unitStarted();
      } else {
        board_.set(name, condition::kProbeFailing, false, "NoProbe", "");
      }
    }
    if (!unit.watching) watch(unit, /*retry=*/false);
  }
  if (kubeletWaits) restartKubelet();
}

void Healer::watch(Unit& unit, bool retry) {
  auto now = systemd_.watchUnit(
      unit.name, [this](const std::string& name, const systemd::UnitActivity& activity) {
        onActivity(name, activity);
      });
  if (!now) {
    if (!std::exchange(unit.watchFailedBefore, true)) {
      NW_LOG(kLog, warn, "Failed to watch {}: {}; trying again every {}", unit.name,
             now.status().message(), core::formatDuration(kWatchRetryDelay));
    }
    board_.set(unit.name, condition::kHealthy, false, "NotWatched",
               "cannot follow " + unit.name + ": " + now.status().message());
    unit.watchRetryTimer->armIn(kWatchRetryDelay);
    return;
  }
  if (unit.watchFailedBefore) NW_LOG(kLog, info, "Watching {} again", unit.name);
  unit.watchFailedBefore = false;
  unit.watchRetryTimer->cancel();
  unit.watching = true;
  unit.activity = *now;
  if (unit.probe && unit.activity.activeState == "active") unit.probe->unitStarted();
  if (retry && isDown(unit.activity)) {
    // Whatever the converge did about it is done, and it is down.
    unit.downHandled = true;
    wentDown(unit);
  } else {
    // Not acted on: the converge engine brings the unit to its desired state.
    unit.downHandled = !isUp(unit.activity);
  }
  updateHealthy(unit);
}

void Healer::onActivity(const std::string& name, const systemd::UnitActivity& activity) {
  Unit* unit = find(name);
  if (unit == nullptr) return;
  const systemd::UnitActivity previous = std::exchange(unit->activity, activity);

  if (activity.result == "oom-kill" && previous.result != "oom-kill" && hooks_.oomKilled) {
    hooks_.oomKilled(name, "systemd reports the unit's result oom-kill");
  }
  const bool started = activity.activeState == "active" &&
                       (previous.activeState != "active" || previous.mainPid != activity.mainPid);
  if (unit->probe) {
    if (started) {
      unit->probe->unitStarted();
    } else if (activity.activeState != "active" && previous.activeState == "active") {
      unit->probe->unitStopped();
    }
  }
  if (isUp(activity)) {
    unit->downHandled = false;
    // Someone else (an operator, the converge engine) started it meanwhile, or
    // restarted it: a new process needs no restart for the old one's probe.
    if (unit->backoffTimer->armed() && (unit->pendingKind == systemd::JobKind::kStart || started)) {
      unit->backoffTimer->cancel();
      unit->nextRestart.reset();
      kubeletsTurn(*unit);
    }
    if (activity.activeState == "active") unit->owedRepair = false;
  } else if (isDown(activity) && !unit->downHandled && !unit->jobInFlight) {
    unit->downHandled = true;
    wentDown(*unit);
  }
  updateHealthy(*unit);
}

void Healer::wentDown(Unit& unit) {
  if (paused(unit.name)) {
    unit.owedRepair = true;
    board_.record(
        unit.name, "NotRepaired",
        unit.name + " " + describeDown(unit.activity) + " while enforcement is paused; left alone");
    return;
  }
  restartAfterBackoff(unit, systemd::JobKind::kStart, "failed");
}

void Healer::restartAfterBackoff(Unit& unit, systemd::JobKind kind, std::string reason) {
  if (unit.jobInFlight || unit.backoffTimer->armed()) return;
  const core::Duration delay = policy_.delayBeforeRestart(unit.name);
  if (delay <= core::Duration::zero()) return restart(unit, kind, std::move(reason));
  unit.pendingKind = kind;
  unit.pendingReason = std::move(reason);
  unit.nextRestart = clock_.wallNow() + delay;
  unit.backoffTimer->armIn(delay);
  board_.record(unit.name, "BackOff",
                "restarting " + unit.name + " in " + core::formatDuration(delay) + " after " +
                    restartsText(policy_.recentRestarts(unit.name)) + " within " +
                    core::formatDuration(policy_.options().crashLoopWindow),
                /*warning=*/true);
}

void Healer::restart(Unit& unit, systemd::JobKind kind, std::string reason) {
  if (paused(unit.name)) {
    unit.owedRepair = true;
    kubeletsTurn(unit);
    return;
  }
  const std::string why = reason == "probe"        ? "failed its probe"
                          : reason == "dependency" ? "is needed healthy by kubelet"
                                                   : describeDown(unit.activity);
  // A failed unit may have used up systemd's start rate limit; ours is the
  // backoff.
  if (unit.activity.activeState == "failed") {
    if (core::Status s = systemd_.resetFailed(unit.name); !s) {
      NW_LOG(kLog, warn, "Failed to reset {}: {}, ignoring", unit.name, s.message());
    }
  }
  unit.jobInFlight = true;
  systemd_.runJob(kind, unit.name, [this, name = unit.name, alive = alive_](core::Status result) {
    if (*alive) jobDone(name, std::move(result));
  });
  // Bookkeeping once the job is on its way.
  policy_.restarted(unit.name);
  if (hooks_.restarted) hooks_.restarted(unit.name, reason);
  board_.record(unit.name, "Restarted",
                unit.name + " " + why + "; " +
                    (kind == systemd::JobKind::kStart ? "started" : "restarted") + " it (restart " +
                    std::to_string(policy_.recentRestarts(unit.name)) + " within " +
                    core::formatDuration(policy_.options().crashLoopWindow) + ")",
                /*warning=*/true);
  checkCrashLoop(unit);
}

void Healer::jobDone(const std::string& name, core::Status result) {
  Unit* unit = find(name);
  if (unit == nullptr) return;
  unit->jobInFlight = false;
  if (!result) board_.record(name, "RestartFailed", result.message(), /*warning=*/true);
  // The unit is down after our job, or will be once systemd says the job is
  // gone (it does so in a signal after the job's end): the restart did not
  // take, which is acted on like any failure. A job that failed without the
  // unit ever coming up sends no other change to act on.
  if (!isUp(unit->activity)) {
    unit->downHandled = isDown(unit->activity);
    if (unit->downHandled) wentDown(*unit);
  }
  kubeletsTurn(*unit);
  updateHealthy(*unit);
}

void Healer::probeVerdict(const std::string& name, bool failing, const ProbeResult& last) {
  Unit* unit = find(name);
  if (unit == nullptr) return;
  board_.set(name, condition::kProbeFailing, failing, failing ? "ProbeFailed" : "ProbeSucceeded",
             failing ? last.message : "");
  updateHealthy(*unit);
  if (!failing) {
    board_.record(name, "ProbeRecovered", unit->probeSpec->describe() + " succeeds again");
    return;
  }
  board_.record(name, "ProbeFailed",
                unit->probeSpec->describe() + " failed " +
                    std::to_string(unit->probeSpec->failureThreshold) +
                    " times in a row: " + last.message,
                /*warning=*/true);
  if (paused(name)) {
    unit->owedRepair = true;
    return;
  }
  // kubelet fails when the runtime under it does: when containerd fails its
  // own probe too, it is restarted first, and kubelet after it.
  if (name == kKubelet) {
    Unit* containerd = find(kContainerd);
    if (containerd != nullptr && containerd->probe && !paused(kContainerd) &&
        (containerd->probe->failing() || containerd->jobInFlight ||
         containerd->backoffTimer->armed())) {
      containerd->restartKubeletAfter = true;
      // A restart of containerd already queued, or waiting out its backoff,
      // serves: a second one would only kill it again.
      restartAfterBackoff(*containerd, systemd::JobKind::kRestart, "dependency");
      return;
    }
  }
  restartAfterBackoff(*unit, systemd::JobKind::kRestart, "probe");
}

void Healer::kubeletsTurn(Unit& containerd) {
  if (std::exchange(containerd.restartKubeletAfter, false)) restartKubelet();
}

void Healer::restartKubelet() {
  Unit* kubelet = find(kKubelet);
  if (kubelet == nullptr) return;
  if (paused(kKubelet)) {
    kubelet->owedRepair = true;
    return;
  }
  restartAfterBackoff(*kubelet, systemd::JobKind::kRestart, "probe");
}

void Healer::checkCrashLoop(Unit& unit) {
  const bool looping = policy_.crashLooping(unit.name);
  const uint32_t restarts = policy_.recentRestarts(unit.name);
  const std::string window = core::formatDuration(policy_.options().crashLoopWindow);
  const Condition* before = board_.get(unit.name, condition::kCrashLooping);
  const bool was = before != nullptr && before->status;
  board_.set(unit.name, condition::kCrashLooping, looping,
             looping ? "RestartedTooOften" : "RestartsWithinLimit",
             restartsText(restarts) + " within " + window);
  if (looping && !was) {
    board_.record(unit.name, "CrashLooping",
                  unit.name + " restarted " + std::to_string(restarts) + " times within " + window +
                      "; restarting it with backoff up to " +
                      core::formatDuration(policy_.options().backoffCap),
                  /*warning=*/true);
  } else if (!looping && was) {
    board_.record(unit.name, "CrashLoopEnded",
                  unit.name + " restarted fewer than " +
                      std::to_string(policy_.options().crashLoopRestarts) + " times within " +
                      window);
  }
  if (auto moves = policy_.windowMovesAt(unit.name)) {
    unit.crashLoopTimer->armIn(*moves - clock_.now());
  }
}

void Healer::updateHealthy(const Unit& unit) {
  if (!unit.watching) return;  // NotWatched says why
  const systemd::UnitActivity& a = unit.activity;
  const bool probeFailing = unit.probe && unit.probe->failing();
  std::string reason;
  std::string message;
  if (a.activeState == "active" && !probeFailing) {
    reason = "Running";
  } else if (a.activeState == "active") {
    reason = "ProbeFailing";
    message = "its probe fails";
  } else if (isUp(a) || a.jobPending || a.subState == "auto-restart") {
    reason = "Starting";
    message = a.activeState + " (" + a.subState + ")";
  } else {
    reason = a.activeState == "failed" ? "Failed" : "Stopped";
    message = unit.name + " " + describeDown(a);
    if (unit.nextRestart) message += ", restarting at " + formatTime(*unit.nextRestart);
  }
  board_.set(unit.name, condition::kHealthy, reason == "Running", reason, message);
}

void Healer::resumed() {
  for (auto& [name, unit] : units_) {
    if (paused(name) || !unit->owedRepair) continue;
    unit->owedRepair = false;
    if (isDown(unit->activity)) {
      board_.record(name, "Repairing",
                    "enforcement resumed; " + name + " is " + describeDown(unit->activity));
      restartAfterBackoff(*unit, systemd::JobKind::kStart, "failed");
    } else if (unit->probe && unit->probe->failing()) {
      restartAfterBackoff(*unit, systemd::JobKind::kRestart, "probe");
    }
  }
}

size_t Healer::unhealthyCount() const {
  size_t count = 0;
  for (const auto& [name, unit] : units_) {
    if (!board_.holds(name, condition::kHealthy)) ++count;
  }
  return count;
}

nlohmann::json Healer::componentsJson() const {
  nlohmann::json components = nlohmann::json::array();
  for (const auto& [name, unit] : units_) {
    nlohmann::json probe = nullptr;
    if (unit->probe) {
      const ProbeMonitor& p = *unit->probe;
      probe = {{"check", unit->probeSpec->describe()},
               {"failing", p.failing()},
               {"consecutiveFailures", p.consecutiveFailures()}};
      if (const auto& last = p.lastResult()) {
        probe["lastResult"] = last->ok ? "ok" : last->message;
      }
      if (auto when = p.lastCheck()) probe["lastCheck"] = formatTime(*when);
    }
    components.push_back({
        {"unit", name},
        {"activeState", unit->activity.activeState},
        {"subState", unit->activity.subState},
        {"mainPid", unit->activity.mainPid},
        {"restarts", policy_.totalRestarts(name)},
        {"nextRestart",
         unit->nextRestart ? nlohmann::json(formatTime(*unit->nextRestart)) : nlohmann::json()},
        {"probe", probe},
    });
  }
  return components;
}

}  // namespace nodewarden::heal
