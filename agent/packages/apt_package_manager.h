#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "agent/core/clock.h"
#include "agent/packages/archive_observation.h"
#include "agent/packages/package_manager.h"

namespace nodewarden::core {
class ProcessRunner;
}

namespace nodewarden::packages {

// Debian and Ubuntu nodes: the installed packages and holds from dpkg's
// status file (no process), the archive from one `apt-cache policy`, changes
// through one `apt-get install` and `apt-mark`. Must outlive its operations.
class AptPackageManager final : public PackageManager {
 public:
  struct Options {
    // Prefixes the files read (/var/lib/dpkg/status, its locks): "" on a
    // node, a directory in tests. The commands always act on the node.
    std::string root;
    // How long apt waits for another process's dpkg lock (DPkg::Lock::Timeout).
    core::Duration lockWait = std::chrono::minutes(5);
    core::Duration queryTimeout = std::chrono::minutes(2);     // apt-cache
    core::Duration updateTimeout = std::chrono::minutes(10);   // apt-get update, plus lockWait
    core::Duration installTimeout = std::chrono::minutes(30);  // apt-get install, plus lockWait
  };

  using LockHolder = packages::LockHolder;

  AptPackageManager(core::ProcessRunner& runner, core::Clock& clock, Options options);

  std::string_view name() const override { return "apt"; }
  void observe(const std::vector<PackageWant>& wants, ObserveCallback done) override;
  // apt installs exactly what it is told: the whole version must match.
  bool versionMatches(std::string_view version, std::string_view installed) const override {
    return version == installed;
  }
  void apply(const PackageTransaction& transaction, Done done) override;
  std::optional<std::string> lockHolder() const override;

  // The process holding dpkg's frontend lock (or dpkg's own), if any.
  std::optional<LockHolder> dpkgLockHolder() const;

 private:
  struct Command;

  core::Result<PackageSnapshot> readInstalled(const std::vector<PackageWant>& wants) const;
  void queryArchive(std::vector<PackageWant> wants, std::vector<std::string> names,
                    PackageSnapshot snapshot, bool refreshed, ObserveCallback done);
  void refreshThenQuery(std::vector<PackageWant> wants, std::vector<std::string> names,
                        PackageSnapshot snapshot, std::vector<std::string> missing,
                        ObserveCallback done);
  core::ProcessRequest aptRequest(std::vector<std::string> argv, core::Duration timeout) const;
  std::string failure(const Command& command,
                      const core::Result<core::ProcessResult>& result) const;

  core::ProcessRunner& runner_;
  Options options_;
  DeferredCalls later_;
};

}  // namespace nodewarden::packages
