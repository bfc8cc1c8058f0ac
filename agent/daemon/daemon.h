#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>

#include <nlohmann/json_fwd.hpp>

#include "agent/control/control_server.h"
#include "agent/converge/executor.h"
#include "agent/converge/planner.h"
#include "agent/converge/restart_ledger.h"
#include "agent/core/clock.h"
#include "agent/core/file_lock.h"
#include "agent/daemon/agent_config.h"
#include "agent/heal/healer.h"
#include "agent/heal/health.h"
#include "agent/heal/oom_monitor.h"
#include "agent/heal/pause.h"
#include "nodewarden/v1/state.pb.h"

namespace nodewarden::systemd {
class SystemdManager;
}
namespace nodewarden::metrics {
class Metrics;
}
namespace nodewarden::heal {
class DiskPressureMonitor;
class Prober;
}  // namespace nodewarden::heal

namespace nodewarden::daemon {

class FileWatcher;
class ServiceNotifier;

// Editors and config tools replace a file in several steps; converge once
// they are done rather than on each step.
inline constexpr core::Duration kSettleDelay = std::chrono::milliseconds(200);
// A one-shot apply holds the converge lock for as long as it runs.
inline constexpr core::Duration kLockRetryDelay = std::chrono::seconds(1);
// In the state directory: the last state applied, enforced while the state
// file is rejected.
inline constexpr char kLastAppliedName[] = "last-applied.yaml";

// In the state directory: the conditions and events, and the operator's pauses.
inline constexpr char kHealthName[] = "health.json";
inline constexpr char kPauseName[] = "pause.json";

// Keeps the node in the state of its local state file: converges at start,
// when the state file changes, on reload and at every drift-check interval,
// one converge at a time; between converges the healer keeps the state's
// running units running and the remediations watch the node. An operator's
// pause holds back every change (node-wide) or those to one unit, while the
// daemon still observes and reports. Owns nothing it can share with another
// thread: everything runs on the loop.
class Daemon final : public control::ControlHandler {
 public:
  struct Options {
    AgentConfig config;
    // Holds the last applied state, the restart ledger and the converge lock.
    std::string stateDirectory;
    // Prefixes every managed path (see converge::Planner); "" for the real node.
    std::string root;
    // The package manager, artifact store and process runner; each may be
    // null when the node has none (a state that needs it is then refused).
    converge::Providers providers;
    // Runs the units' probes; null: no probes.
    heal::Prober* prober = nullptr;
    // Null: no metrics.
    metrics::Metrics* metrics = nullptr;
    // Called after every converge, also one that could not run (result
    // "failed" or "rejected" with `error`); `report` is null then.
    std::function<void(const std::string& result, const std::string& error,
                       const converge::Report* report)>
        converged;
    // What `status` shows of the connection to the server; null: no server.
    std::function<nlohmann::json()> serverStatus;
  };

  Daemon(core::Clock& clock, systemd::SystemdManager& systemd, ServiceNotifier& notifier,
         FileWatcher& watcher, Options options);
  ~Daemon() override;

  // Loads the last applied state and starts the first converge.
  void start();
  // The state file may have changed: converges once it has settled.
  void stateFileChanged();
  // A reread configuration (SIGHUP): takes it, then converges.
  void reload(AgentConfig config);
  // Converges now, or right after the converge in progress.
  void requestConverge(std::string reason);

  // The operator's commands, from the control socket: what `nodewarden-agent
  // status` shows (see control/control_server.h), pause and resume.
  nlohmann::json status() override;
  core::Result<nlohmann::json> pause(const control::PauseRequest& request) override;
  core::Result<nlohmann::json> resume(const std::optional<std::string>& unit) override;
  // The kernel's OOM killer killed a process of `unit`.
  void oomKilled(const std::string& unit, const std::string& detail);

  const heal::HealthBoard& health() const { return board_; }
  heal::HealthBoard& health() { return board_; }

 private:
  void loadLastApplied();
  const v1::NodeState* chooseState();
  void converge(const std::string& reason);
  void planAndApply(const v1::NodeState& target, std::set<std::string> owed, bool mayFallBack);
  void finished(const std::optional<converge::Report>& report);
  void record(const converge::Report& report);
  void saveLastApplied();
  // Sends STATUS= (READY=1 the first time); `unlessSame`: not when it says
  // what the last one said.
  void notify(bool unlessSame = false);
  // Hands the healer and the remediations what `target` asks of them.
  void configureHealing(const v1::NodeState& target);
  // Holds back the jobs of the units the operator paused; their restarts
  // stay owed (Plan::heldRestarts).
  void applyPaused(converge::Plan& plan);
  void pausesChanged();

  core::Clock& clock_;
  ServiceNotifier& notifier_;
  metrics::Metrics* metrics_;
  std::function<void(const std::string&, const std::string&, const converge::Report*)> converged_;
  std::function<nlohmann::json()> serverStatus_;
  const core::WallTime started_;
  FileWatcher& watcher_;
  converge::Planner planner_;
  packages::PackageManager* packages_;  // nullptr on a node without apt or dnf
  converge::RestartLedger ledger_;
  converge::Executor executor_;
  AgentConfig config_;
  const std::string lastAppliedPath_;
  const std::string lockPath_;
  std::unique_ptr<core::Timer> intervalTimer_;
  std::unique_ptr<core::Timer> settleTimer_;
  std::unique_ptr<core::Timer> lockRetryTimer_;
  std::optional<core::FileLock> lock_;

  heal::HealthBoard board_;
  const std::string pausePath_;
  heal::PauseStore pauses_;
  // The pauses as pausesChanged() last saw them, to tell which were lifted.
  std::optional<heal::Pause> lastNodePause_;
  std::map<std::string, heal::Pause> lastUnitPauses_;
  heal::Healer healer_;
  heal::OomMonitor oom_;
  std::unique_ptr<heal::DiskPressureMonitor> disk_;

  std::optional<v1::NodeState> lastGood_;
  std::string lastGoodText_;
  std::optional<v1::NodeState> candidate_;
  std::string candidateText_;
  std::optional<std::string> pendingReason_;

  bool converging_ = false;  // from observing the node until the report
  bool ready_ = false;
  bool waiting_ = false;  // for the server's first desired state
  std::string rejected_;
  std::string planError_;
  std::string lastCheck_;
  std::string lastDrift_;
  std::string firstFailure_;
  size_t lastFailures_ = 0;
  size_t heldBack_ = 0;  // changes the last converge held back (node paused)
  std::optional<converge::Report> lastReport_;
  std::string lastResult_ = "pending";
  std::string lastStatus_;  // the last STATUS= sent
  std::optional<core::WallTime> lastCheckTime_;
  std::set<std::string> lastUnits_;  // the running units of the last state configured
  // Callbacks that outlive the daemon find it gone.
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace nodewarden::daemon
