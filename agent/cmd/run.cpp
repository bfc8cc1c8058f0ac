#include <getopt.h>
#include <sys/inotify.h>
#include <systemd/sd-daemon.h>

#include <ctime>
#include <iostream>
#include <optional>

#include "agent/cmd/agent_config.h"
#include "agent/cmd/commands.h"
#include "agent/converge/executor.h"
#include "agent/converge/planner.h"
#include "agent/core/atomic_file.h"
#include "agent/core/duration.h"
#include "agent/core/file_lock.h"
#include "agent/core/log.h"
#include "agent/core/loop.h"
#include "agent/state/loader.h"
#include "agent/systemd/bus_systemd_manager.h"

namespace nodewarden::cmd {

namespace {

using namespace std::chrono_literals;

constexpr char kUsage[] = R"(Usage: nodewarden-agent run [--config FILE]

Runs the agent daemon: converges the node to its desired state at start, when
the state file changes, on SIGHUP (which also rereads the config) and at every
drift-check interval. Meant to run under systemd (nodewarden-agent.service).

  --config FILE   Agent configuration (default /etc/nodewarden/agent.yaml)
)";

constexpr char kDefaultConfig[] = "/etc/nodewarden/agent.yaml";
constexpr char kLastAppliedName[] = "last-applied.yaml";
// Editors and config tools replace a file in several steps; converge once
// they are done rather than on each step.
constexpr core::Duration kSettleDelay = 200ms;
// A one-shot apply holds the converge lock for as long as it runs.
constexpr core::Duration kLockRetryDelay = 1s;

std::string clockTime(core::WallTime time) {
  const std::time_t t = std::chrono::system_clock::to_time_t(time);
  std::tm tm;
  localtime_r(&t, &tm);
  char text[16];
  std::strftime(text, sizeof(text), "%H:%M:%S", &tm);
  return text;
}

std::string baseName(const std::string& path) { return path.substr(path.rfind('/') + 1); }
std::string directoryName(const std::string& path) {
  const auto slash = path.rfind('/');
  return slash == 0 ? "/" : path.substr(0, slash);
}

// Keeps the node in the state of its local state file. Owns nothing it can
// share with another thread: everything runs on the loop.
class Daemon final {
 public:
  Daemon(core::Loop& loop, core::Clock& clock, systemd::SystemdManager& systemd,
         std::string configPath, AgentConfig config, std::string stateDirectory)
      : loop_(loop),
        clock_(clock),
        planner_(systemd, ""),
        ledger_(stateDirectory + "/" + kRestartLedgerName),
        executor_(systemd, clock, &ledger_),
        configPath_(std::move(configPath)),
        config_(std::move(config)),
        lastAppliedPath_(stateDirectory + "/" + kLastAppliedName),
        intervalTimer_(clock.createTimer([this] { requestConverge("drift check"); })),
        settleTimer_(clock.createTimer([this] { requestConverge("state file changed"); })),
        lockRetryTimer_(clock.createTimer([this] { requestConverge("retry"); })),
        lockPath_(stateDirectory + "/" + kConvergeLockName) {}

  core::Status start() {
    loadLastApplied();
    auto hangup = loop_.addSignal(SIGHUP, [this] { reload(); });
    if (!hangup) return hangup.status();
    hangupSource_ = std::move(*hangup);
    NW_LOG(log_, info, "Enforcing {}, checking for drift every {}", config_.stateFile,
           core::formatDuration(config_.driftCheckInterval));
    requestConverge("start");
    return core::Status::ok();
  }

 private:
  static inline const auto log_ = core::log::category("agent");

  void loadLastApplied() {
    auto text = core::readFile(lastAppliedPath_, state::kMaxDocumentBytes);
    if (!text) {
      if (text.status().code() != core::Status::Code::kNotFound) {
        NW_LOG(log_, warn, "Failed to read the last applied state: {}, ignoring",
               text.status().message());
      }
      return;
    }
    state::LoadResult loaded = state::loadString(*text, lastAppliedPath_);
    if (!loaded.ok()) {
      NW_LOG(log_, warn, "Last applied state {} is not valid ({}), ignoring", lastAppliedPath_,
             loaded.errors.front().toString());
      return;
    }
    lastGood_ = std::move(*loaded.state);
    lastGoodText_ = std::move(*text);
  }

