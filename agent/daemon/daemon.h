#pragma once

#include <memory>
#include <optional>
#include <set>
#include <string>

#include "agent/converge/executor.h"
#include "agent/converge/planner.h"
#include "agent/converge/restart_ledger.h"
#include "agent/core/clock.h"
#include "agent/core/file_lock.h"
#include "agent/daemon/agent_config.h"
#include "nodewarden/v1/state.pb.h"

namespace nodewarden::systemd {
class SystemdManager;
}

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

// Keeps the node in the state of its local state file: converges at start,
// when the state file changes, on reload and at every drift-check interval,
// one converge at a time. Owns nothing it can share with another thread:
// everything runs on the loop.
class Daemon final {
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
  };

  Daemon(core::Clock& clock, systemd::SystemdManager& systemd, ServiceNotifier& notifier,
         FileWatcher& watcher, Options options);
  ~Daemon();

  // Loads the last applied state and starts the first converge.
  void start();
  // The state file may have changed: converges once it has settled.
  void stateFileChanged();
  // A reread configuration (SIGHUP): takes it, then converges.
  void reload(AgentConfig config);
  // Converges now, or right after the converge in progress.
  void requestConverge(std::string reason);

 private:
  void loadLastApplied();
  const v1::NodeState* chooseState();
  void converge(const std::string& reason);
  void planAndApply(const v1::NodeState& target, std::set<std::string> owed, bool mayFallBack);
  void finished(const std::optional<converge::Report>& report);
  void record(const converge::Report& report);
  void saveLastApplied();
  void notify();

  core::Clock& clock_;
  ServiceNotifier& notifier_;
  FileWatcher& watcher_;
  converge::Planner planner_;
  converge::RestartLedger ledger_;
  converge::Executor executor_;
  AgentConfig config_;
  const std::string lastAppliedPath_;
  const std::string lockPath_;
  std::unique_ptr<core::Timer> intervalTimer_;
  std::unique_ptr<core::Timer> settleTimer_;
  std::unique_ptr<core::Timer> lockRetryTimer_;
  std::optional<core::FileLock> lock_;

  std::optional<v1::NodeState> lastGood_;
  std::string lastGoodText_;
  std::optional<v1::NodeState> candidate_;
  std::string candidateText_;
  std::optional<std::string> pendingReason_;

  bool converging_ = false;  // from observing the node until the report
  bool ready_ = false;
  std::string rejected_;
  std::string planError_;
  std::string lastCheck_;
  std::string lastDrift_;
  std::string firstFailure_;
  size_t lastFailures_ = 0;
  // Callbacks that outlive the daemon find it gone.
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace nodewarden::daemon
