#include <algorithm>
#include <string_view>

#include "agent/converge/planner.h"

namespace nodewarden::converge {

namespace {

using packages::PackageInfo;
using packages::PackageWant;

// "it offers 1.6.20~ds1-1+b1, 1.6.20~ds1-1" or "the archive has no package X".
std::string offered(const std::string& name, const PackageInfo& info) {
  if (info.available.empty()) return "the archive has no package " + name;
  constexpr size_t kShown = 10;
  std::string list;
  for (size_t i = 0; i < info.available.size() && i < kShown; ++i) {
    list += (i ? ", " : "") + info.available[i];
  }
  if (info.available.size() > kShown) {
    list += " and " + std::to_string(info.available.size() - kShown) + " more";
  }
  return "the archive offers " + list;
}

}  // namespace

PackageWant packageWant(const v1::Package& package) {
  PackageWant want{.name = package.name(), .version = package.version()};
  switch (package.ensure()) {
    case v1::PACKAGE_ENSURE_LATEST:
      want.ensure = PackageWant::Ensure::kLatest;
      break;
    case v1::PACKAGE_ENSURE_ABSENT:
      want.ensure = PackageWant::Ensure::kAbsent;
      break;
    default:
      want.ensure = PackageWant::Ensure::kPresent;
  }
  return want;
}

void planPackages(const v1::NodeState& state, PlanContext& context) {
  if (state.packages().empty()) return;
  if (!context.providers.packages || !context.observation.packages) {
    context.errors.push_back("packages: the package database was not read");
    return;
  }
  const packages::PackageManager& manager = *context.providers.packages;
  const packages::PackageSnapshot& snapshot = *context.observation.packages;
  static const PackageInfo kUnknown;

  packages::PackageTransaction transaction;
  std::vector<size_t> changes;
  std::vector<std::string> changedPackages;  // installed, upgraded or removed
  for (const auto& package : state.packages()) {
    const std::string& name = package.name();
    const std::string resource = std::string(kPackageResource) + name;
    auto found = snapshot.packages.find(name);
    const PackageInfo& info = found == snapshot.packages.end() ? kUnknown : found->second;
    const PackageWant want = packageWant(package);

    auto install = [&](const std::string& version, const std::string& detail) {
      transaction.install.push_back({name, version});
      changes.push_back(context.plan.add(resource, info.installed ? "upgrade" : "install", detail));
      changedPackages.push_back(name);
    };
    switch (want.ensure) {
      case PackageWant::Ensure::kAbsent:
        if (info.installed) {
          transaction.remove.push_back(name);
          changes.push_back(context.plan.add(resource, "remove", "was " + *info.installed));
          changedPackages.push_back(name);
        }
        break;
      case PackageWant::Ensure::kLatest:
        if (!info.candidate) {
          context.errors.push_back(resource +
                                   ": cannot install the latest version: " + offered(name, info));
        } else if (!info.installed) {
          install("", *info.candidate);
        } else if (*info.installed != *info.candidate) {
          install("", *info.installed + " -> " + *info.candidate);
        }
        break;
      case PackageWant::Ensure::kPresent:
        if (!want.version.empty()) {
          if (info.installed && manager.versionMatches(want.version, *info.installed)) break;
          auto match = std::find_if(info.available.begin(), info.available.end(),
                                    [&](const std::string& version) {
                                      return manager.versionMatches(want.version, version);
                                    });
          if (match == info.available.end()) {
            context.errors.push_back(resource + ": version " + want.version +
                                     " is not in the archive; " + offered(name, info));
          } else {
            install(*match, info.installed ? *info.installed + " -> " + *match : *match);
          }
        } else if (!info.installed) {
          if (!info.candidate) {
            context.errors.push_back(resource + ": cannot install: " + offered(name, info));
          } else {
            install("", *info.candidate);
          }
        }
        break;
    }
    if (package.has_hold() && want.ensure != PackageWant::Ensure::kAbsent &&
        package.hold() != info.held) {
      (package.hold() ? transaction.hold : transaction.unhold).push_back(name);
      changes.push_back(context.plan.add(resource, package.hold() ? "hold" : "unhold",
                                         package.hold() ? "kept from upgrades" : "was held"));
    } else if (info.held && !(package.has_hold() && !package.hold()) && !changedPackages.empty() &&
               changedPackages.back() == name) {
      // Installing a held package at a new version releases it (apt marks
      // it for install again): held again once it is in, without a change
      // of its own to report, whether the state or an operator held it.
      transaction.hold.push_back(name);
    }
  }
  if (transaction.empty()) return;

  // Every install and removal in one transaction: apt or dnf resolves them
  // together, and a failure leaves the database as it was.
  const size_t step = context.plan.steps.size();
  context.plan.steps.push_back(Step{
      .change = changes.front(),
      .after = {},
      .run = {},
      .start = [&manager = *context.providers.packages,
                transaction](Step::Done done) { manager.apply(transaction, std::move(done)); },
      .alsoChanges = std::vector<size_t>(changes.begin() + 1, changes.end()),
  });
  context.packageStep = step;
  for (const std::string& name : changedPackages) context.packageSteps[name] = step;
}

}  // namespace nodewarden::converge