  core::Status watchStateFile() {
    const std::string directory = directoryName(config_.stateFile);
    const std::string name = baseName(config_.stateFile);
    auto source = loop_.addInotify(
        directory, IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE | IN_DELETE,
        [this, name](const struct inotify_event& event) {
          // A queue overflow may have eaten the event that mattered.
          if ((event.mask & IN_Q_OVERFLOW) || (event.len > 0 && name == event.name)) {
            settleTimer_->armIn(kSettleDelay);
          }
        });
    if (!source) return source.status();
    inotifySource_ = std::move(*source);
    return core::Status::ok();
  }

  void reload() {
    NW_LOG(log_, info, "Reloading configuration from {}", configPath_);
    auto config = loadAgentConfig(configPath_);
    if (!config) {
      NW_LOG(log_, err, "Failed to reload {}: {}; keeping the running configuration", configPath_,
             config.status().message());
    } else {
      if (config->stateFile != config_.stateFile) inotifySource_.reset();
      if (config->jobTimeout != config_.jobTimeout) {
        NW_LOG(log_, warn, "jobTimeout changes take effect when the agent restarts");
      }
      config_ = std::move(*config);
      core::log::setUp(core::log::Destination::kAuto, config_.logLevel);
    }
    requestConverge("reload");
  }

  void requestConverge(std::string reason) {
    if (executor_.busy()) {
      pendingReason_ = std::move(reason);
      return;
    }
    converge(reason);
  }

  // The state to enforce now: the state file when it is valid, otherwise the
  // last good state (a rejected state changes nothing).
  const v1::NodeState* chooseState() {
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
      for (const auto& error : loaded.errors) NW_LOG(log_, err, "{}", error.toString());
    }
    candidate_.reset();
    if (lastGood_) {
      NW_LOG(log_, err, "State rejected: {}; enforcing the last good state", rejected_);
      return &*lastGood_;
    }
    NW_LOG(log_, err, "State rejected: {}; no earlier state to enforce", rejected_);
    return nullptr;
  }

  void converge(const std::string& reason) {
    intervalTimer_->cancel();
    // One converge at a time on a node: a one-shot apply may hold the lock.
    auto lock = core::FileLock::tryAcquire(lockPath_);
    if (!lock) {
      NW_LOG(log_, info, "Waiting to converge ({}): {}", reason, lock.status().message());
      lockRetryTimer_->armIn(kLockRetryDelay);
      return;
    }
    lock_ = std::move(*lock);
    NW_LOG(log_, debug, "Converging ({})", reason);
    if (!inotifySource_) {
      // Missing at start, or moved by a reload: retried at every converge.
      if (core::Status s = watchStateFile(); !s) {
        NW_LOG(log_, warn, "Failed to watch {}: {}; relying on the drift check", config_.stateFile,
               s.message());
      }
    }

    const v1::NodeState* target = chooseState();
    if (target == nullptr) return finished(std::nullopt);
    auto plan = planner_.plan(*target, ledger_.owed());
    planError_.clear();
    if (!plan) {
      planError_ = plan.status().message();
      NW_LOG(log_, err, "Cannot apply the state, nothing of it was changed: {}", planError_);
      candidate_.reset();
      if (!lastGood_ || target == &*lastGood_) return finished(std::nullopt);
      NW_LOG(log_, err, "Enforcing the last good state");
      plan = planner_.plan(*lastGood_, ledger_.owed());
      if (!plan) {
        NW_LOG(log_, err, "Cannot apply the last good state either: {}", plan.status().message());
        return finished(std::nullopt);
      }
    }
    // Ready once the first plan's jobs are queued, not done: a managed unit
    // ordered after the agent waits for the agent's own start.
    executor_.apply(
        std::move(*plan), [this](converge::Report report) { finished(report); },
        [this] {
          if (!ready_) notify();
        });
  }

