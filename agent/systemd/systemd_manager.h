#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "agent/core/status.h"

namespace nodewarden::systemd {

// What systemd reports about one unit, as `systemctl show` names it.
struct UnitStatus {
  std::string loadState;      // "loaded", "not-found", "masked", "bad-setting", "error"
  std::string activeState;    // "active", "inactive", "failed", "activating", "deactivating", ...
  std::string subState;       // type-specific: "running", "dead", "exited", ...
  std::string unitFileState;  // "enabled", "disabled", "static", ...; "" without a unit file
  bool needDaemonReload = false;  // the unit file or a drop-in changed since the last reload
  std::string fragmentPath;
  std::vector<std::string> dropInPaths;

  bool operator==(const UnitStatus&) const = default;
};

// What a watched unit is doing, from its PropertiesChanged signals.
struct UnitActivity {
  std::string activeState;  // "active", "failed", "inactive", "activating", ...
  std::string subState;     // "running", "dead", "auto-restart", ...
  std::string result;    // the service's Result: "success", "signal", "exit-code", "oom-kill", ...
  uint32_t mainPid = 0;  // services only; 0 when none
  bool jobPending = false;  // a job (start, stop, restart) is queued or running for it
  uint32_t restarts = 0;    // NRestarts: systemd's own Restart= restarts

  bool operator==(const UnitActivity&) const = default;
};

// Called on the loop thread when a watched unit's activity changed in any of
// its fields; never twice in a row with the same activity.
using UnitActivityCallback =
    std::function<void(const std::string& unit, const UnitActivity& activity)>;

enum class JobKind { kStart, kStop, kRestart };

// The outcome of a job: ok when systemd reports it done, otherwise an error
// naming the job and why ("start foo.service: job failed because the control
// process exited with error code (result: exit-code)").
using JobCallback = std::function<void(core::Status result)>;

// The service manager as the converge engine and the healer drive it. Queries and
// unit-file changes are quick synchronous method calls; jobs (start, stop,
// restart) are asynchronous because they last as long as the unit takes.
class SystemdManager {
 public:
  virtual ~SystemdManager() = default;

  // The unit's state; a unit without a unit file is not an error but has
  // loadState "not-found".
  virtual core::Result<UnitStatus> unitStatus(const std::string& unit) = 0;
  // Reloads unit files (Manager.Reload); returns once systemd has finished.
  virtual core::Status daemonReload() = 0;
  // Creates or removes the [Install] symlinks of the units' files on disk,
  // replacing conflicting symlinks. systemd's view follows at the next
  // daemonReload() only: a loaded unit keeps reporting its old unitFileState
  // (systemd 252), or every unit reports needDaemonReload (255+). So follow a
  // change with a daemonReload(), as `systemctl enable` does.
  virtual core::Status enableUnitFiles(const std::vector<std::string>& units) = 0;
  virtual core::Status disableUnitFiles(const std::vector<std::string>& units) = 0;
  // Clears the unit's failed state and its start-rate counter.
  virtual core::Status resetFailed(const std::string& unit) = 0;
  // Queues a job for the unit, replacing conflicting jobs, and calls `done` on
  // the loop thread once systemd reports the job finished, or with a timeout
  // error when it has not within the job timeout (the job itself keeps going).
  // Never blocks for the job, and never calls `done` before it returns.
  virtual void runJob(JobKind kind, const std::string& unit, JobCallback done) = 0;

  // Follows the unit through systemd's PropertiesChanged signals (no polling)
  // and returns its activity now. `changed` gets every later change, once per
  // change; after a lost connection the watch is renewed and the activity
  // read again, so no change is missed for good. Watching a unit again
  // replaces its callback.
  virtual core::Result<UnitActivity> watchUnit(const std::string& unit,
                                               UnitActivityCallback changed) = 0;
  virtual void unwatchUnit(const std::string& unit) = 0;
};

}  // namespace nodewarden::systemd
