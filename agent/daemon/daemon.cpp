#include "agent/daemon/daemon.h"

#include <malloc.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <vector>

#include <nlohmann/json.hpp>

#include "agent/core/atomic_file.h"
#include "agent/core/duration.h"
#include "agent/core/log.h"
#include "agent/daemon/file_watcher.h"
#include "agent/daemon/service_notifier.h"
#include "agent/heal/disk_pressure.h"
#include "agent/heal/probe.h"
#include "agent/metrics/metrics.h"
#include "agent/packages/package_manager.h"
#include "agent/state/loader.h"

namespace nodewarden::daemon {

namespace {

const auto kLog = core::log::category("agent");

bool installsPackages(const converge::Plan& plan) {
  return std::any_of(plan.changes.begin(), plan.changes.end(), [](const converge::Change& change) {
    return change.resource.starts_with(converge::kPackageResource);
  });
}

std::string clockTime(core::WallTime time) {
  const std::time_t t = std::chrono::system_clock::to_time_t(time);
  std::tm tm;
  localtime_r(&t, &tm);
  char text[16];
  std::strftime(text, sizeof(text), "%H:%M:%S", &tm);
  return text;
}

std::string heldBackText(size_t held) {
  if (held == 0) return "Nothing held back";
  return std::to_string(held) + (held == 1 ? " change" : " changes") + " held back";
}

heal::RestartPolicy::Options policyOptions(const HealingConfig& healing) {
  return {.backoffCap = healing.restartBackoffCap,
          .crashLoopRestarts = healing.crashLoopRestarts,
          .crashLoopWindow = healing.crashLoopWindow,
          .backoffResetAfter = healing.backoffResetAfter};
}

}  // namespace

Daemon::Daemon(core::Clock& clock, systemd::SystemdManager& systemd, ServiceNotifier& notifier,
               FileWatcher& watcher, Options options)
    : clock_(clock),
      notifier_(notifier),
      metrics_(options.metrics),
      converged_(std::move(options.converged)),
      serverStatus_(std::move(options.serverStatus)),
      started_(clock.wallNow()),
      watcher_(watcher),
      planner_(systemd, std::move(options.root), options.providers),
      packages_(options.providers.packages),
      ledger_(options.stateDirectory + "/" + kRestartLedgerName),
      executor_(systemd, clock, &ledger_),
      config_(std::move(options.config)),
      lastAppliedPath_(options.stateDirectory + "/" + kLastAppliedName),
      lockPath_(options.stateDirectory + "/" + kConvergeLockName),
      intervalTimer_(clock.createTimer([this] { requestConverge("drift check"); })),
      settleTimer_(clock.createTimer([this] { requestConverge("state file changed"); })),
      lockRetryTimer_(clock.createTimer([this] { requestConverge("retry"); })),
      board_(clock, options.stateDirectory + "/" + kHealthName),
      pausePath_(options.stateDirectory + "/" + kPauseName),
      pauses_(clock, pausePath_),
      healer_(clock, systemd, board_, options.prober, policyOptions(config_.healing),
              {.paused = [this](const std::string& unit) { return pauses_.paused(unit); },
               .restarted =
                   [this](const std::string& unit, const std::string& reason) {
                     if (metrics_ != nullptr) metrics_->unitRestarted(unit, reason);
                   },
               .probed =
                   [this](const std::string& unit, const heal::ProbeResult& result) {
                     if (metrics_ != nullptr)
                       metrics_->probeResult(unit, result.ok, result.duration);
                   },
               .oomKilled = [this](const std::string& unit,
                                   const std::string& detail) { oomKilled(unit, detail); }}),
      oom_(clock, board_) {
  if (options.providers.processes != nullptr) {
    disk_ =
        std::make_unique<heal::DiskPressureMonitor>(clock, *options.providers.processes, board_);
  }
  board_.addListener([this](const heal::Condition& c) {
    if (metrics_ != nullptr) metrics_->condition(c.subject, c.type, c.status);
    // STATUS= counts the units not healthy and tells of disk pressure: kept
    // current between converges (each ends with its own).
    if (ready_ && !converging_ &&
        (c.type == heal::condition::kHealthy || c.type == heal::condition::kDiskPressure)) {
      notify(/*unlessSame=*/true);
    }
  });
  pauses_.addListener([this] { pausesChanged(); });
}

// The watcher's callback points here; it must not outlive the daemon.
Daemon::~Daemon() {
  *alive_ = false;
  watcher_.stop();
}

void Daemon::start() {
  if (core::Status s = board_.load(); !s) {
    NW_LOG(kLog, warn, "Failed to read the conditions and events: {}, starting afresh",
           s.message());
  }
  // The listener hears of changes only.
  if (metrics_ != nullptr) {
    for (const heal::Condition& c : board_.conditions()) {
      metrics_->condition(c.subject, c.type, c.status);
    }
  }
  if (core::Status s = pauses_.load(); !s) {
    // Not ignored: enforcing what an operator paused would fight them. The
    // unreadable file is kept aside for them to look at.
    const std::string path = pausePath_;
    const std::string aside = path + ".unreadable";
    NW_LOG(kLog, err, "Failed to read the pauses ({}); kept as {}, pausing the node until resumed",
           s.message(), aside);
    if (std::rename(path.c_str(), aside.c_str()) < 0) {
      NW_LOG(kLog, err, "Failed to move {} aside: {}", path, std::strerror(errno));
    }
    if (core::Status p =
            pauses_.pause(std::nullopt, "the saved pauses could not be read", std::nullopt);
        !p) {
      NW_LOG(kLog, err, "Failed to pause the node: {}", p.message());
    }
  }
  pausesChanged();
  loadLastApplied();
  NW_LOG(kLog, info, "Enforcing {}, checking for drift every {}", config_.stateFile,
         core::formatDuration(config_.driftCheckInterval));
  requestConverge("start");
}

void Daemon::stateFileChanged() { settleTimer_->armIn(kSettleDelay); }

void Daemon::reload(AgentConfig config) {
  if (config.stateFile != config_.stateFile) watcher_.stop();
  if (config.jobTimeout != config_.jobTimeout) {
    NW_LOG(kLog, warn, "jobTimeout changes take effect when the agent restarts");
  }
  if (config.metrics != config_.metrics) {
    NW_LOG(kLog, warn, "metrics changes take effect when the agent restarts");
  }
  healer_.setOptions(policyOptions(config.healing));
  config_ = std::move(config);
  requestConverge("reload");
}

void Daemon::requestConverge(std::string reason) {
  if (converging_) {
    pendingReason_ = std::move(reason);
    return;
  }
  converge(reason);
}

void Daemon::loadLastApplied() {
  auto text = core::readFile(lastAppliedPath_, state::kMaxDocumentBytes);
  if (!text) {
    if (text.status().code() != core::Status::Code::kNotFound) {
      NW_LOG(kLog, warn, "Failed to read the last applied state: {}, ignoring",
             text.status().message());
    }
    return;
  }
  state::LoadResult loaded = state::loadString(*text, lastAppliedPath_);
  if (!loaded.ok()) {
    NW_LOG(kLog, warn, "Last applied state {} is not valid ({}), ignoring", lastAppliedPath_,
           loaded.errors.front().toString());
    return;
  }
  lastGood_ = std::move(*loaded.state);
  lastGoodText_ = std::move(*text);
}

// The state to enforce now: the state file when it is valid, otherwise the
// last good state (a rejected state changes nothing).
const v1::NodeState* Daemon::chooseState() {
  auto text = core::readFile(config_.stateFile, state::kMaxDocumentBytes);
  if (!text && serverStatus_ && text.status().code() == core::Status::Code::kNotFound) {
    // Enrolled or not, the server has not sent a state yet: nothing to do.
    NW_LOG(kLog, info, "Waiting for the desired state from the server");
    rejected_.clear();
    waiting_ = true;
    candidate_.reset();
    return lastGood_ ? &*lastGood_ : nullptr;
  }
  waiting_ = false;
  if (!text) {
    rejected_ = text.status().message();
  } else {
    state::LoadResult loaded = state::loadString(*text, config_.stateFile);
    if (loaded.ok()) {
      rejected_.clear();
      candidate_ = std::move(*loaded.state);
      candidateText_ = std::move(*text);
      return &*candidate_;
    }
    rejected_ = loaded.errors.front().toString();
    for (const auto& error : loaded.errors) NW_LOG(kLog, err, "{}", error.toString());
  }
  candidate_.reset();
  if (lastGood_) {
    NW_LOG(kLog, err, "State rejected: {}; enforcing the last good state", rejected_);
    return &*lastGood_;
  }
  NW_LOG(kLog, err, "State rejected: {}; no earlier state to enforce", rejected_);
  return nullptr;
}

void Daemon::converge(const std::string& reason) {
  intervalTimer_->cancel();
  // One converge at a time on a node: a one-shot apply may hold the lock.
  auto lock = core::FileLock::tryAcquire(lockPath_);
  if (!lock) {
    if (lock.status().code() == core::Status::Code::kFailedPrecondition) {
      if (!lockRetryTimer_->armed()) {
        NW_LOG(kLog, info, "Waiting to converge ({}): {}", reason, lock.status().message());
      }
      lockRetryTimer_->armIn(kLockRetryDelay);
      return;
    }
    // Not busy but broken (the state directory gone, say): waiting won't help.
    planError_ = lock.status().message();
    NW_LOG(kLog, err, "Cannot converge: {}", planError_);
    return finished(std::nullopt);
  }
  lock_ = std::move(*lock);
  lockRetryTimer_->cancel();
  NW_LOG(kLog, debug, "Converging ({})", reason);
  if (!watcher_.watching()) {
    // Missing at start, or moved by a reload: retried at every converge.
    if (core::Status s = watcher_.watch(config_.stateFile, [this] { stateFileChanged(); }); !s) {
      NW_LOG(kLog, warn, "Failed to watch {}: {}; relying on the drift check", config_.stateFile,
             s.message());
    }
  }

  planError_.clear();
  auto owed = ledger_.owed();
  if (!owed) {
    planError_ = owed.status().message();
    NW_LOG(kLog, err, "Cannot converge: {}", planError_);
    return finished(std::nullopt);
  }
  const v1::NodeState* target = chooseState();
  if (target == nullptr) return finished(std::nullopt);
  converging_ = true;
  planAndApply(*target, std::move(*owed), /*mayFallBack=*/true);
}

// Observes what the state needs (the package database), plans and applies.
// A state that cannot be planned changes nothing; the last good one is
// enforced instead, once.
void Daemon::planAndApply(const v1::NodeState& target, std::set<std::string> owed,
                          bool mayFallBack) {
  planner_.observe(target, [this, &target, owed = std::move(owed), mayFallBack,
                            alive = alive_](core::Result<converge::Observation> observed) {
    if (!*alive) return;
    core::Result<converge::Plan> plan =
        observed ? planner_.plan(target, owed, *observed) : observed.status();
    if (!plan) {
      if (!mayFallBack) {
        NW_LOG(kLog, err, "Cannot apply the last good state either: {}", plan.status().message());
        return finished(std::nullopt);
      }
      planError_ = plan.status().message();
      NW_LOG(kLog, err, "Cannot apply the state, nothing of it was changed: {}", planError_);
      const bool wasLastGood = lastGood_ && &target == &*lastGood_;
      candidate_.reset();  // `target` may be gone from here on
      if (!lastGood_ || wasLastGood) return finished(std::nullopt);
      NW_LOG(kLog, err, "Enforcing the last good state");
      return planAndApply(*lastGood_, owed, /*mayFallBack=*/false);
    }
    configureHealing(target);
    if (pauses_.nodePaused()) {
      // Observed and reported, not applied; what an earlier run owes stays owed.
      return finished(converge::dryRunReport(*plan));
    }
    applyPaused(*plan);
    // Asked before the transaction starts, which takes the lock itself.
    const std::optional<std::string> lockedBy =
        !ready_ && packages_ != nullptr && installsPackages(*plan) ? packages_->lockHolder()
                                                                   : std::nullopt;
    // Ready once the first plan's jobs are queued, not done: a managed unit
    // ordered after the agent waits for the agent's own start.
    executor_.apply(
        std::move(*plan), [this](converge::Report report) { finished(report); },
        [this] {
          if (!ready_) notify();
        });
    // The agent's package starts it from its maintainer script (under
    // apt-get, cloud-init's too), and that start returns only once the agent
    // is ready, while dpkg keeps its lock. A first plan that installs packages
    // waits for that lock: the agent would wait for dpkg and dpkg for the
    // agent until the lock wait ran out. So when another process holds the
    // lock, the agent is ready as the transaction starts waiting.
    if (lockedBy && !ready_) {
      NW_LOG(kLog, info,
             "Ready before the first package transaction: the package database is locked by "
             "{}, which may be waiting for this start",
             *lockedBy);
      notify();
    }
  });
}

void Daemon::finished(const std::optional<converge::Report>& report) {
  converging_ = false;
  if (report) {
    record(*report);
    if (!report->dryRun && candidate_ && candidateText_ != lastGoodText_) saveLastApplied();
  } else {
    lastResult_ = waiting_ ? "waiting" : rejected_.empty() ? "failed" : "rejected";
    lastCheckTime_ = clock_.wallNow();
  }
  if (converged_ && !(waiting_ && !report)) {
    converged_(lastResult_, !rejected_.empty() ? rejected_ : planError_,
               report ? &*report : nullptr);
  }
  if (disk_) disk_->recheckUnreadable();
  notify();
  lock_.reset();
  intervalTimer_->armIn(config_.driftCheckInterval);
  if (pendingReason_) {
    std::string reason = std::move(*pendingReason_);
    pendingReason_.reset();
    converge(reason);
    return;
  }
  // A converge allocates in a burst (observed units, file contents, package
  // lists) and frees it all; give those pages back so the idle agent holds
  // only what it keeps.
  malloc_trim(0);
}

void Daemon::record(const converge::Report& report) {
  lastReport_ = report;
  lastCheckTime_ = clock_.wallNow();
  if (report.dryRun) {
    // The node is paused: what would change, and nothing else.
    lastResult_ = !rejected_.empty() ? "rejected" : "paused";
    lastCheck_ = clockTime(clock_.wallNow());
    heldBack_ = 0;
    for (const auto& change : report.changes) {
      if (change.outcome == converge::Change::Outcome::kNotApplicable) continue;
      ++heldBack_;
      NW_LOG(kLog, info, "{}: {} held back while paused{}", change.resource, change.action,
             change.detail.empty() ? "" : " (" + change.detail + ")");
    }
    NW_LOG(kLog, info, "Paused: {} changes held back", heldBack_);
    return;
  }
  heldBack_ = 0;
  lastResult_ = !rejected_.empty() ? "rejected" : report.failed() > 0 ? "failed" : "ok";
  if (metrics_ != nullptr) {
    metrics_->converged(report.duration, report.failed() == 0, report.changed(), report.failed());
    constexpr std::string_view kUnitPrefix = "unit ";
    for (const auto& change : report.changes) {
      if (change.action == "restart" && change.outcome == converge::Change::Outcome::kApplied &&
          change.resource.starts_with(kUnitPrefix)) {
        metrics_->unitRestarted(change.resource.substr(kUnitPrefix.size()),
                                metrics::restart_reason::kConverge);
      }
    }
  }
  for (const auto& change : report.changes) {
    if (change.outcome == converge::Change::Outcome::kNotApplicable) {
      NW_LOG(kLog, debug, "{}: not applicable: {}", change.resource, change.error);
    } else if (change.outcome == converge::Change::Outcome::kApplied) {
      NW_LOG(kLog, info, "{}: {}{}", change.resource, change.action,
             change.detail.empty() ? "" : " (" + change.detail + ")");
    } else {
      NW_LOG(kLog, err, "{}: {} {}: {}", change.resource, change.action,
             change.outcome == converge::Change::Outcome::kSkipped ? "skipped" : "failed",
             change.error);
    }
  }
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(report.duration).count();
  const std::string when = clockTime(clock_.wallNow());
  lastCheck_ = when;
  lastFailures_ = report.failed();
  if (report.failed() > 0) {
    for (const auto& change : report.changes) {
      if (change.outcome == converge::Change::Outcome::kFailed ||
          change.outcome == converge::Change::Outcome::kSkipped) {
        firstFailure_ = change.resource + ": " + change.error;
        break;
      }
    }
  }
  if (report.changed() > 0) {
    lastDrift_ = when + " (" + std::to_string(report.changed()) + " changed)";
  }
  NW_LOG(kLog, info, "Converged in {} ms: {} changed, {} failed", ms, report.changed(),
         report.failed());
}

void Daemon::saveLastApplied() {
  core::Status s = core::writeFileAtomic(lastAppliedPath_, candidateText_, {.mode = 0600});
  if (!s) {
    NW_LOG(kLog, warn, "Failed to save the last applied state: {}, ignoring", s.message());
    return;
  }
  lastGood_ = std::move(candidate_);
  lastGoodText_ = std::move(candidateText_);
  candidate_.reset();
}

void Daemon::notify(bool unlessSame) {
  std::vector<std::string> parts;
  if (const auto& node = pauses_.node()) {
    std::string paused = "Paused (" + node->reason + ")";
    if (node->until) paused += " until " + heal::formatTime(*node->until);
    parts.push_back(paused);
  } else if (!pauses_.units().empty()) {
    std::string units;
    for (const auto& [unit, pause] : pauses_.units()) units += (units.empty() ? "" : ", ") + unit;
    parts.push_back("Paused for " + units);
  }
  if (!rejected_.empty()) {
    parts.push_back("State rejected (" + rejected_ + ")");
  }
  if (!planError_.empty()) parts.push_back("Cannot apply the state: " + planError_);
  if (!rejected_.empty() || !planError_.empty()) {
    parts.push_back(lastGood_ ? "enforcing the last good state" : "nothing to enforce");
  }
  if (executor_.busy()) {
    parts.push_back(ready_ ? "Applying the state" : "Applying the first state");
  } else if (lastReport_ && lastReport_->dryRun) {
    parts.push_back(heldBackText(heldBack_) + ", checked " + lastCheck_);
  } else if (lastFailures_ > 0) {
    parts.push_back(std::to_string(lastFailures_) + " failed at " + lastCheck_ + ": " +
                    firstFailure_);
  } else if (!lastCheck_.empty()) {
    parts.push_back("In desired state, checked " + lastCheck_);
  }
  if (!lastCheck_.empty()) {
    parts.push_back(lastDrift_.empty() ? "no drift found" : "last drift " + lastDrift_);
  }
  // While a converge runs, it is bringing units up.
  if (const size_t unhealthy = healer_.unhealthyCount(); unhealthy > 0 && !executor_.busy()) {
    parts.push_back(std::to_string(unhealthy) + " unit" + (unhealthy == 1 ? "" : "s") +
                    " not healthy");
  }
  if (board_.holds(heal::kNodeSubject, heal::condition::kDiskPressure)) {
    parts.push_back("disk pressure");
  }
  std::string status;
  for (const auto& part : parts) status += (status.empty() ? "" : "; ") + part;
  if (!ready_) {
    notifier_.ready(status);
    ready_ = true;
  } else if (!unlessSame || status != lastStatus_) {
    notifier_.status(status);
  }
  lastStatus_ = std::move(status);
}

void Daemon::configureHealing(const v1::NodeState& target) {
  std::vector<heal::ManagedUnit> running;
  std::set<std::string> names;
  for (const v1::Unit& unit : target.units()) {
    if (unit.state() != v1::UNIT_STATE_RUNNING) continue;
    running.push_back({.name = unit.name(), .probe = heal::probeFor(unit)});
    names.insert(unit.name());
  }
  for (const std::string& name : lastUnits_) {
    if (!names.contains(name) && metrics_ != nullptr) metrics_->forgetUnit(name);
  }
  lastUnits_ = names;
  healer_.setUnits(running);
  // Units read back from disk that the state no longer runs.
  std::set<std::string> stale;
  for (const heal::Condition& c : board_.conditions()) {
    if (c.subject != heal::kNodeSubject && !names.contains(c.subject)) stale.insert(c.subject);
  }
  for (const std::string& subject : stale) {
    board_.removeSubject(subject);
    if (metrics_ != nullptr) metrics_->forgetUnit(subject);
  }
  oom_.setUnits(names);
  oom_.configure(target.remediations().oom_kills());
  if (disk_) disk_->configure(target.remediations().disk_pressure());
}

void Daemon::applyPaused(converge::Plan& plan) {
  if (pauses_.units().empty()) return;
  std::erase_if(plan.jobs, [&](const converge::Job& job) {
    auto it = pauses_.units().find(job.unit);
    if (it == pauses_.units().end()) return false;
    converge::Change& change = plan.changes[job.change];
    change.outcome = converge::Change::Outcome::kNotApplicable;
    change.error = "enforcement is paused for " + job.unit + " (" + it->second.reason + ")";
    // Its files may have changed in this run: the restart stays owed.
    if (job.kind == systemd::JobKind::kRestart) plan.heldRestarts.insert(job.unit);
    return true;
  });
}

void Daemon::pausesChanged() {
  const bool paused = pauses_.nodePaused();
  board_.set(heal::kNodeSubject, heal::condition::kPaused, paused || !pauses_.units().empty(),
             paused                    ? "PausedByOperator"
             : pauses_.units().empty() ? "Enforcing"
                                       : "UnitsPaused",
             paused ? pauses_.node()->reason : "");
  if (metrics_ != nullptr) metrics_->paused(paused);

  // Lifted by the operator, or ended on time.
  const core::WallTime now = clock_.wallNow();
  bool lifted = false;
  auto resumed = [&](const std::string& subject, const std::string& what,
                     const heal::Pause& pause) {
    lifted = true;
    const bool ended = pause.until && *pause.until <= now;
    board_.record(subject, "Resumed",
                  "enforcement and healing of " + what + " resumed" +
                      (ended ? ": the pause ended (" + pause.reason + ")" : ""));
  };
  if (lastNodePause_ && !paused) resumed(heal::kNodeSubject, "the node", *lastNodePause_);
  for (const auto& [unit, pause] : lastUnitPauses_) {
    if (!pauses_.units().contains(unit)) resumed(unit, unit, pause);
  }
  lastNodePause_ = pauses_.node();
  lastUnitPauses_ = pauses_.units();

  if (ready_) notify();
  healer_.resumed();
  // What the pause held back is applied now.
  if (lifted) requestConverge("resumed");
}

core::Result<nlohmann::json> Daemon::pause(const control::PauseRequest& request) {
  const std::string what = request.unit ? *request.unit : "the node";
  if (core::Status s = pauses_.pause(request.unit, request.reason, request.duration); !s) return s;
  board_.record(request.unit ? *request.unit : heal::kNodeSubject, "Paused",
                "enforcement and healing of " + what + " paused" +
                    (request.duration ? " for " + core::formatDuration(*request.duration) : "") +
                    ": " + request.reason);
  return nlohmann::json{{"paused", pauses_.toJson()}};
}

core::Result<nlohmann::json> Daemon::resume(const std::optional<std::string>& unit) {
  // pausesChanged() records it, repairs and converges.
  auto resumed = pauses_.resume(unit);
  if (!resumed) return resumed.status();
  return nlohmann::json{{"resumed", *resumed}, {"paused", pauses_.toJson()}};
}

void Daemon::oomKilled(const std::string& unit, const std::string& detail) {
  oom_.oomKilled(unit, detail);
}

nlohmann::json Daemon::status() {
  nlohmann::json converge = {
      {"lastCheck",
       lastCheckTime_ ? nlohmann::json(heal::formatTime(*lastCheckTime_)) : nlohmann::json()},
      {"result", executor_.busy() ? "applying" : lastResult_}};
  if (lastReport_) {
    converge["changed"] = lastReport_->dryRun ? 0 : lastReport_->changed();
    converge["failed"] = lastReport_->failed();
    // A dry run applied nothing, and took no time worth showing.
    if (!lastReport_->dryRun) {
      converge["durationMs"] =
          std::chrono::duration_cast<std::chrono::milliseconds>(lastReport_->duration).count();
    }
  }
  std::string message;
  if (!rejected_.empty()) message = "state rejected: " + rejected_;
  if (!planError_.empty()) message = "cannot apply the state: " + planError_;
  if (message.empty() && lastReport_ && lastReport_->dryRun) {
    message = heldBackText(heldBack_) + " while paused";
  } else if (message.empty() && lastFailures_ > 0) {
    message = firstFailure_;
  }
  if (!message.empty()) converge["message"] = message;

  nlohmann::json document = board_.toJson();
  document["agent"] = {{"version", NODEWARDEN_VERSION},
                       {"pid", static_cast<int64_t>(getpid())},
                       {"since", heal::formatTime(started_)}};
  if (serverStatus_) document["server"] = serverStatus_();
  document["paused"] = pauses_.toJson();
  document["converge"] = std::move(converge);
  document["components"] = healer_.componentsJson();
  if (disk_) {
    const heal::DiskPressureStatus disk = disk_->status();
    if (disk.enabled) {
      nlohmann::json mounts = nlohmann::json::array();
      for (const auto& m : disk.mounts) {
        mounts.push_back({{"mount", m.mount},
                          {"percent", m.percent ? nlohmann::json(*m.percent) : nlohmann::json()},
                          {"error", m.error}});
      }
      document["disk"] = {
          {"mounts", std::move(mounts)},
          {"lastCleanup", disk.lastCleanup ? nlohmann::json(heal::formatTime(*disk.lastCleanup))
                                           : nlohmann::json()}};
    }
  }
  return document;
}

}  // namespace nodewarden::daemon
