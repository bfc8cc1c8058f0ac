#pragma once

#include <chrono>
#include <functional>
#include <set>
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

// Fedora, RHEL and their kin (dnf 4): the installed packages from one
// `rpm -qa`, holds from the versionlock plugin's list file (no process), the
// archive from one `dnf repoquery`, changes through one `dnf shell`
// transaction and `dnf versionlock`. Must outlive its operations.
class DnfPackageManager final : public PackageManager {
 public:
  struct Options {
    // A root to manage instead of the node's ("" on a node): rpm --root,
    // dnf --installroot, and the versionlock list is read under it.
    std::string root;
    // Given to every dnf command before its subcommand, e.g.
    // {"--config=/etc/x/dnf.conf", "--releasever=9"}.
    std::vector<std::string> dnfArguments;
    // Where the versionlock plugin keeps its list (its locklist setting),
    // under `root`.
    std::string versionlockList = "/etc/dnf/plugins/versionlock.list";
    core::Duration queryTimeout = std::chrono::minutes(2);  // rpm, repoquery, versionlock
    // dnf waits for another dnf's lock without a bound of its own; this is
    // added to the transaction's timeout and named in the error.
    core::Duration lockWait = std::chrono::minutes(5);
    core::Duration transactionTimeout = std::chrono::minutes(30);
  };

  DnfPackageManager(core::ProcessRunner& runner, core::Clock& clock, Options options);

  std::string_view name() const override { return "dnf"; }
  void observe(const std::vector<PackageWant>& wants, ObserveCallback done) override;
  // "1.6.20" matches any release of 1.6.20, "1.6.20-3.el9" that release;
  // an epoch is compared only when the pin has one, a missing one being 0.
  bool versionMatches(std::string_view version, std::string_view installed) const override;
  void apply(const PackageTransaction& transaction, Done done) override;
  // rpm's transaction lock: held through a transaction, scriptlets included.
  std::optional<std::string> lockHolder() const override;

 private:
  struct Command;

  std::vector<std::string> dnf(std::initializer_list<std::string> arguments) const;
  // Names the versionlock list holds; a missing list holds none.
  core::Result<std::set<std::string, std::less<>>> lockedNames() const;
  void queryArchive(std::vector<PackageWant> wants, std::vector<std::string> names,
                    PackageSnapshot snapshot, std::vector<std::string> refreshedFor,
                    ObserveCallback done);
  static core::Status verdict(const Command& command,
                              const core::Result<core::ProcessResult>& result);

  core::ProcessRunner& runner_;
  Options options_;
  DeferredCalls later_;
};

// Package names in the versionlock plugin's list: entries like
// "containerd-0:1.6.20-3.el9.*"; comments and "!" exclusions are skipped.
std::set<std::string, std::less<>> parseVersionlockList(std::string_view text);

}  // namespace nodewarden::packages
