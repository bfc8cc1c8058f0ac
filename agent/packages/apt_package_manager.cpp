#include "agent/packages/apt_package_manager.h"

#include <algorithm>
#include <map>
#include <set>
#include <utility>

#include "agent/core/atomic_file.h"
#include "agent/core/log.h"
#include "agent/core/process_runner.h"
#include "agent/packages/dpkg_status.h"
#include "agent/packages/text_lines.h"
#include "agent/packages/version_compare.h"

namespace nodewarden::packages {

namespace {

constexpr size_t kMaxStatusFile = 256 * 1024 * 1024;
constexpr std::string_view kDpkgStatus = "/var/lib/dpkg/status";

const std::shared_ptr<spdlog::logger>& logger() {
  static const std::shared_ptr<spdlog::logger> log = core::log::category("packages");
  return log;
}

// The dpkg entry for a wanted name: "libc6" is keyed "libc6:amd64" when
// dpkg records it for several architectures; the installed one is taken.
const InstalledPackage* findInstalled(const DpkgPackages& packages, const std::string& name) {
  if (auto it = packages.find(name); it != packages.end()) return &it->second;
  const std::string prefix = name + ":";
  const InstalledPackage* found = nullptr;
  for (auto it = packages.lower_bound(prefix);
       it != packages.end() && it->first.starts_with(prefix); ++it) {
    if (found == nullptr || (!found->installed && it->second.installed)) found = &it->second;
  }
  return found;
}

struct PolicyEntry {
  std::optional<std::string> candidate;
  std::vector<std::string> available;
};

size_t leadingSpaces(std::string_view line) {
  size_t n = 0;
  while (n < line.size() && line[n] == ' ') ++n;
  return n;
}

// `apt-cache policy a b`: per package a "name:" line, "  Candidate: v", a
// version table of "     v prio" (" *** v prio" for the installed one)
// each followed by its sources "        prio origin". A version whose only
// source is dpkg's status file is installed but not in the archive. Names
// apt does not know are left out of the output.
std::map<std::string, PolicyEntry, std::less<>> parsePolicy(std::string_view output) {
  std::map<std::string, PolicyEntry, std::less<>> entries;
  PolicyEntry* entry = nullptr;
  std::string version;  // of the version table line being read
  auto finishVersion = [&](bool fromArchive) {
    if (fromArchive && entry != nullptr && !version.empty()) entry->available.push_back(version);
    version.clear();
  };
  TextLines lines(output);
  std::string_view line;
  while (lines.next(line)) {
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (trimBlanks(line).empty()) continue;
    if (line.front() != ' ') {
      version.clear();
      entry = nullptr;
      if (line.back() == ':') entry = &entries[std::string(line.substr(0, line.size() - 1))];
      continue;
    }
    if (entry == nullptr) continue;
    std::string_view text = trimBlanks(line);
    if (text.starts_with("Candidate:")) {
      const std::string_view value = trimBlanks(text.substr(10));
      if (!value.empty() && value != "(none)") entry->candidate = std::string(value);
      continue;
    }
    if (text.starts_with("Installed:") || text.starts_with("Version table:")) continue;
    const bool installedMark = text.starts_with("***");
    if (installedMark || leadingSpaces(line) <= 5) {
      if (installedMark) text = trimBlanks(text.substr(3));
      version = std::string(text.substr(0, text.find(' ')));
      continue;
    }
    // A source line: "500 http://deb.debian.org/debian bookworm/main amd64 Packages".
    const std::string_view origin = trimBlanks(text.substr(std::min(text.find(' '), text.size())));
    if (origin != kDpkgStatus) finishVersion(true);
  }
  for (auto& [name, parsed] : entries) {
    std::sort(
        parsed.available.begin(), parsed.available.end(),
        [](const std::string& a, const std::string& b) { return compareDebianVersions(a, b) > 0; });
    parsed.available.erase(std::unique(parsed.available.begin(), parsed.available.end()),
                           parsed.available.end());
  }
  return entries;
}

std::string lockOption(core::Duration wait) {
  return "DPkg::Lock::Timeout=" +
         std::to_string(std::chrono::duration_cast<std::chrono::seconds>(wait).count());
}

}  // namespace

// One step of apply(): what it is called in messages and what it runs.
struct AptPackageManager::Command {
  std::string label;  // "apt-get install"
  core::ProcessRequest request;
  bool takesDpkgLock = false;
};

AptPackageManager::AptPackageManager(core::ProcessRunner& runner, core::Clock& clock,
                                     Options options)
    : runner_(runner), options_(std::move(options)), later_(clock) {}

std::optional<AptPackageManager::LockHolder> AptPackageManager::dpkgLockHolder() const {
  if (auto holder = lockFileHolder(options_.root + "/var/lib/dpkg/lock-frontend")) return holder;
  return lockFileHolder(options_.root + "/var/lib/dpkg/lock");
}

core::Result<PackageSnapshot> AptPackageManager::readInstalled(
    const std::vector<PackageWant>& wants) const {
  const std::string path = options_.root + std::string(kDpkgStatus);
  core::Result<std::string> text = core::readFile(path, kMaxStatusFile);
  if (!text) return text.status();
  core::Result<DpkgPackages> packages = parseDpkgStatus(*text);
  if (!packages) return packages.status().withContext(path);

  PackageSnapshot snapshot;
  for (const PackageWant& want : wants) {
    PackageInfo& info = entryFor(snapshot, want.name);
    const InstalledPackage* installed = findInstalled(*packages, want.name);
    if (installed == nullptr) continue;
    if (installed->installed) info.installed = installed->version;
    // "hold ok installed": dpkg's selection is what apt-mark hold sets.
    info.held = installed->status.starts_with("hold ");
  }
  return snapshot;
}

void AptPackageManager::observe(const std::vector<PackageWant>& wants, ObserveCallback done) {
  core::Result<PackageSnapshot> snapshot = readInstalled(wants);
  if (!snapshot) {
    later_.post([done = std::move(done), status = snapshot.status()] { done(status); });
    return;
  }
  std::vector<std::string> names = namesNeedingArchive(wants, *snapshot, *this);
  if (names.empty()) {
    later_.post([done = std::move(done), result = std::move(*snapshot)]() mutable {
      done(std::move(result));
    });
    return;
  }
  queryArchive(wants, std::move(names), std::move(*snapshot), false, std::move(done));
}

core::ProcessRequest AptPackageManager::aptRequest(std::vector<std::string> argv,
                                                   core::Duration timeout) const {
  core::ProcessRequest request;
  request.argv = std::move(argv);
  request.environment = {{"DEBIAN_FRONTEND", "noninteractive"}};
  request.timeout = timeout;
  return request;
}

void AptPackageManager::queryArchive(std::vector<PackageWant> wants, std::vector<std::string> names,
                                     PackageSnapshot snapshot, bool refreshed,
                                     ObserveCallback done) {
  std::vector<std::string> argv{"apt-cache", "policy"};
  argv.insert(argv.end(), names.begin(), names.end());
  core::ProcessRequest request = aptRequest(std::move(argv), options_.queryTimeout);
  runner_.run(
      std::move(request),
      [this, wants = std::move(wants), names = std::move(names), snapshot = std::move(snapshot),
       refreshed, done = std::move(done)](core::Result<core::ProcessResult> result) mutable {
        if (!result || !result->succeeded()) {
          return done(core::Status::internal(
              describeFailure("apt-cache policy", result, options_.queryTimeout,
                              linesStartingWith(result ? result->stderrData : "", {"E:"}))));
        }
        auto policy = parsePolicy(result->stdoutData);
        for (const std::string& name : names) {
          PackageInfo& info = entryFor(snapshot, name);
          info.queried = true;
          info.candidate.reset();
          info.available.clear();
          if (auto it = policy.find(name); it != policy.end()) {
            info.candidate = it->second.candidate;
            info.available = it->second.available;
          }
        }
        std::vector<std::string> missing = missingFromArchive(wants, snapshot, *this);
        if (missing.empty() || refreshed) return done(std::move(snapshot));
        refreshThenQuery(std::move(wants), std::move(names), std::move(snapshot),
                         std::move(missing), std::move(done));
      });
}

void AptPackageManager::refreshThenQuery(std::vector<PackageWant> wants,
                                         std::vector<std::string> names, PackageSnapshot snapshot,
                                         std::vector<std::string> missing, ObserveCallback done) {
  const core::Duration timeout = options_.updateTimeout + options_.lockWait;
  core::ProcessRequest request =
      aptRequest({"apt-get", "update", "-q", "-o", lockOption(options_.lockWait)}, timeout);
  runner_.run(std::move(request), [this, wants = std::move(wants), names = std::move(names),
                                   snapshot = std::move(snapshot), missing = std::move(missing),
                                   timeout, done = std::move(done)](
                                      core::Result<core::ProcessResult> result) mutable {
    if (!result || !result->succeeded()) {
      return done(core::Status::internal(
          "refresh the package lists (" + joined(missing) + " not in them): " +
          describeFailure("apt-get update", result, timeout,
                          linesStartingWith(result ? result->stderrData : "", {"E:"}))));
    }
    snapshot.notes.push_back(refreshNote(missing));
    queryArchive(std::move(wants), std::move(names), std::move(snapshot), true, std::move(done));
  });
}

void AptPackageManager::apply(const PackageTransaction& transaction, Done done) {
  if (transaction.empty()) {
    later_.post([done = std::move(done)] { done(core::Status::ok()); });
    return;
  }
  std::vector<Command> commands;
  const std::string lock = lockOption(options_.lockWait);
  if (!transaction.install.empty() || !transaction.remove.empty()) {
    // Held packages are read again here: apt refuses to change one without
    // --allow-change-held-packages, and only an explicit change should pass.
    std::set<std::string, std::less<>> held(transaction.hold.begin(), transaction.hold.end());
    held.insert(transaction.unhold.begin(), transaction.unhold.end());
    std::vector<PackageWant> changed;
    for (const auto& install : transaction.install) changed.push_back({.name = install.name});
    for (const auto& name : transaction.remove) changed.push_back({.name = name});
    core::Result<PackageSnapshot> installed = readInstalled(changed);
    if (!installed) {
      later_.post([done = std::move(done), status = installed.status()] { done(status); });
      return;
    }
    for (const auto& [name, info] : installed->packages) {
      if (info.held) held.insert(name);
    }

    std::vector<std::string> argv{"apt-get", "install",
                                  "-y",      "-q",
                                  "-o",      "Dpkg::Options::=--force-confdef",
                                  "-o",      "Dpkg::Options::=--force-confold",
                                  "-o",      lock};
    std::vector<std::string> specs;
    bool pinned = false;
    bool changesHeld = false;
    for (const auto& install : transaction.install) {
      specs.push_back(install.version.empty() ? install.name
                                              : install.name + "=" + install.version);
      pinned = pinned || !install.version.empty();
      changesHeld = changesHeld || held.contains(install.name);
    }
    for (const auto& name : transaction.remove) {
      specs.push_back(name + "-");
      changesHeld = changesHeld || held.contains(name);
    }
    // A pinned version may be older than the installed one: the state says so.
    if (pinned) argv.push_back("--allow-downgrades");
    if (changesHeld) argv.push_back("--allow-change-held-packages");
    argv.insert(argv.end(), specs.begin(), specs.end());
    commands.push_back({"apt-get install",
                        aptRequest(std::move(argv), options_.installTimeout + options_.lockWait),
                        true});
  }
  auto mark = [&](const char* verb, const std::vector<std::string>& names) {
    if (names.empty()) return;
    std::vector<std::string> argv{"apt-mark", verb, "-o", lock};
    argv.insert(argv.end(), names.begin(), names.end());
    commands.push_back({std::string("apt-mark ") + verb,
                        aptRequest(std::move(argv), options_.queryTimeout + options_.lockWait),
                        true});
  };
  mark("hold", transaction.hold);
  mark("unhold", transaction.unhold);

  if (auto holder = lockHolder()) {
    NW_LOG(logger(), warn, "Waiting up to {} for the dpkg lock held by {}",
           seconds(options_.lockWait), *holder);
  }
  runInOrder(
      runner_, std::move(commands),
      [this](const Command& command, const core::Result<core::ProcessResult>& result) {
        if (result && result->succeeded()) return core::Status::ok();
        return core::Status::internal(failure(command, result));
      },
      std::move(done));
}

std::optional<std::string> AptPackageManager::lockHolder() const {
  if (auto holder = dpkgLockHolder()) return describe(*holder);
  return std::nullopt;
}

std::string AptPackageManager::failure(const Command& command,
                                       const core::Result<core::ProcessResult>& result) const {
  const std::vector<std::string> errors =
      linesStartingWith(result ? result->stderrData : "", {"E:"});
  // Blamed on the lock only when apt says it could not get it: a dependency
  // error just as unattended-upgrades takes the lock is a dependency error.
  const bool lockWaitRanOut =
      result &&
      (result->timedOut || result->stderrData.find("Could not get lock") != std::string::npos);
  if (command.takesDpkgLock && lockWaitRanOut) {
    if (auto holder = lockHolder()) {
      std::string message = command.label + " timed out after " + seconds(options_.lockWait) +
                            " waiting for the dpkg lock held by " + *holder;
      if (!errors.empty()) message += ": " + joined(errors, "; ");
      return message;
    }
  }
  return describeFailure(command.label, result, command.request.timeout, errors);
}

}  // namespace nodewarden::packages
