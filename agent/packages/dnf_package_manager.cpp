#include "agent/packages/dnf_package_manager.h"

#include <algorithm>
#include <cstdlib>
#include <map>
#include <optional>
#include <utility>

#include "agent/core/atomic_file.h"
#include "agent/core/process_runner.h"
#include "agent/packages/rpm_query.h"
#include "agent/packages/text_lines.h"
#include "agent/packages/version_compare.h"

namespace nodewarden::packages {

namespace {

constexpr size_t kMaxVersionlockList = 16 * 1024 * 1024;
// repoquery's format: dnf turns the "\t" into a tab.
constexpr std::string_view kRepoqueryFormat = "%{name}\\t%{epoch}:%{version}-%{release}";

struct Evr {
  std::optional<std::string_view> epoch;
  std::string_view version;
  std::optional<std::string_view> release;
};

Evr splitEvr(std::string_view text) {
  Evr evr;
  if (const size_t colon = text.find(':'); colon != std::string_view::npos) {
    evr.epoch = text.substr(0, colon);
    text.remove_prefix(colon + 1);
  }
  if (const size_t dash = text.rfind('-'); dash != std::string_view::npos) {
    evr.release = text.substr(dash + 1);
    text = text.substr(0, dash);
  }
  evr.version = text;
  return evr;
}

std::string_view epochNumber(std::optional<std::string_view> epoch) {
  std::string_view digits = epoch.value_or("0");
  while (digits.size() > 1 && digits.front() == '0') digits.remove_prefix(1);
  return digits;
}

// "0:1.6.20-3" reads "1.6.20-3", as rpm_query writes installed versions.
std::string withoutZeroEpoch(std::string_view version) {
  const Evr evr = splitEvr(version);
  if (evr.epoch && epochNumber(evr.epoch) == "0")
    return std::string(version.substr(evr.epoch->size() + 1));
  return std::string(version);
}

bool newer(const std::string& a, const std::string& b) { return compareRpmVersions(a, b) > 0; }

// repoquery lines "name\tepoch:version-release", one per package and
// architecture: by name, newest first, each version once.
std::map<std::string, std::vector<std::string>, std::less<>> parseRepoquery(
    std::string_view output) {
  std::map<std::string, std::vector<std::string>, std::less<>> versions;
  TextLines lines(output);
  std::string_view line;
  while (lines.next(line)) {
    line = trimBlanks(line);
    const size_t tab = line.find('\t');
    if (tab == std::string_view::npos || tab == 0 || tab + 1 == line.size()) continue;
    versions[std::string(line.substr(0, tab))].push_back(withoutZeroEpoch(line.substr(tab + 1)));
  }
  for (auto& [name, list] : versions) {
    std::sort(list.begin(), list.end(), newer);
    list.erase(std::unique(list.begin(), list.end()), list.end());
  }
  return versions;
}

// dnf 4 prints "Waiting for process with pid 1234 to finish." while another
// dnf holds its lock.
std::optional<pid_t> lockWaitedFor(const core::ProcessResult& result) {
  constexpr std::string_view kWaiting = "Waiting for process with pid ";
  for (const std::string* text : {&result.stdoutData, &result.stderrData}) {
    const size_t at = text->rfind(kWaiting);
    if (at == std::string::npos) continue;
    const long pid = std::strtol(text->c_str() + at + kWaiting.size(), nullptr, 10);
    if (pid > 0) return static_cast<pid_t>(pid);
  }
  return std::nullopt;
}

}  // namespace

std::set<std::string, std::less<>> parseVersionlockList(std::string_view text) {
  std::set<std::string, std::less<>> names;
  TextLines lines(text);
  std::string_view line;
  while (lines.next(line)) {
    line = trimBlanks(line);
    if (line.empty() || line.front() == '#' || line.front() == '!') continue;
    // name-[epoch:]version-release.arch: the name ends before the last two dashes.
    const size_t releaseDash = line.rfind('-');
    if (releaseDash == std::string_view::npos || releaseDash == 0) continue;
    const size_t versionDash = line.rfind('-', releaseDash - 1);
    if (versionDash == std::string_view::npos || versionDash == 0) continue;
    names.emplace(line.substr(0, versionDash));
  }
  return names;
}

// One step of apply(): what it is called in messages and what it runs.
struct DnfPackageManager::Command {
  std::string label;  // "dnf shell"
  core::ProcessRequest request;
  // Why an exit status 0 can still be a failure: dnf's shell carries on past
  // errors, versionlock reports a package it cannot find and exits 0.
  std::function<std::vector<std::string>(const core::ProcessResult&)> errors;
};

std::optional<std::string> DnfPackageManager::lockHolder() const {
  // rpm's %_rpmlock_path; /var/lib/rpm links to /usr/lib/sysimage/rpm where
  // the database moved.
  if (auto holder = lockFileHolder(options_.root + "/var/lib/rpm/.rpm.lock")) {
    return describe(*holder);
  }
  return std::nullopt;
}

DnfPackageManager::DnfPackageManager(core::ProcessRunner& runner, core::Clock& clock,
                                     Options options)
    : runner_(runner), options_(std::move(options)), later_(clock) {}

bool DnfPackageManager::versionMatches(std::string_view version, std::string_view installed) const {
  const Evr want = splitEvr(version);
  const Evr have = splitEvr(installed);
  if (want.epoch && epochNumber(want.epoch) != epochNumber(have.epoch)) return false;
  if (want.version != have.version) return false;
  return !want.release || want.release == have.release;
}

std::vector<std::string> DnfPackageManager::dnf(
    std::initializer_list<std::string> arguments) const {
  std::vector<std::string> argv{"dnf"};
  argv.insert(argv.end(), options_.dnfArguments.begin(), options_.dnfArguments.end());
  if (!options_.root.empty()) argv.push_back("--installroot=" + options_.root);
  argv.insert(argv.end(), arguments.begin(), arguments.end());
  return argv;
}

core::Result<std::set<std::string, std::less<>>> DnfPackageManager::lockedNames() const {
  const std::string path = options_.root + options_.versionlockList;
  core::Result<std::string> text = core::readFile(path, kMaxVersionlockList);
  if (!text) {
    if (text.status().code() == core::Status::Code::kNotFound) {
      return std::set<std::string, std::less<>>();
    }
    return text.status();
  }
  return parseVersionlockList(*text);
}

void DnfPackageManager::observe(const std::vector<PackageWant>& wants, ObserveCallback done) {
  core::ProcessRequest request;
  request.argv = {"rpm"};
  if (!options_.root.empty()) request.argv.insert(request.argv.end(), {"--root", options_.root});
  request.argv.insert(request.argv.end(), {"-qa", "--queryformat", std::string(kRpmQueryFormat)});
  request.timeout = options_.queryTimeout;
  request.outputLimit = 64 * 1024 * 1024;
  runner_.run(std::move(request), [this, wants, done = std::move(done)](
                                      core::Result<core::ProcessResult> result) mutable {
    if (!result || !result->succeeded()) {
      return done(
          core::Status::internal(describeFailure("rpm -qa", result, options_.queryTimeout, {})));
    }
    core::Result<RpmPackages> installed = parseRpmQuery(result->stdoutData);
    if (!installed) return done(installed.status());
    core::Result<std::set<std::string, std::less<>>> locked = lockedNames();
    if (!locked) return done(locked.status());

    PackageSnapshot snapshot;
    for (const PackageWant& want : wants) {
      PackageInfo& info = entryFor(snapshot, want.name);
      if (auto it = installed->find(want.name); it != installed->end()) {
        info.installed = it->second.back().version;  // the newest of the installed versions
      }
      info.held = locked->contains(want.name);
    }
    std::vector<std::string> names = namesNeedingArchive(wants, snapshot, *this);
    if (names.empty()) return done(std::move(snapshot));
    queryArchive(std::move(wants), std::move(names), std::move(snapshot), {}, std::move(done));
  });
}

void DnfPackageManager::queryArchive(std::vector<PackageWant> wants, std::vector<std::string> names,
                                     PackageSnapshot snapshot,
                                     std::vector<std::string> refreshedFor, ObserveCallback done) {
  const bool refresh = !refreshedFor.empty();
  core::ProcessRequest request;
  request.argv = dnf({"-q"});
  if (refresh) request.argv.push_back("--refresh");
  request.argv.insert(request.argv.end(), {"repoquery", "--qf", std::string(kRepoqueryFormat),
                                           "--showduplicates", "--available"});
  request.argv.insert(request.argv.end(), names.begin(), names.end());
  request.timeout = options_.queryTimeout;
  runner_.run(
      std::move(request),
      [this, wants = std::move(wants), names = std::move(names), snapshot = std::move(snapshot),
       refreshedFor = std::move(refreshedFor), refresh,
       done = std::move(done)](core::Result<core::ProcessResult> result) mutable {
        const std::string label = refresh ? "dnf --refresh repoquery" : "dnf repoquery";
        if (!result || !result->succeeded()) {
          return done(core::Status::internal(
              describeFailure(label, result, options_.queryTimeout,
                              linesStartingWith(result ? result->stderrData : "", {"Error:"}))));
        }
        auto available = parseRepoquery(result->stdoutData);
        for (const std::string& name : names) {
          PackageInfo& info = entryFor(snapshot, name);
          info.queried = true;
          info.available.clear();
          info.candidate.reset();
          if (auto it = available.find(name); it != available.end()) info.available = it->second;
          // dnf installs the newest it can; it never downgrades by itself.
          if (!info.available.empty()) info.candidate = info.available.front();
          if (info.installed && (!info.candidate || newer(*info.installed, *info.candidate))) {
            info.candidate = info.installed;
          }
        }
        if (refresh) {
          snapshot.notes.push_back(refreshNote(refreshedFor));
          return done(std::move(snapshot));
        }
        std::vector<std::string> missing = missingFromArchive(wants, snapshot, *this);
        if (missing.empty()) return done(std::move(snapshot));
        queryArchive(std::move(wants), std::move(names), std::move(snapshot), std::move(missing),
                     std::move(done));
      });
}

void DnfPackageManager::apply(const PackageTransaction& transaction, Done done) {
  core::Result<std::set<std::string, std::less<>>> locked = lockedNames();
  if (transaction.empty() || !locked) {
    later_.post([done = std::move(done), status = locked.status()] { done(status); });
    return;
  }
  const std::set<std::string, std::less<>> unhold(transaction.unhold.begin(),
                                                  transaction.unhold.end());
  // A locked package installed at another version is unlocked for the
  // transaction, then locked again at its new version unless it is unheld.
  std::vector<std::string> relock;
  for (const auto& install : transaction.install) {
    if (locked->contains(install.name) && !unhold.contains(install.name)) {
      relock.push_back(install.name);
    }
  }
  const bool changesLocked =
      std::any_of(transaction.install.begin(), transaction.install.end(),
                  [&](const auto& install) { return locked->contains(install.name); });

  std::vector<Command> commands;
  if (!transaction.install.empty() || !transaction.remove.empty()) {
    std::string script;
    if (!transaction.install.empty()) {
      script += "install";
      for (const auto& install : transaction.install) {
        script +=
            " " + (install.version.empty() ? install.name : install.name + "-" + install.version);
      }
      script += "\n";
    }
    if (!transaction.remove.empty()) script += "remove " + joined(transaction.remove, " ") + "\n";
    script += "run\n";
    core::ProcessRequest request;
    request.argv = dnf({"-y"});
    if (changesLocked) request.argv.push_back("--disableplugin=versionlock");
    request.argv.push_back("shell");
    request.stdinData = std::move(script);
    request.timeout = options_.transactionTimeout + options_.lockWait;
    commands.push_back(
        {"dnf shell", std::move(request), [](const core::ProcessResult& result) {
           // The shell exits 0 whatever happened: its errors are in what it printed.
           // Dependency problems follow a "Problem" line as "  - ..." lines.
           std::vector<std::string> errors;
           if (!linesStartingWith(result.stderrData, {"Error:", "Problem"}).empty()) {
             errors = linesStartingWith(result.stderrData, {"Error:", "Problem", "- "});
           }
           if (errors.empty() && result.stdoutData.find("Complete!") == std::string::npos) {
             errors.push_back("the transaction did not complete");
           }
           return errors;
         }});
  }
  auto versionlock = [&](const char* verb, std::vector<std::string> names) {
    std::sort(names.begin(), names.end());
    names.erase(std::unique(names.begin(), names.end()), names.end());
    if (names.empty()) return;
    core::ProcessRequest request;
    request.argv = dnf({"-q", "-y", "versionlock", verb});
    request.argv.insert(request.argv.end(), names.begin(), names.end());
    request.timeout = options_.queryTimeout + options_.lockWait;
    commands.push_back({std::string("dnf versionlock ") + verb, std::move(request),
                        [](const core::ProcessResult& result) {
                          std::vector<std::string> errors =
                              linesStartingWith(result.stdoutData + result.stderrData,
                                                {"No package found", "Error:"});
                          return errors;
                        }});
  };
  std::vector<std::string> unlock = transaction.unhold;
  unlock.insert(unlock.end(), relock.begin(), relock.end());
  std::vector<std::string> lock = transaction.hold;
  lock.insert(lock.end(), relock.begin(), relock.end());
  versionlock("delete", std::move(unlock));
  versionlock("add", std::move(lock));
  runInOrder(runner_, std::move(commands), &DnfPackageManager::verdict, std::move(done));
}

// A dnf command that exited 0 may still have failed (see Command::errors); a
// timed-out one may have waited for another process's lock.
core::Status DnfPackageManager::verdict(const Command& command,
                                        const core::Result<core::ProcessResult>& result) {
  if (result && result->timedOut) {
    if (std::optional<pid_t> holder = lockWaitedFor(*result)) {
      return core::Status::timeout(command.label + " timed out after " +
                                   seconds(command.request.timeout) +
                                   " waiting for the dnf lock held by " + std::to_string(*holder) +
                                   " (" + processName(*holder) + ")");
    }
  }
  std::vector<std::string> errors;
  if (result && result->succeeded()) errors = command.errors(*result);
  if (result && result->succeeded() && errors.empty()) return core::Status::ok();
  if (errors.empty() && result) errors = linesStartingWith(result->stderrData, {"Error:"});
  return core::Status::internal(
      describeFailure(command.label, result, command.request.timeout, errors));
}

}  // namespace nodewarden::packages
