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
#include "nodewarden/v1/state.pb.h"

namespace nodewarden::systemd {
class SystemdManager;
}

namespace nodewarden::converge {

// Observes the node, compares it with a desired state and plans the changes.
// Planning only reads: it never writes a file or queues a job.
class Planner final {
 public:
  // `root` prefixes every managed path ("" for the real node; a directory in
  // tests and benchmarks). Unit files live under <root>/etc/systemd/system.
  Planner(systemd::SystemdManager& systemd, std::string root);

  // Fails, planning nothing, when the state cannot be applied as a whole (an
  // owner or group that does not exist on the node): nothing half-done.
  // `owedRestarts` are units an interrupted run meant to restart (see
  // RestartLedger); those still running are restarted.
  core::Result<Plan> plan(const v1::NodeState& state,
                          const std::set<std::string>& owedRestarts = {});

 private:
  systemd::SystemdManager& systemd_;
  const std::string root_;
};

// What the resource kinds share while planning one state.
struct PlanContext {
  const std::string& root;
  systemd::SystemdManager& systemd;
  Plan& plan;
  const std::set<std::string>& owedRestarts;
  // Declared paths to the steps that create them (directories) or change
  // their content (files): later steps wait for them, units restart on them.
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

// One function per resource kind; each adds its changes and steps to the plan.
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

}  // namespace nodewarden::converge
