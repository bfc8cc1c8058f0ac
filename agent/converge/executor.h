#pragma once

#include <functional>
#include <memory>

#include "agent/converge/plan.h"
#include "agent/converge/restart_ledger.h"
#include "agent/core/clock.h"

namespace nodewarden::converge {

// Applies a plan: its steps in order, one at a time (a step may wait, on the
// loop, for a child process or a download), then all its jobs at once, and reports
// what became of every change. A step or job whose prerequisite failed is
// skipped, not attempted; everything independent of a failure still runs.
class Executor final {
 public:
  using Done = std::function<void(Report report)>;

  // `ledger`, when given, keeps the plan's restarts on disk until they are
  // done, so that a run killed half-way is finished by the next one.
  Executor(systemd::SystemdManager& systemd, core::Clock& clock, RestartLedger* ledger = nullptr);
  ~Executor();

  // `done` runs on the loop thread once the last job has finished;
  // `jobsQueued`, when given, once every step has run and the jobs are queued.
  // Only one apply at a time.
  void apply(Plan plan, Done done, std::function<void()> jobsQueued = {});
  bool busy() const { return running_ != nullptr; }

 private:
  struct Run;

  std::string blockedBy(const std::vector<size_t>& after) const;
  void settleStep(size_t index, const core::Status& status);
  void runSteps();
  void queueJobs();
  void finishJob(size_t job, core::Status status);
  void finish();

  systemd::SystemdManager& systemd_;
  core::Clock& clock_;
  RestartLedger* ledger_;
  std::unique_ptr<Run> running_;
  // Jobs answered after the run was abandoned find it gone.
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

// A plan that was not applied, as a report.
Report dryRunReport(const Plan& plan);

}  // namespace nodewarden::converge
