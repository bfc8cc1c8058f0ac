#include <optional>
#include <string_view>

#include "agent/converge/node_files.h"
#include "agent/converge/planner.h"
#include "agent/systemd/systemd_manager.h"

namespace nodewarden::converge {

namespace {

constexpr std::string_view kUnitDirectory = "/etc/systemd/system";

// Directories systemd loads unit files and drop-ins from: a managed file
// written there also calls for a daemon-reload.
bool isUnitPath(std::string_view path) {
  for (std::string_view directory : {"/etc/systemd/system/", "/run/systemd/system/",
                                     "/usr/lib/systemd/system/", "/lib/systemd/system/"}) {
    if (path.starts_with(directory)) return true;
  }
  return false;
}

bool isRunning(const systemd::UnitStatus& status) {
  return status.activeState == "active" || status.activeState == "reloading" ||
         status.activeState == "activating";
}

// Unit file states that `enabled: true` cannot change and accepts: units with
// no [Install] section, or made by generators or at run time.
bool satisfiesEnabled(const std::string& unitFileState) {
  for (std::string_view state :
       {"enabled", "enabled-runtime", "static", "indirect", "generated", "transient", "alias"}) {
    if (unitFileState == state) return true;
  }
  return false;
}

std::vector<size_t> concat(std::vector<size_t> a, const std::vector<size_t>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

struct UnitPlan {
  const v1::Unit* unit;
  systemd::UnitStatus status;
  std::vector<size_t> definitionSteps;  // its unit file and drop-ins
  // The package transaction, for a unit without a unit file yet: a package
  // may bring it.
  std::vector<size_t> packageSteps;
};

// The step that changes what restartOn names: a managed file's or artifact's
// path, or a managed package.
std::optional<size_t> triggerStep(const std::string& entry, const PlanContext& context) {
  const auto& steps = entry.starts_with('/') ? context.contentSteps : context.packageSteps;
  auto it = steps.find(entry);
  if (it == steps.end()) return std::nullopt;
  return it->second;
}

}  // namespace

void planUnits(const v1::NodeState& state, PlanContext& context) {
  std::vector<UnitPlan> units;
  for (const auto& unit : state.units()) {
    auto status = context.systemd.unitStatus(unit.name());
    if (!status) {
      context.errors.push_back("unit " + unit.name() + ": " + status.status().message());
      // A systemd that does not answer one query will not answer the next:
      // don't hold the loop for a timeout per unit.
      if (status.status().code() == core::Status::Code::kTimeout) return;
      continue;
    }
    UnitPlan unitPlan{&unit, std::move(*status), {}, {}};
    if (unitPlan.status.loadState == "not-found" && context.packageStep && !unit.has_content()) {
      unitPlan.packageSteps.push_back(*context.packageStep);
    }
    const std::string unitPath = std::string(kUnitDirectory) + "/" + unit.name();
    std::optional<size_t> step;
    if (unit.has_content()) {
      planFile("unit file " + unitPath, unitPath, unit.content(), 0644, {}, {}, context, &step);
      if (step) unitPlan.definitionSteps.push_back(*step);
    }
    for (const auto& dropIn : unit.drop_ins()) {
      const std::string path = unitPath + ".d/" + dropIn.name();
      step.reset();
      planFile("drop-in " + path, path, dropIn.content(), 0644, {}, {}, context, &step);
      if (step) unitPlan.definitionSteps.push_back(*step);
    }
    units.push_back(std::move(unitPlan));
  }

  // Enablement before the reload: it changes links on disk, and systemd
  // reports the new unit file state only after a reload (`systemctl enable`
  // reloads too). Otherwise every later plan would enable the unit again.
  std::string enablementReason;
  for (const auto& unitPlan : units) {
    const v1::Unit& unit = *unitPlan.unit;
    const std::string resource = "unit " + unit.name();

    if (unit.has_enabled()) {
      const std::string& fileState = unitPlan.status.unitFileState;
      const bool differs = unit.enabled() ? !satisfiesEnabled(fileState) : fileState == "enabled";
      if (differs) {
        const std::string was = fileState.empty() ? "no unit file" : fileState;
        const size_t change =
            context.plan.add(resource, unit.enabled() ? "enable" : "disable", "was " + was);
        const std::vector<std::string> names{unit.name()};
        context.plan.steps.push_back(
            Step{change, concat(unitPlan.definitionSteps, unitPlan.packageSteps),
                 [&systemd = context.systemd, names, on = unit.enabled()] {
                   return on ? systemd.enableUnitFiles(names) : systemd.disableUnitFiles(names);
                 }});
        if (enablementReason.empty()) {
          enablementReason = unit.name() + (unit.enabled() ? " enabled" : " disabled");
        }
      }
    }
  }

  // One daemon-reload, only when a unit file changed: ours, a managed file in
  // a unit directory, or one edited behind systemd's back; or when a unit was
  // enabled or disabled.
  std::string reloadReason;
  for (const auto& unitPlan : units) {
    if (!unitPlan.definitionSteps.empty()) {
      reloadReason = unitPlan.unit->name() + " changed";
      break;
    }
  }
  for (const auto& [path, step] : context.contentSteps) {
    if (reloadReason.empty() && isUnitPath(path)) reloadReason = path + " changed";
  }
  for (const auto& unitPlan : units) {
    if (reloadReason.empty() && unitPlan.status.needDaemonReload) {
      reloadReason = unitPlan.unit->name() + " changed on disk";
    }
  }
  if (reloadReason.empty()) reloadReason = enablementReason;
  std::vector<size_t> reload;
  if (!reloadReason.empty()) {
    const size_t change = context.plan.add("systemd", "daemon-reload", reloadReason);
    reload.push_back(context.plan.steps.size());
    context.plan.steps.push_back(
        Step{change, {}, [&systemd = context.systemd] { return systemd.daemonReload(); }});
  }

  // Jobs last: they start units with their files, links and definitions in place.
  for (const auto& unitPlan : units) {
    const v1::Unit& unit = *unitPlan.unit;
    const std::string resource = "unit " + unit.name();
    const std::vector<size_t> ready =
        concat(concat(unitPlan.definitionSteps, reload), unitPlan.packageSteps);
    const bool running = isRunning(unitPlan.status);
    if (unit.state() == v1::UNIT_STATE_RUNNING && !running) {
      // Not before what it lists has changed: it would start on the old one.
      std::vector<size_t> after = ready;
      bool packageChanges = !unitPlan.packageSteps.empty();
      for (const auto& entry : unit.restart_on()) {
        if (auto step = triggerStep(entry, context)) {
          after.push_back(*step);
          packageChanges |= !entry.starts_with('/');
        }
      }
      // Installing or upgrading a package may start the unit itself
      // (containerd's does), before the files it lists are written:
      // restarting starts it if it is not running and makes it read them if
      // it is.
      const auto kind = packageChanges ? systemd::JobKind::kRestart : systemd::JobKind::kStart;
      const size_t change =
          context.plan.add(resource, kind == systemd::JobKind::kRestart ? "restart" : "start",
                           "was " + unitPlan.status.activeState);
      context.plan.jobs.push_back(Job{change, after, kind, unit.name()});
      continue;
    }
    if (unit.state() == v1::UNIT_STATE_STOPPED && running) {
      const size_t change =
          context.plan.add(resource, "stop", "was " + unitPlan.status.activeState);
      context.plan.jobs.push_back(Job{change, ready, systemd::JobKind::kStop, unit.name()});
      continue;
    }
    if (!running) continue;
    // A running unit restarts when its definition, or a file, artifact or
    // package it lists changed.
    std::vector<size_t> triggers = unitPlan.definitionSteps;
    std::string why = triggers.empty() ? "" : "unit file changed";
    for (const auto& entry : unit.restart_on()) {
      auto step = triggerStep(entry, context);
      if (!step) continue;
      triggers.push_back(*step);
      why += (why.empty() ? "" : ", ") + entry + " changed";
    }
    const bool owed = context.owedRestarts.contains(unit.name());
    if (triggers.empty() && !owed) continue;
    if (owed && triggers.empty()) why = "owed by an interrupted run";
    const size_t change = context.plan.add(resource, "restart", why);
    context.plan.jobs.push_back(
        Job{change, concat(triggers, reload), systemd::JobKind::kRestart, unit.name()});
  }
}

}  // namespace nodewarden::converge
