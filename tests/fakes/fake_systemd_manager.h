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
//
// Watching a unit records no call. Its activity is the unit's activeState and
// subState with a few fields only the fake keeps: Result ("success" until a job
// fails or setActivity() says otherwise), a main PID (a new one each time a job
// starts the unit, 0 once it stops or fails), NRestarts, and jobPending, true
// while a job the fake queued for it waits for completeJobs(). Watchers hear of
// a change synchronously, from the call that made it: setActivity(), setUnit(),
// resetFailed() and completeJobs(), where a job's watcher hears of its effect
// before the job's callback runs, as with systemd. runJob() notifies nobody: the
// pending job shows in watchUnit()'s answer and in the next notification.
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
  // What the unit is doing, as watchUnit() reports it.
  UnitActivity activity(const std::string& unit) const;
  // The unit does what `activity` says, as if systemd had done it: a crash
  // (failed/failed, result "signal"), an auto-restart, an operator's job
  // (jobPending). Sets the unit's activeState and subState too, and calls its
  // watcher at once if its activity changed. jobPending stays true while a job
  // the fake queued for the unit waits. An unknown unit becomes a not-found one.
  void setActivity(const std::string& unit, UnitActivity activity);
  bool watched(const std::string& unit) const { return watchers_.contains(unit); }

  // Jobs for `unit` end with this JobRemoved result (and the unit's Result
  // property for "failed"), leaving the unit failed; the callback gets the
  // error the real manager would give.
  void failJobsFor(const std::string& unit, const std::string& result = "failed",
                   const std::string& unitResult = "exit-code");
  // The call recorded as `call` ("daemon-reload", "enable x.service",
  // "start x.service", ...) fails with `error` and changes nothing; for a job,
  // its callback gets `error` (e.g. jobTimeoutStatus(...) for a job timeout).
  // "watch x.service" fails watchUnit(), though it records no call.
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
    // What systemd would report beyond UnitStatus.
    std::string result = "success";
    uint32_t mainPid = 0;
    uint32_t restarts = 0;
    bool otherJob = false;  // someone else's job, as setActivity() set it
  };
  struct Watcher {
    UnitActivityCallback changed;
    UnitActivity reported;
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
  Unit& unitModel(const std::string& unit);
  // Calls the unit's watcher if its activity differs from what it last heard.
  void notify(const std::string& unit);

  std::map<std::string, Unit> units_;
  std::map<std::string, FailedJob> failedJobs_;
  std::map<std::string, core::Status> failedCalls_;
  std::vector<std::string> calls_;
  std::deque<QueuedJob> jobs_;
  std::map<std::string, Watcher> watchers_;
  uint32_t nextPid_ = 1000;
};

}  // namespace nodewarden::systemd
