#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "agent/core/status.h"

namespace nodewarden::packages {

// What the state wants of one package.
struct PackageWant {
  enum class Ensure { kPresent, kLatest, kAbsent };

  std::string name;
  Ensure ensure = Ensure::kPresent;
  std::string version;  // an exact version; only with kPresent; empty: any
};

// One package on this node and, when planning needs it, in the archive.
struct PackageInfo {
  std::optional<std::string> installed;  // the installed version; unset: not installed
  bool held = false;                     // apt-mark hold / dnf versionlock
  // Filled only for packages the archive was asked about (see observe()).
  bool queried = false;
  std::optional<std::string> candidate;  // what an install without a version gets
  std::vector<std::string> available;    // every version the archive offers, newest first
};

// The package database as read once for one plan, by package name. Holds an
// entry for every wanted package, installed or not.
struct PackageSnapshot {
  std::map<std::string, PackageInfo, std::less<>> packages;
  // Facts for the report, e.g. "package lists refreshed: containerd was not in them".
  std::vector<std::string> notes;
};

// One transaction: every install and removal of a run at once, then holds.
struct PackageTransaction {
  struct Install {
    std::string name;
    std::string version;  // empty: the candidate
  };
  std::vector<Install> install;
  std::vector<std::string> remove;
  std::vector<std::string> hold;
  std::vector<std::string> unhold;

  bool empty() const { return install.empty() && remove.empty() && hold.empty() && unhold.empty(); }
};

// The node's package manager: apt/dpkg or dnf/rpm. Both methods finish on
// the loop thread, never inside the call, and each may run child processes
// (never one per package).
class PackageManager {
 public:
  using ObserveCallback = std::function<void(core::Result<PackageSnapshot>)>;
  using Done = std::function<void(core::Status)>;

  virtual ~PackageManager() = default;

  // "apt" or "dnf".
  virtual std::string_view name() const = 0;

  // Reads the installed packages and holds once. Asks the archive, in one
  // query, about the wanted packages a transaction would install: not
  // installed, installed at another version than pinned, or `latest`. When
  // the archive does not know a package or a pinned version, the package
  // lists are refreshed once and asked again. A package the archive still
  // lacks is not an error here: planning reports it with what is offered.
  virtual void observe(const std::vector<PackageWant>& wants, ObserveCallback done) = 0;

  // Whether `installed` satisfies the pinned `version` (dnf accepts
  // "1.6.20" for "1.6.20-3.el9"; apt wants the whole version).
  virtual bool versionMatches(std::string_view version, std::string_view installed) const = 0;

  // Installs and removes in one transaction, non-interactively and keeping
  // changed configuration files, then sets holds. When another process holds
  // the package database lock, waits for it up to a bound and says so in
  // the error if it ran out.
  virtual void apply(const PackageTransaction& transaction, Done done) = 0;

  // Another process holding the package database lock now, described
  // ("64 (dpkg)"), or nothing when it is free or this manager cannot tell.
  virtual std::optional<std::string> lockHolder() const { return std::nullopt; }
};

}  // namespace nodewarden::packages
