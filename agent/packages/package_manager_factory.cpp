#include "agent/packages/package_manager_factory.h"

#include <unistd.h>

#include <string_view>

#include "agent/core/process_runner.h"
#include "agent/packages/apt_package_manager.h"
#include "agent/packages/dnf_package_manager.h"

namespace nodewarden::packages {

namespace {

// Whether `program` is an executable in the directories child processes search.
bool haveProgram(const std::string& root, std::string_view program) {
  std::string_view path = core::kProcessPath;
  while (!path.empty()) {
    const size_t colon = path.find(':');
    const std::string_view directory = path.substr(0, colon);
    const std::string candidate = root + std::string(directory) + "/" + std::string(program);
    if (::access(candidate.c_str(), X_OK) == 0) return true;
    if (colon == std::string_view::npos) break;
    path.remove_prefix(colon + 1);
  }
  return false;
}

}  // namespace

std::unique_ptr<PackageManager> detectPackageManager(core::ProcessRunner& runner,
                                                     core::Clock& clock,
                                                     const PackageManagerOptions& options) {
  const std::string& root = options.root;
  if (::access((root + "/var/lib/dpkg/status").c_str(), R_OK) == 0 &&
      haveProgram(root, "apt-get")) {
    return std::make_unique<AptPackageManager>(
        runner, clock, AptPackageManager::Options{.root = root, .lockWait = options.lockWait});
  }
  // dnf 4 only: dnf5 (Fedora 41 on) has no `dnf shell` and keeps its locks
  // elsewhere. dnf 4 installs itself as dnf-3, with dnf linking to it.
  if (haveProgram(root, "rpm") && haveProgram(root, "dnf") && haveProgram(root, "dnf-3")) {
    return std::make_unique<DnfPackageManager>(
        runner, clock, DnfPackageManager::Options{.root = root, .lockWait = options.lockWait});
  }
  return nullptr;
}

}  // namespace nodewarden::packages
