#pragma once

#include <deque>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "agent/systemd/systemd_manager.h"

namespace nodewarden::systemd {

// An in-memory systemd for unit tests. It models each unit's state as systemd
// reports it and whether its unit file exists, and records every call in order,
// in systemctl's words: "status x.service", "daemon-reload",
// "enable a.service b.service", "start x.service", ...
//
// Jobs never complete by themselves: runJob() queues them and the test runs
// them with completeJobs(), which applies each job's effect (start → active,
// stop → inactive, or failed) and calls its callback, in the order they were
// queued. So a callback never runs inside runJob(), as with the real manager.
//
//   FakeSystemdManager fake;
//   fake.setUnit("kubelet.service", {.loadState = "loaded", .activeState = "inactive",
//                                    .unitFileState = "disabled"});
//   fake.failJobsFor("kubelet.service");
//   ... run the code under test ...
//   fake.completeJobs();
//   EXPECT_THAT(fake.changes(), ElementsAre("enable kubelet.service", "start kubelet.service"));
class FakeSystemdManager final : public SystemdManager {
 public:
  // Sets the unit's state as systemd would report it. Its unit file exists
  // unless loadState is "not-found".
  void setUnit(const std::string& unit, UnitStatus status);
  // The unit file appears on or disappears from disk. Enabling sees it at once;
  // the unit's loadState follows at the next daemonReload(), and until then a
  // loaded unit reports needDaemonReload.
  //
  // As with systemd, enabling and disabling change the disk, and unitFileState
  // reports the change after the next daemonReload().
  void setUnitFile(const std::string& unit, bool exists);
  // The unit's state, without recording a call. Unknown units are "not-found".
  UnitStatus unit(const std::string& unit) const;

  // Jobs for `unit` end with this JobRemoved result (and the unit's Result
  // property for "failed"), leaving the unit failed; the callback gets the
  // error the real manager would give.
  void failJobsFor(const std::string& unit, const std::string& result = "failed",
                   const std::string& unitResult = "exit-code");
  // The call recorded as `call` ("daemon-reload", "enable x.service",
  // "start x.service", ...) fails with `error` and changes nothing; for a job,
  // its callback gets `error` (e.g. jobTimeoutStatus(...) for a job timeout).
  void failCall(const std::string& call, core::Status error);
  // Undoes failJobsFor() and failCall().
  void clearFailures();

  // Every call so far, in order.
  const std::vector<std::string>& calls() const { return calls_; }
  // calls() without the "status" queries: what could have changed the node.
  std::vector<std::string> changes() const;
  void clearCalls() { calls_.clear(); }

  size_t pendingJobs() const { return jobs_.size(); }
  // Completes queued jobs in order, including those their callbacks queue,
  // until none is left; returns how many completed.
  size_t completeJobs();

  core::Result<UnitStatus> unitStatus(const std::string& unit) override;
  core::Status daemonReload() override;
  core::Status enableUnitFiles(const std::vector<std::string>& units) override;
  core::Status disableUnitFiles(const std::vector<std::string>& units) override;
  core::Status resetFailed(const std::string& unit) override;
  void runJob(JobKind kind, const std::string& unit, JobCallback done) override;
  core::Result<UnitActivity> watchUnit(const std::string& unit,
                                       UnitActivityCallback changed) override;
  void unwatchUnit(const std::string& unit) override;

 private:
  // enable and disable: record the call, then change the links on "disk".
  core::Status setFileState(const std::string& verb, const std::vector<std::string>& units,
                            const std::string& state);
  struct Unit {
    UnitStatus status;
    bool fileExists = false;
    std::string fileStateOnDisk;  // "" until set by enable or disable
  };
  struct FailedJob {
    std::string result;
    std::string unitResult;
  };
  struct QueuedJob {
    JobKind kind;
    std::string unit;
    JobCallback done;
  };

  // Records `call`; returns the failure set for it with failCall(), or ok.
  core::Status record(const std::string& call);
  core::Status runQueuedJob(const QueuedJob& job);

  std::map<std::string, Unit> units_;
  std::map<std::string, FailedJob> failedJobs_;
  std::map<std::string, core::Status> failedCalls_;
  std::vector<std::string> calls_;
  std::deque<QueuedJob> jobs_;
};

}  // namespace nodewarden::systemd
