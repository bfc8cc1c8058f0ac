#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "agent/core/clock.h"
#include "agent/packages/package_manager.h"

namespace nodewarden::core {
class ProcessRunner;
}

namespace nodewarden::packages {

struct PackageManagerOptions {
  std::string root;  // "" on a node; see AptPackageManager::Options and DnfPackageManager::Options
  core::Duration lockWait = std::chrono::minutes(5);  // for another process's package lock
};

// The node's package manager: apt when dpkg's status file and apt-get are
// there, dnf when rpm and dnf are, nullptr when neither. Both operate
// through `runner` and deliver on the loop of `clock`; both must outlive
// what they start.
std::unique_ptr<PackageManager> detectPackageManager(core::ProcessRunner& runner,
                                                     core::Clock& clock,
                                                     const PackageManagerOptions& options);

}  // namespace nodewarden::packages
