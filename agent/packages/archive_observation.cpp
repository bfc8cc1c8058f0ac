#include "agent/packages/archive_observation.h"

#include <fcntl.h>

#include <algorithm>
#include <chrono>
#include <set>
#include <utility>

#include "agent/core/atomic_file.h"
#include "agent/core/clock.h"
#include "agent/core/unique_fd.h"
#include "agent/packages/text_lines.h"

namespace nodewarden::packages {

DeferredCalls::DeferredCalls(core::Clock& clock)
    : timer_(clock.createTimer([this] { runAll(); })) {}

DeferredCalls::~DeferredCalls() = default;

void DeferredCalls::post(std::function<void()> call) {
  calls_.push_back(std::move(call));
  if (!timer_->armed()) timer_->armIn(core::Duration::zero());
}

void DeferredCalls::runAll() {
  // A call may post another: that one runs on the next round.
  std::vector<std::function<void()>> calls = std::exchange(calls_, {});
  for (auto& call : calls) call();
}

PackageInfo& entryFor(PackageSnapshot& snapshot, const std::string& name) {
  auto it = snapshot.packages.find(name);
  if (it == snapshot.packages.end()) it = snapshot.packages.try_emplace(name).first;
  return it->second;
}

namespace {

bool needsArchive(const PackageWant& want, const PackageInfo& info, const PackageManager& manager) {
  switch (want.ensure) {
    case PackageWant::Ensure::kAbsent:
      return false;
    case PackageWant::Ensure::kLatest:
      return true;
    case PackageWant::Ensure::kPresent:
      if (!info.installed) return true;
      return !want.version.empty() && !manager.versionMatches(want.version, *info.installed);
  }
  return false;
}

const PackageInfo& infoOf(const PackageSnapshot& snapshot, const std::string& name) {
  static const PackageInfo kUnknown;
  auto it = snapshot.packages.find(name);
  return it == snapshot.packages.end() ? kUnknown : it->second;
}

}  // namespace

std::vector<std::string> namesNeedingArchive(const std::vector<PackageWant>& wants,
                                             const PackageSnapshot& snapshot,
                                             const PackageManager& manager) {
  std::vector<std::string> names;
  std::set<std::string_view> seen;
  for (const PackageWant& want : wants) {
    if (!needsArchive(want, infoOf(snapshot, want.name), manager)) continue;
    if (seen.insert(want.name).second) names.push_back(want.name);
  }
  return names;
}

std::vector<std::string> missingFromArchive(const std::vector<PackageWant>& wants,
                                            const PackageSnapshot& snapshot,
                                            const PackageManager& manager) {
  std::vector<std::string> missing;
  for (const PackageWant& want : wants) {
    const PackageInfo& info = infoOf(snapshot, want.name);
    if (!needsArchive(want, info, manager)) continue;
    if (info.available.empty() && !info.candidate) {
      missing.push_back(want.name);
    } else if (!want.version.empty() &&
               std::none_of(
                   info.available.begin(), info.available.end(),
                   [&](const std::string& v) { return manager.versionMatches(want.version, v); })) {
      missing.push_back(want.name + " " + want.version);
    }
  }
  return missing;
}

std::string refreshNote(const std::vector<std::string>& missing) {
  return "package lists refreshed: " + joined(missing) + (missing.size() == 1 ? " was" : " were") +
         " not in them";
}

std::vector<std::string> linesStartingWith(std::string_view text,
                                           const std::vector<std::string_view>& prefixes) {
  std::vector<std::string> lines;
  TextLines reader(text);
  std::string_view line;
  while (reader.next(line)) {
    const std::string_view trimmed = trimBlanks(line);
    for (std::string_view prefix : prefixes) {
      if (trimmed.starts_with(prefix)) {
        lines.emplace_back(trimmed);
        break;
      }
    }
  }
  return lines;
}

std::string joined(const std::vector<std::string>& items, std::string_view separator) {
  std::string out;
  for (const std::string& item : items) {
    if (!out.empty()) out += separator;
    out += item;
  }
  return out;
}

std::string seconds(core::Duration duration) {
  return std::to_string(std::chrono::duration_cast<std::chrono::seconds>(duration).count()) + "s";
}

std::string describeFailure(std::string_view command,
                            const core::Result<core::ProcessResult>& result, core::Duration timeout,
                            const std::vector<std::string>& details) {
  if (!result) return std::string(command) + ": " + result.status().message();
  const core::ProcessResult& ended = *result;
  std::string message(command);
  if (ended.timedOut) {
    message += " timed out after " + seconds(timeout);
  } else if (ended.signal) {
    message += " was killed by signal " + std::to_string(*ended.signal);
  } else if (ended.exitCode == 0) {
    message += " failed";
  } else {
    message += " exited with status " + std::to_string(ended.exitCode.value_or(-1));
  }
  std::vector<std::string> shown = details;
  if (shown.empty()) {
    // No line the tool marks as an error: its last words, whatever they are.
    constexpr size_t kLastLines = 3;
    TextLines reader(ended.stderrData);
    std::string_view line;
    while (reader.next(line)) {
      if (!trimBlanks(line).empty()) shown.emplace_back(trimBlanks(line));
    }
    if (shown.size() > kLastLines) shown.erase(shown.begin(), shown.end() - kLastLines);
  }
  if (!shown.empty()) message += ": " + joined(shown, "; ");
  return message;
}

std::optional<LockHolder> lockFileHolder(const std::string& path) {
  core::UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.isValid()) return std::nullopt;
  struct flock probe {};
  probe.l_type = F_WRLCK;
  probe.l_whence = SEEK_SET;
  if (::fcntl(fd.get(), F_GETLK, &probe) < 0 || probe.l_type == F_UNLCK) return std::nullopt;
  // A holder in another PID namespace (the host of a container) reads as 0.
  if (probe.l_pid <= 0) return LockHolder{0, ""};
  return LockHolder{probe.l_pid, processName(probe.l_pid)};
}

std::string describe(const LockHolder& holder) {
  if (holder.pid == 0) return "a process outside this node's PID namespace";
  return std::to_string(holder.pid) + " (" + holder.name + ")";
}

std::string processName(pid_t pid) {
  core::Result<std::string> comm = core::readFile("/proc/" + std::to_string(pid) + "/comm", 256);
  if (!comm) return "unknown";
  std::string name = std::string(trimBlanks(*comm));
  while (!name.empty() && name.back() == '\n') name.pop_back();
  return name.empty() ? "unknown" : name;
}

}  // namespace nodewarden::packages
