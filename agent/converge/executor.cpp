#include "agent/converge/executor.h"

#include <set>

#include "agent/systemd/systemd_manager.h"

namespace nodewarden::converge {

size_t Report::changed() const {
  size_t n = 0;
  for (const auto& change : changes) n += change.outcome == Change::Outcome::kApplied;
  return n;
}

size_t Report::failed() const {
  size_t n = 0;
  for (const auto& change : changes) {
    n += change.outcome == Change::Outcome::kFailed || change.outcome == Change::Outcome::kSkipped;
  }
  return n;
}

int Report::exitCode() const { return (changed() > 0 ? 2 : 0) | (failed() > 0 ? 4 : 0); }

Report dryRunReport(const Plan& plan) {
  Report report;
  report.changes = plan.changes;
  report.dryRun = true;
  return report;
}

struct Executor::Run {
  Plan plan;
  Done done;
  core::MonotonicTime started;
  std::vector<bool> stepSucceeded;
  size_t nextStep = 0;
  std::function<void()> jobsQueuedCallback;
  size_t jobsPending = 0;
  size_t jobsQueued = 0;
  bool keepLedger = false;
};

Executor::Executor(systemd::SystemdManager& systemd, core::Clock& clock, RestartLedger* ledger)
    : systemd_(systemd), clock_(clock), ledger_(ledger) {}

Executor::~Executor() { *alive_ = false; }

void Executor::apply(Plan plan, Done done, std::function<void()> jobsQueued) {
  assert(!running_);
  running_ = std::make_unique<Run>();
  Run& run = *running_;
  run.plan = std::move(plan);
  run.done = std::move(done);
  run.started = clock_.now();
  run.stepSucceeded.assign(run.plan.steps.size(), false);

  auto& changes = run.plan.changes;
  if (ledger_) {
    std::set<std::string> restarts = run.plan.heldRestarts;
    for (const Job& job : run.plan.jobs) {
      if (job.kind == systemd::JobKind::kRestart) restarts.insert(job.unit);
    }
    // Without the record, a kill after the first write could lose a restart
    // for good: better to change nothing.
    if (core::Status s = restarts.empty() ? core::Status::ok() : ledger_->record(restarts); !s) {
      for (Change& change : changes) {
        if (change.outcome != Change::Outcome::kPlanned) continue;
        change.outcome = Change::Outcome::kSkipped;
        change.error = "skipped: " + s.message();
      }
      run.keepLedger = true;  // what an earlier run owed is still owed
      return finish();
    }
  }

  run.jobsQueuedCallback = std::move(jobsQueued);
  runSteps();
}

// A prerequisite that failed or was skipped, described for the report.
std::string Executor::blockedBy(const std::vector<size_t>& after) const {
  const Run& run = *running_;
  for (size_t step : after) {
    if (!run.stepSucceeded[step]) {
      return "skipped: " + run.plan.changes[run.plan.steps[step].change].resource +
             " was not changed";
    }
  }
  return "";
}

void Executor::settleStep(size_t index, const core::Status& status) {
  Run& run = *running_;
  const Step& step = run.plan.steps[index];
  run.stepSucceeded[index] = status.isOk();
  auto settle = [&](size_t change) {
    run.plan.changes[change].outcome =
        status.isOk() ? Change::Outcome::kApplied : Change::Outcome::kFailed;
    run.plan.changes[change].error = status.message();
  };
  settle(step.change);
  for (size_t change : step.alsoChanges) settle(change);
}

// Runs steps from run.nextStep on until one has to wait, or all have run.
void Executor::runSteps() {
  Run& run = *running_;
  auto& changes = run.plan.changes;
  while (run.nextStep < run.plan.steps.size()) {
    const size_t index = run.nextStep++;
    Step& step = run.plan.steps[index];
    if (std::string blocked = blockedBy(step.after); !blocked.empty()) {
      for (size_t change : step.alsoChanges) changes[change].error = blocked;
      changes[step.change].error = blocked;
      changes[step.change].outcome = Change::Outcome::kSkipped;
      for (size_t change : step.alsoChanges) changes[change].outcome = Change::Outcome::kSkipped;
      continue;
    }
    if (step.start) {
      step.start([this, index, alive = alive_](core::Status status) {
        if (!*alive || !running_) return;
        settleStep(index, status);
        runSteps();
      });
      return;
    }
    settleStep(index, step.run());
  }
  queueJobs();
}

void Executor::queueJobs() {
  Run& run = *running_;
  auto& changes = run.plan.changes;
  std::function<void()> jobsQueued = std::move(run.jobsQueuedCallback);
  struct Queued {
    size_t job;
    systemd::JobKind kind;
    std::string unit;
  };
  std::vector<Queued> queue;
  for (size_t i = 0; i < run.plan.jobs.size(); ++i) {
    Job& job = run.plan.jobs[i];
    if (std::string blocked = blockedBy(job.after); !blocked.empty()) {
      changes[job.change].outcome = Change::Outcome::kSkipped;
      changes[job.change].error = blocked;
      continue;
    }
    queue.push_back({i, job.kind, job.unit});
  }
  run.jobsPending = queue.size();
  run.jobsQueued = queue.size();
  if (queue.empty()) {
    if (jobsQueued) jobsQueued();
    return finish();
  }
  // SystemdManager never calls back before runJob returns, so the run is
  // still in place until jobsQueued() below.
  for (const Queued& queued : queue) {
    systemd_.runJob(queued.kind, queued.unit,
                    [this, job = queued.job, alive = alive_](core::Status status) {
                      if (*alive) finishJob(job, std::move(status));
                    });
  }
  if (jobsQueued) jobsQueued();
}

void Executor::finishJob(size_t job, core::Status status) {
  if (!running_) return;
  Change& change = running_->plan.changes[running_->plan.jobs[job].change];
  change.outcome = status.isOk() ? Change::Outcome::kApplied : Change::Outcome::kFailed;
  change.error = status.message();
  if (--running_->jobsPending == 0) finish();
}

void Executor::finish() {
  std::unique_ptr<Run> run = std::move(running_);
  core::Status settled;
  if (ledger_ && !run->keepLedger) {
    std::set<std::string> stillOwed = run->plan.heldRestarts;
    for (const Job& job : run->plan.jobs) {
      if (job.kind == systemd::JobKind::kRestart &&
          run->plan.changes[job.change].outcome != Change::Outcome::kApplied) {
        stillOwed.insert(job.unit);
      }
    }
    settled = ledger_->settle(stillOwed);
  }
  Report report;
  report.changes = std::move(run->plan.changes);
  report.jobsQueued = run->jobsQueued;
  report.duration = clock_.now() - run->started;
  if (!settled) {
    report.changes.push_back(
        Change{"restart ledger", "settle", "", Change::Outcome::kFailed, settled.message()});
  }
  run->done(std::move(report));
}

}  // namespace nodewarden::converge
