#pragma once

#include <sys/types.h>

#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "agent/converge/node_files.h"
#include "agent/converge/plan.h"
#include "agent/core/status.h"
#include "agent/packages/package_manager.h"
#include "nodewarden/v1/state.pb.h"

namespace nodewarden::core {
class ProcessRunner;
}
namespace nodewarden::systemd {
class SystemdManager;
}

namespace nodewarden::converge {

class ArtifactStore;

// What the planner reaches beyond files and systemd. A state that needs one
// that is missing cannot be planned ("packages: no package manager on this node").
struct Providers {
  packages::PackageManager* packages = nullptr;
  ArtifactStore* artifacts = nullptr;
  core::ProcessRunner* processes = nullptr;  // modprobe
};

// What planning needs that takes a child process to learn, gathered before
// the plan (asynchronously) by Planner::observe().
struct Observation {
  std::optional<packages::PackageSnapshot> packages;  // set when the state has packages
};

// Observes the node, compares it with a desired state and plans the changes.
// Planning only reads: it never writes a file or queues a job.
class Planner final {
 public:
  // `root` prefixes every managed path ("" for the real node; a directory in
  // tests and benchmarks). Unit files live under <root>/etc/systemd/system.
  Planner(systemd::SystemdManager& systemd, std::string root, Providers providers = {});

  // Gathers what plan() needs from child processes: the package database and
  // archive. `done` runs on the loop thread; at once, inside the call, when
  // the state asks for nothing that needs a process.
  void observe(const v1::NodeState& state, std::function<void(core::Result<Observation>)> done);

  // Fails, planning nothing, when the state cannot be applied as a whole (an
  // owner or group that does not exist on the node, a package version the
  // archive does not have): nothing half-done. `owedRestarts` are units an
  // interrupted run meant to restart (see RestartLedger); those still running
  // are restarted. `observation` comes from observe() on the same state.
  core::Result<Plan> plan(const v1::NodeState& state,
                          const std::set<std::string>& owedRestarts = {},
                          const Observation& observation = {});

 private:
  systemd::SystemdManager& systemd_;
  const std::string root_;
  Providers providers_;
};

// What the resource kinds share while planning one state.
struct PlanContext {
  const std::string& root;
  systemd::SystemdManager& systemd;
  Plan& plan;
  const std::set<std::string>& owedRestarts;
  const Providers& providers;
  const Observation& observation;
  // The package transaction, when there is one: units whose file is not
  // loaded yet (it may come from a package) wait for it.
  std::optional<size_t> packageStep;
  // Managed packages that the transaction changes (installs, upgrades,
  // removes) to its step: units restart on them.
  std::map<std::string, size_t> packageSteps;
  // Steps loading kernel modules: kernel parameters they bring wait for them.
  std::vector<size_t> moduleSteps;
  // Declared paths to the steps that create them (directories) or change
  // their content (files, artifacts): later steps wait for them, units
  // restart on them.
  std::map<std::string, size_t> directorySteps;
  std::map<std::string, size_t> contentSteps;
  // Steps that write a unit file or drop-in; a daemon-reload follows them.
  std::vector<size_t> unitFileSteps;
  std::vector<std::string> errors;
  Accounts accounts;
  // Directories already searched for leftover temporary files.
  std::set<std::string> scannedDirectories;

  std::string hostPath(const std::string& path) const { return root + path; }
};

// One function per resource kind; each adds its changes and steps to the
// plan, in this order.
// The package manager's view of one declared package.
packages::PackageWant packageWant(const v1::Package& package);
// One transaction for every package that differs, then holds.
void planPackages(const v1::NodeState& state, PlanContext& context);
void planArtifacts(const v1::NodeState& state, PlanContext& context);
// Kernel modules, then kernel parameters; each persisted in a file under
// /etc/modules-load.d or /etc/sysctl.d and applied now.
void planKernel(const v1::NodeState& state, PlanContext& context);
void planDirectories(const v1::NodeState& state, PlanContext& context);
// Present files, then absent ones.
void planFiles(const v1::NodeState& state, PlanContext& context);
void planUnits(const v1::NodeState& state, PlanContext& context);
// Absent directories go last, children first, once the files in them are gone.
void planDirectoryRemovals(const v1::NodeState& state, PlanContext& context);

// Plans one managed regular file (a declared file, a unit file, a drop-in):
// the step that makes `path` hold `content` (when set) with the given attributes, after
// the steps in `after`. Sets *step to the step's index when it writes the
// file's content; a step that only fixes attributes changes nothing a reader sees.
void planFile(const std::string& resource, const std::string& path,
              std::optional<std::string> content, std::optional<mode_t> mode,
              const Ownership& ownership, std::vector<size_t> after, PlanContext& context,
              std::optional<size_t>* step);
// Plans the deletion of the regular file or link at `path`, a content change.
void planAbsentFile(const std::string& resource, const std::string& path, PlanContext& context);
// Deletes the temporary files a killed writer left in `directory` (once per
// directory and plan): they hold a copy of some content and nobody else will.
void planLeftovers(const std::string& directory, PlanContext& context);

}  // namespace nodewarden::converge
