#include "tests/fakes/fake_systemd_manager.h"

#include <algorithm>
#include <utility>

#include "agent/systemd/job_result.h"

namespace nodewarden::systemd {

namespace {

UnitStatus notFound() {
  return UnitStatus{.loadState = "not-found", .activeState = "inactive", .subState = "dead"};
}

std::string joined(std::string_view verb, const std::vector<std::string>& units) {
  std::string text(verb);
  for (const std::string& unit : units) text += " " + unit;
  return text;
}

}  // namespace

void FakeSystemdManager::setUnit(const std::string& unit, UnitStatus status) {
  Unit& model = unitModel(unit);
  model.fileExists = status.loadState != "not-found";
  model.status = std::move(status);
  model.fileStateOnDisk.clear();
  notify(unit);
}

FakeSystemdManager::Unit& FakeSystemdManager::unitModel(const std::string& unit) {
  return units_.try_emplace(unit, Unit{.status = notFound()}).first->second;
}

void FakeSystemdManager::setUnitFile(const std::string& unit, bool exists) {
  Unit& model = unitModel(unit);
  model.fileExists = exists;
  if (model.status.loadState != "not-found") model.status.needDaemonReload = true;
}

UnitStatus FakeSystemdManager::unit(const std::string& unit) const {
  auto it = units_.find(unit);
  return it == units_.end() ? notFound() : it->second.status;
}

UnitActivity FakeSystemdManager::activity(const std::string& unit) const {
  const bool queued = std::any_of(jobs_.begin(), jobs_.end(),
                                  [&unit](const QueuedJob& job) { return job.unit == unit; });
  auto it = units_.find(unit);
  if (it == units_.end()) {
    const UnitStatus status = notFound();
    return UnitActivity{.activeState = status.activeState,
                        .subState = status.subState,
                        .result = "success",
                        .jobPending = queued};
  }
  const Unit& model = it->second;
  return UnitActivity{.activeState = model.status.activeState,
                      .subState = model.status.subState,
                      .result = model.result,
                      .mainPid = model.mainPid,
                      .jobPending = model.otherJob || queued,
                      .restarts = model.restarts};
}

void FakeSystemdManager::setActivity(const std::string& unit, UnitActivity activity) {
  Unit& model = unitModel(unit);
  model.status.activeState = std::move(activity.activeState);
  model.status.subState = std::move(activity.subState);
  model.result = std::move(activity.result);
  model.mainPid = activity.mainPid;
  model.restarts = activity.restarts;
  model.otherJob = activity.jobPending;
  notify(unit);
}

void FakeSystemdManager::notify(const std::string& unit) {
  auto it = watchers_.find(unit);
  if (it == watchers_.end()) return;
  UnitActivity now = activity(unit);
  if (now == it->second.reported) return;
  it->second.reported = now;
  // Copies: the callback may unwatch the unit, and `unit` may refer to what it destroys.
  UnitActivityCallback changed = it->second.changed;
  const std::string name = unit;
  if (changed) changed(name, now);
}

void FakeSystemdManager::failJobsFor(const std::string& unit, const std::string& result,
                                     const std::string& unitResult) {
  failedJobs_[unit] = FailedJob{result, unitResult};
}

void FakeSystemdManager::failCall(const std::string& call, core::Status error) {
  failedCalls_.insert_or_assign(call, std::move(error));
}

void FakeSystemdManager::clearFailures() {
  failedJobs_.clear();
  failedCalls_.clear();
}

std::vector<std::string> FakeSystemdManager::changes() const {
  std::vector<std::string> changes;
  for (const std::string& call : calls_) {
    if (!call.starts_with("status ")) changes.push_back(call);
  }
  return changes;
}

core::Status FakeSystemdManager::record(const std::string& call) {
  calls_.push_back(call);
  auto it = failedCalls_.find(call);
  return it == failedCalls_.end() ? core::Status::ok() : it->second;
}

core::Result<UnitStatus> FakeSystemdManager::unitStatus(const std::string& name) {
  if (core::Status s = record("status " + name); !s) return s;
  return unit(name);
}

core::Status FakeSystemdManager::daemonReload() {
  if (core::Status s = record("daemon-reload"); !s) return s;
  for (auto& [name, model] : units_) {
    UnitStatus& status = model.status;
    status.needDaemonReload = false;
    if (!model.fileStateOnDisk.empty()) {
      status.unitFileState = std::exchange(model.fileStateOnDisk, {});
    }
    const bool loaded = status.loadState != "not-found";
    if (model.fileExists && !loaded) {
      status.loadState = "loaded";
      if (status.unitFileState.empty()) status.unitFileState = "disabled";
      status.fragmentPath = "/etc/systemd/system/" + name;
    } else if (!model.fileExists && loaded) {
      // A unit that is still running stays so, without its file.
      status.loadState = "not-found";
      status.unitFileState.clear();
      status.fragmentPath.clear();
      status.dropInPaths.clear();
    }
  }
  return core::Status::ok();
}

core::Status FakeSystemdManager::enableUnitFiles(const std::vector<std::string>& units) {
  return setFileState("enable", units, "enabled");
}

core::Status FakeSystemdManager::disableUnitFiles(const std::vector<std::string>& units) {
  return setFileState("disable", units, "disabled");
}

core::Status FakeSystemdManager::setFileState(const std::string& verb,
                                              const std::vector<std::string>& units,
                                              const std::string& state) {
  const std::string call = joined(verb, units);
  if (core::Status s = record(call); !s) return s;
  for (const std::string& name : units) {
    auto it = units_.find(name);
    if (it == units_.end() || !it->second.fileExists) {
      return core::Status::notFound(call + ": Unit file " + name + " does not exist.");
    }
  }
  for (const std::string& name : units) {
    Unit& model = units_[name];
    if (model.status.unitFileState != "static") model.fileStateOnDisk = state;
  }
  return core::Status::ok();
}

core::Status FakeSystemdManager::resetFailed(const std::string& name) {
  if (core::Status s = record("reset-failed " + name); !s) return s;
  auto it = units_.find(name);
  if (it != units_.end() && it->second.status.activeState == "failed") {
    it->second.status.activeState = "inactive";
    it->second.status.subState = "dead";
    notify(name);
  }
  return core::Status::ok();
}

void FakeSystemdManager::runJob(JobKind kind, const std::string& unit, JobCallback done) {
  calls_.push_back(std::string(jobVerb(kind)) + " " + unit);
  jobs_.push_back(QueuedJob{kind, unit, std::move(done)});
}

size_t FakeSystemdManager::completeJobs() {
  size_t completed = 0;
  while (!jobs_.empty()) {
    QueuedJob job = std::move(jobs_.front());
    jobs_.pop_front();
    core::Status result = runQueuedJob(job);
    ++completed;
    // systemd signals the unit's change before the job's end.
    notify(job.unit);
    job.done(std::move(result));
  }
  return completed;
}

core::Status FakeSystemdManager::runQueuedJob(const QueuedJob& job) {
  const std::string call = std::string(jobVerb(job.kind)) + " " + job.unit;
  if (auto it = failedCalls_.find(call); it != failedCalls_.end()) return it->second;

  // What systemd refuses to queue at all.
  auto it = units_.find(job.unit);
  const std::string loadState = it == units_.end() ? "not-found" : it->second.status.loadState;
  if (loadState == "not-found") {
    return core::Status::notFound(call + ": Unit " + job.unit +
                                  (job.kind == JobKind::kStop ? " not loaded." : " not found."));
  }
  if (loadState == "masked" && job.kind != JobKind::kStop) {
    return core::Status::failedPrecondition(call + ": Unit " + job.unit + " is masked.");
  }

  Unit& model = it->second;
  UnitStatus& status = model.status;
  if (auto failed = failedJobs_.find(job.unit); failed != failedJobs_.end()) {
    if (failed->second.result == "failed") {
      status.activeState = "failed";
      status.subState = "failed";
      model.result = failed->second.unitResult;
      model.mainPid = 0;
    }
    return jobResultStatus(job.kind, job.unit, failed->second.result, failed->second.unitResult);
  }
  const bool stop = job.kind == JobKind::kStop;
  status.activeState = stop ? "inactive" : "active";
  status.subState = stop ? "dead" : "running";
  // Starting resets the Result; restarting a running unit gives it a new process.
  if (stop) {
    model.mainPid = 0;
  } else if (job.kind == JobKind::kRestart || model.mainPid == 0) {
    model.result = "success";
    model.mainPid = nextPid_++;
  }
  return core::Status::ok();
}

core::Result<UnitActivity> FakeSystemdManager::watchUnit(const std::string& unit,
                                                         UnitActivityCallback changed) {
  if (auto failed = failedCalls_.find("watch " + unit); failed != failedCalls_.end()) {
    watchers_.erase(unit);
    return failed->second;
  }
  UnitActivity now = activity(unit);
  watchers_.insert_or_assign(unit, Watcher{std::move(changed), now});
  return now;
}

void FakeSystemdManager::unwatchUnit(const std::string& unit) { watchers_.erase(unit); }

}  // namespace nodewarden::systemd
