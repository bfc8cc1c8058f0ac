#include "agent/converge/planner.h"

#include "agent/systemd/systemd_manager.h"

namespace nodewarden::converge {

bool Plan::empty() const {
  for (const Change& change : changes) {
    if (change.outcome != Change::Outcome::kNotApplicable) return false;
  }
  return true;
}

size_t Plan::add(std::string resource, std::string action, std::string detail) {
  changes.push_back(Change{std::move(resource), std::move(action), std::move(detail)});
  return changes.size() - 1;
}

Planner::Planner(systemd::SystemdManager& systemd, std::string root, Providers providers)
    : systemd_(systemd), root_(std::move(root)), providers_(providers) {}

void Planner::observe(const v1::NodeState& state,
                      std::function<void(core::Result<Observation>)> done) {
  if (state.packages().empty()) return done(Observation{});
  if (!providers_.packages) {
    return done(core::Status::failedPrecondition(
        "packages: this node has no supported package manager (apt or dnf)"));
  }
  std::vector<packages::PackageWant> wants;
  for (const auto& package : state.packages()) wants.push_back(packageWant(package));
  providers_.packages->observe(
      wants, [done = std::move(done)](core::Result<packages::PackageSnapshot> snapshot) {
        if (!snapshot) {
          return done(core::Status::error(snapshot.status().code(),
                                          "packages: " + snapshot.status().message()));
        }
        done(Observation{.packages = std::move(*snapshot)});
      });
}

core::Result<Plan> Planner::plan(const v1::NodeState& state,
                                 const std::set<std::string>& owedRestarts,
                                 const Observation& observation) {
  Plan plan;
  PlanContext context{.root = root_,
                      .systemd = systemd_,
                      .plan = plan,
                      .owedRestarts = owedRestarts,
                      .providers = providers_,
                      .observation = observation};
  planPackages(state, context);
  planArtifacts(state, context);
  planKernel(state, context);
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
