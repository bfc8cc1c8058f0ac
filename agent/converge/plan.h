#pragma once

#include <chrono>
#include <functional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "agent/core/status.h"
#include "agent/systemd/systemd_manager.h"

namespace nodewarden::converge {

// One difference between the node and its desired state, and what was done
// about it.
struct Change {
  // kNotApplicable: the node cannot have this (a container that may not load
  // a kernel module); reported, and neither a change nor a failure.
  enum class Outcome { kPlanned, kApplied, kFailed, kSkipped, kNotApplicable };

  std::string resource;  // "file /etc/containerd/config.toml", "unit kubelet.service"
  std::string action;    // "create", "update", "delete", "enable", "start", "restart", ...
  std::string detail;    // what differs: "content, mode 0600 -> 0644"
  Outcome outcome = Outcome::kPlanned;
  std::string error;  // why it failed or was skipped
};

// How the resource of a package's change begins: "package containerd".
inline constexpr std::string_view kPackageResource = "package ";

// A step changes one thing on the node. Steps run one at a time in plan
// order; a step whose prerequisite failed is skipped.
struct Step {
  using Done = std::function<void(core::Status)>;

  size_t change;              // index into Plan::changes
  std::vector<size_t> after;  // indices of steps that must have succeeded
  // Runs the step synchronously: writing a file, enabling a unit.
  std::function<core::Status()> run;
  // Set instead of `run` for a step that waits on something (a package
  // transaction, a download): starts it; `done` runs once, later, on the loop
  // thread.
  std::function<void(Done done)> start;
  // Further changes this one step makes, sharing its outcome: the packages
  // of one transaction.
  std::vector<size_t> alsoChanges;
};

// A systemd job, queued once every file step has run. All jobs of a plan are
// queued together and systemd orders them by the units' dependencies.
struct Job {
  size_t change;
  std::vector<size_t> after;  // steps that must have succeeded
  systemd::JobKind kind;
  std::string unit;
};

// What converging would change, in the order it would change it: directories,
// files (present, then absent), unit files and drop-ins, enablement, one
// daemon-reload when a unit file or enablement changed, absent directories;
// then the jobs. A plan with no changes is a no-op: applying it writes
// nothing and starts no job.
struct Plan {
  std::vector<Change> changes;
  std::vector<Step> steps;
  std::vector<Job> jobs;
  // Restarts the plan holds back (a paused unit's): they stay owed in the
  // restart ledger after the run, for a later one to do.
  std::set<std::string> heldRestarts;

  // No change to make; changes the node cannot have don't count.
  bool empty() const;
  // Adds a change and returns its index.
  size_t add(std::string resource, std::string action, std::string detail);
};

// The result of applying a plan.
struct Report {
  std::vector<Change> changes;
  bool dryRun = false;
  size_t jobsQueued = 0;
  std::chrono::nanoseconds duration{0};

  size_t changed() const;
  size_t failed() const;
  // Puppet-style: 0 nothing changed, 2 changed, 4 failures, 6 both.
  int exitCode() const;
};

}  // namespace nodewarden::converge
