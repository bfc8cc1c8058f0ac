#include "agent/daemon/daemon.h"

#include <ctime>
#include <vector>

#include "agent/core/atomic_file.h"
#include "agent/core/duration.h"
#include "agent/core/log.h"
#include "agent/daemon/file_watcher.h"
#include "agent/daemon/service_notifier.h"
#include "agent/state/loader.h"

namespace nodewarden::daemon {

namespace {

const auto kLog = core::log::category("agent");

std::string clockTime(core::WallTime time) {
  const std::time_t t = std::chrono::system_clock::to_time_t(time);
  std::tm tm;
  localtime_r(&t, &tm);
  char text[16];
  std::strftime(text, sizeof(text), "%H:%M:%S", &tm);
  return text;
}

}  // namespace

Daemon::Daemon(core::Clock& clock, systemd::SystemdManager& systemd, ServiceNotifier& notifier,
               FileWatcher& watcher, Options options)
    : clock_(clock),
      notifier_(notifier),
      watcher_(watcher),
      planner_(systemd, std::move(options.root), options.providers),
      ledger_(options.stateDirectory + "/" + kRestartLedgerName),
      executor_(systemd, clock, &ledger_),
      config_(std::move(options.config)),
      lastAppliedPath_(options.stateDirectory + "/" + kLastAppliedName),
      lockPath_(options.stateDirectory + "/" + kConvergeLockName),
      intervalTimer_(clock.createTimer([this] { requestConverge("drift check"); })),
      settleTimer_(clock.createTimer([this] { requestConverge("state file changed"); })),
      lockRetryTimer_(clock.createTimer([this] { requestConverge("retry"); })) {}

// The watcher's callback points here; it must not outlive the daemon.
Daemon::~Daemon() {
  *alive_ = false;
  watcher_.stop();
}

void Daemon::start() {
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
    // Ready once the first plan's jobs are queued, not done: a managed unit
    // ordered after the agent waits for the agent's own start.
    executor_.apply(
        std::move(*plan), [this](converge::Report report) { finished(report); },
        [this] {
          if (!ready_) notify();
        });
  });
}

void Daemon::finished(const std::optional<converge::Report>& report) {
  converging_ = false;
  if (report) {
    record(*report);
    if (candidate_ && candidateText_ != lastGoodText_) saveLastApplied();
  }
  notify();
  lock_.reset();
  intervalTimer_->armIn(config_.driftCheckInterval);
  if (pendingReason_) {
    std::string reason = std::move(*pendingReason_);
    pendingReason_.reset();
    converge(reason);
  }
}

void Daemon::record(const converge::Report& report) {
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

void Daemon::notify() {
  std::vector<std::string> parts;
  if (!rejected_.empty()) {
    parts.push_back("State rejected (" + rejected_ + ")");
  }
  if (!planError_.empty()) parts.push_back("Cannot apply the state: " + planError_);
  if (!rejected_.empty() || !planError_.empty()) {
    parts.push_back(lastGood_ ? "enforcing the last good state" : "nothing to enforce");
  }
  if (executor_.busy()) {
    parts.push_back("Applying the first state");
  } else if (lastFailures_ > 0) {
    parts.push_back(std::to_string(lastFailures_) + " failed at " + lastCheck_ + ": " +
                    firstFailure_);
  } else if (!lastCheck_.empty()) {
    parts.push_back("In desired state, checked " + lastCheck_);
  }
  if (!lastCheck_.empty()) {
    parts.push_back(lastDrift_.empty() ? "no drift found" : "last drift " + lastDrift_);
  }
  std::string status;
  for (const auto& part : parts) status += (status.empty() ? "" : "; ") + part;
  if (!ready_) {
    notifier_.ready(status);
    ready_ = true;
  } else {
    notifier_.status(status);
  }
}

}  // namespace nodewarden::daemon
