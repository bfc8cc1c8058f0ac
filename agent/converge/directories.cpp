#include <algorithm>

#include "agent/converge/node_files.h"
#include "agent/converge/planner.h"

namespace nodewarden::converge {

namespace {

bool isAbsent(const v1::Directory& directory) { return directory.ensure() == v1::ENSURE_ABSENT; }

}  // namespace

void planDirectories(const v1::NodeState& state, PlanContext& context) {
  // Parents before children, so each mkdir finds its parent in place.
  std::vector<const v1::Directory*> ordered;
  for (const auto& directory : state.directories()) {
    if (!isAbsent(directory)) ordered.push_back(&directory);
  }
  std::sort(ordered.begin(), ordered.end(),
            [](const auto* a, const auto* b) { return a->path() < b->path(); });

  for (const v1::Directory* directory : ordered) {
    const std::string resource = "directory " + directory->path();
    const std::string path = context.hostPath(directory->path());
    auto ownership = context.accounts.resolve(directory->owner(), directory->group());
    if (!ownership) {
      context.errors.push_back(resource + ": " + ownership.status().message());
      continue;
    }
    auto observed = observePath(path);
    if (!observed) {
      context.errors.push_back(resource + ": " + observed.status().message());
      continue;
    }
    const std::optional<mode_t> mode =
        directory->has_mode() ? std::optional<mode_t>(directory->mode()) : std::nullopt;

    std::string action, detail;
    if (!observed->exists) {
      action = "create";
      detail = "mode " + formatMode(mode.value_or(0755));
    } else if (!observed->isDirectory) {
      // Known to fail: refuse the state whole rather than fail half-way.
      context.errors.push_back(resource + ": " + directory->path() +
                               " exists and is not a directory");
      continue;
    } else {
      detail = describeAttributeDrift(*observed, mode, *ownership);
      if (detail.empty()) continue;
      action = "update";
    }

    const size_t change = context.plan.add(resource, action, detail);
    const bool create = action == "create";
    context.directorySteps[directory->path()] = context.plan.steps.size();
    context.plan.steps.push_back(
        Step{change, {}, [path, create, mode, ownership = *ownership]() -> core::Status {
               if (create) {
                 if (core::Status s = makeDirectories(path, mode.value_or(0755)); !s) return s;
                 // mkdir's mode passes through the umask; set it exactly.
                 return setAttributes(path, mode.value_or(0755), ownership);
               }
               return setAttributes(path, mode, ownership);
             }});
  }
}

}  // namespace nodewarden::converge
