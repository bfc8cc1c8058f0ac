#include "agent/converge/planner.h"

#include "agent/systemd/systemd_manager.h"

namespace nodewarden::converge {

size_t Plan::add(std::string resource, std::string action, std::string detail) {
  changes.push_back(Change{std::move(resource), std::move(action), std::move(detail)});
  return changes.size() - 1;
}

Planner::Planner(systemd::SystemdManager& systemd, std::string root)
    : systemd_(systemd), root_(std::move(root)) {}

core::Result<Plan> Planner::plan(const v1::NodeState& state,
                                 const std::set<std::string>& owedRestarts) {
  Plan plan;
  PlanContext context{
      .root = root_, .systemd = systemd_, .plan = plan, .owedRestarts = owedRestarts};
  planDirectories(state, context);
  planFiles(state, context);
  planUnits(state, context);
  planDirectoryRemovals(state, context);
  if (!context.errors.empty()) {
    std::string message = context.errors.front();
    for (size_t i = 1; i < context.errors.size(); ++i) message += "; " + context.errors[i];
    return core::Status::failedPrecondition(message);
  }
  return plan;
}

}  // namespace nodewarden::converge