  void finished(const std::optional<converge::Report>& report) {
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

  void record(const converge::Report& report) {
    for (const auto& change : report.changes) {
      if (change.outcome == converge::Change::Outcome::kApplied) {
        NW_LOG(log_, info, "{}: {}{}", change.resource, change.action,
               change.detail.empty() ? "" : " (" + change.detail + ")");
      } else {
        NW_LOG(log_, err, "{}: {} {}: {}", change.resource, change.action,
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
        if (!change.error.empty()) {
          firstFailure_ = change.resource + ": " + change.error;
          break;
        }
      }
    }
    if (report.changed() > 0) {
      lastDrift_ = when + " (" + std::to_string(report.changed()) + " changed)";
    }
    NW_LOG(log_, info, "Converged in {} ms: {} changed, {} failed", ms, report.changed(),
           report.failed());
  }

  void saveLastApplied() {
    core::Status s = core::writeFileAtomic(lastAppliedPath_, candidateText_, {.mode = 0600});
    if (!s) {
      NW_LOG(log_, warn, "Failed to save the last applied state: {}, ignoring", s.message());
      return;
    }
    lastGood_ = std::move(candidate_);
    lastGoodText_ = std::move(candidateText_);
    candidate_.reset();
  }

  void notify() {
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
      sd_notifyf(0, "READY=1\nSTATUS=%s", status.c_str());
      ready_ = true;
    } else {
      sd_notifyf(0, "STATUS=%s", status.c_str());
    }
  }

  core::Loop& loop_;
  core::Clock& clock_;
  converge::Planner planner_;
  converge::RestartLedger ledger_;
  converge::Executor executor_;
  const std::string configPath_;
  AgentConfig config_;
  const std::string lastAppliedPath_;
  std::unique_ptr<core::Timer> intervalTimer_;
  std::unique_ptr<core::Timer> settleTimer_;
  std::unique_ptr<core::Timer> lockRetryTimer_;
  const std::string lockPath_;
  std::optional<core::FileLock> lock_;
  core::EventSource inotifySource_;
  core::EventSource hangupSource_;

  std::optional<v1::NodeState> lastGood_;
  std::string lastGoodText_;
  std::optional<v1::NodeState> candidate_;
  std::string candidateText_;
  std::optional<std::string> pendingReason_;

  bool ready_ = false;
  std::string rejected_;
  std::string planError_;
  std::string lastCheck_;
  std::string lastDrift_;
  std::string firstFailure_;
  size_t lastFailures_ = 0;
};

}  // namespace

int run(int argc, char** argv) {
  std::string configPath = kDefaultConfig;
  static const option kOptions[] = {
      {"config", required_argument, nullptr, 'c'},
      {"help", no_argument, nullptr, 'h'},
      {nullptr, 0, nullptr, 0},
  };
  optind = 1;
  for (int c; (c = getopt_long(argc, argv, "c:h", kOptions, nullptr)) != -1;) {
    switch (c) {
      case 'c':
        configPath = optarg;
        break;
      case 'h':
        std::cout << kUsage;
        return kExitOk;
      default:
        std::cerr << kUsage;
        return kExitUsage;
    }
  }
  auto log = core::log::category("agent");

  auto config = loadAgentConfig(configPath);
  if (!config) {
    NW_LOG(log, critical, "Failed to load {}: {}", configPath, config.status().message());
    return kExitInvalid;
  }
  core::log::setUp(core::log::Destination::kAuto, config->logLevel);
  auto stateDir = stateDirectory();
  if (!stateDir) {
    NW_LOG(log, critical, "Failed to set up the state directory: {}", stateDir.status().message());
    return kExitInvalid;
  }

  auto loop = core::Loop::create();
  if (!loop) {
    NW_LOG(log, critical, "Failed to set up the event loop: {}", loop.status().message());
    return kExitInvalid;
  }
  if (core::Status s = (*loop)->exitOnTerminationSignals(); !s) {
    NW_LOG(log, critical, "Failed to set up signals: {}", s.message());
    return kExitInvalid;
  }
  if (core::Status s = (*loop)->enableWatchdog(); !s) {
    NW_LOG(log, warn, "Failed to enable the watchdog: {}, ignoring", s.message());
  }
  core::LoopClock clock(**loop);
  auto systemd = systemd::BusSystemdManager::connect(**loop, clock, config->jobTimeout);
  if (!systemd) {
    NW_LOG(log, critical, "Failed to connect to systemd: {}", systemd.status().message());
    return kExitInvalid;
  }

  Daemon daemon(**loop, clock, **systemd, configPath, std::move(*config), *stateDir);
  if (core::Status s = daemon.start(); !s) {
    NW_LOG(log, critical, "Failed to start: {}", s.message());
    return kExitInvalid;
  }
  NW_LOG(log, info, "nodewarden-agent {} running with {}", NODEWARDEN_VERSION, configPath);
  const int code = (*loop)->run();
  sd_notify(0, "STOPPING=1");
  return code;
}

}  // namespace nodewarden::cmd
