#include "agent/heal/disk_pressure.h"

#include <glob.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string_view>
#include <utility>

#include "agent/core/duration.h"
#include "agent/core/log.h"
#include "agent/core/process_runner.h"
#include "agent/heal/health.h"
#include "nodewarden/v1/state.pb.h"

namespace nodewarden::heal {

namespace {

const auto kLog = core::log::category("heal");

constexpr char kCleanupReason[] = "DiskCleanup";
constexpr char kCleanupSkippedReason[] = "DiskCleanupSkipped";

std::string joined(const std::vector<std::string>& items, std::string_view separator) {
  std::string text;
  for (const std::string& item : items) {
    if (!text.empty()) text += separator;
    text += item;
  }
  return text;
}

// Rounded up, as df rounds its Use%: a filesystem 85.1 % full reads "86%".
std::string percentText(const std::optional<double>& percent) {
  if (!percent) return "unknown";
  return std::to_string(static_cast<int>(std::ceil(*percent))) + "%";
}

std::string bytesText(uint64_t bytes) {
  static constexpr const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  if (bytes < 1024) return std::to_string(bytes) + " B";
  double value = static_cast<double>(bytes);
  size_t unit = 0;
  while (value >= 1024 && unit + 1 < std::size(kUnits)) {
    value /= 1024;
    ++unit;
  }
  char text[32];
  std::snprintf(text, sizeof(text), "%.1f %s", value, kUnits[unit]);
  return text;
}

// A setting's duration, or its default when unset. Validation rejects what
// does not parse; should it slip through, the default is the safe reading.
core::Duration durationOr(const std::string& text, core::Duration fallback, bool allowZero,
                          std::string_view field) {
  if (text.empty()) return fallback;
  auto parsed = core::parseDuration(text);
  if (!parsed || (*parsed <= core::Duration::zero() && !allowZero)) {
    NW_LOG(kLog, warn, "diskPressure.{}: \"{}\" is not a usable duration, using {}", field, text,
           core::formatDuration(fallback));
    return fallback;
  }
  return *parsed;
}

std::vector<std::string> lines(std::string_view text) {
  std::vector<std::string> result;
  while (!text.empty()) {
    const size_t end = std::min(text.find('\n'), text.size());
    std::string_view line = text.substr(0, end);
    while (!line.empty() && (line.front() == ' ' || line.front() == '\t')) line.remove_prefix(1);
    while (!line.empty() && (line.back() == ' ' || line.back() == '\r')) line.remove_suffix(1);
    if (!line.empty()) result.emplace_back(line);
    text.remove_prefix(std::min(end + 1, text.size()));
  }
  return result;
}

// Why a cleanup command did not succeed: "crictl rmi --prune exited with
// status 1: <its last words>", "... timed out after 10m", or why it could not
// start ("run crictl: No such file or directory").
std::string describeFailure(const std::string& command,
                            const core::Result<core::ProcessResult>& result,
                            core::Duration timeout) {
  if (!result) return command + ": " + result.status().message();
  const core::ProcessResult& ended = *result;
  std::string message = command;
  if (ended.timedOut) {
    message += " timed out after " + core::formatDuration(timeout);
  } else if (ended.signal) {
    message += " was killed by signal " + std::to_string(*ended.signal);
  } else {
    message += " exited with status " + std::to_string(ended.exitCode.value_or(-1));
  }
  std::vector<std::string> said = lines(ended.stderrData);
  if (said.empty()) said = lines(ended.stdoutData);
  if (!said.empty()) message += ": " + said.back();
  return message;
}

// What journalctl --vacuum-size says it freed, summed over the journal
// directories: "Vacuuming done, freed 1.2G of archived journals from ...".
// Sizes are systemd's format_bytes(): "0B", "512.0K", "1.2G", powers of 1024.
std::optional<uint64_t> journalFreed(const core::ProcessResult& result) {
  std::optional<uint64_t> total;
  for (const std::string* output : {&result.stderrData, &result.stdoutData}) {
    for (const std::string& line : lines(*output)) {
      constexpr std::string_view kFreed = "freed ";
      const size_t at = line.find(kFreed);
      if (line.find("Vacuuming done") == std::string::npos || at == std::string::npos) continue;
      const char* start = line.c_str() + at + kFreed.size();
      char* end = nullptr;
      const double value = std::strtod(start, &end);
      if (end == start || value < 0) continue;
      static constexpr std::string_view kSuffixes = "BKMGTPE";
      const size_t power = kSuffixes.find(*end);
      if (*end == '\0' || power == std::string_view::npos) continue;
      total = total.value_or(0) + static_cast<uint64_t>(value * std::pow(1024.0, power));
    }
  }
  return total;
}

core::WallTime modifiedAt(const struct stat& st) {
  const auto since =
      std::chrono::seconds(st.st_mtim.tv_sec) + std::chrono::nanoseconds(st.st_mtim.tv_nsec);
  return core::WallTime(std::chrono::duration_cast<core::WallTime::duration>(since));
}

}  // namespace

double FilesystemUsage::percent() const {
  const double total = static_cast<double>(usedBytes) + static_cast<double>(availableBytes);
  return total == 0 ? 0 : 100.0 * static_cast<double>(usedBytes) / total;
}

core::Result<FilesystemUsage> statFilesystem(const std::string& path) {
  struct statvfs s {};
  if (::statvfs(path.c_str(), &s) != 0) return core::Status::fromErrno(errno, "statvfs " + path);
  const uint64_t blockSize = s.f_frsize != 0 ? s.f_frsize : s.f_bsize;
  FilesystemUsage usage;
  usage.usedBytes = (s.f_blocks - std::min(s.f_bfree, s.f_blocks)) * blockSize;
  usage.availableBytes = s.f_bavail * blockSize;
  return usage;
}

struct DiskPressureMonitor::Cleanup {
  Config config;
  std::vector<MountUsage> before;
  std::vector<std::string> done;
  std::vector<std::string> failures;
};

DiskPressureMonitor::DiskPressureMonitor(core::Clock& clock, core::ProcessRunner& processes,
                                         HealthBoard& board, FilesystemUsageFunction usage)
    : clock_(clock),
      processes_(processes),
      board_(board),
      usageOf_(std::move(usage)),
      checkTimer_(clock.createTimer([this] { check(); })) {}

DiskPressureMonitor::~DiskPressureMonitor() { *alive_ = false; }

DiskPressureMonitor::Config DiskPressureMonitor::parse(const v1::DiskPressure& message) {
  Config config;
  for (const std::string& mount : message.mounts()) {
    if (!mount.empty()) config.mounts.push_back(mount);
  }
  if (config.mounts.empty()) config.mounts.push_back("/");
  if (message.threshold_percent() != 0) config.thresholdPercent = message.threshold_percent();
  config.checkInterval =
      durationOr(message.check_interval(), kDefaultCheckInterval, false, "checkInterval");
  config.minInterval = durationOr(message.min_interval(), kDefaultMinInterval, true, "minInterval");
  config.journalVacuumSize = message.journal_vacuum_size();
  config.pruneImages = message.prune_images();
  for (const v1::FileCleanup& files : message.files()) {
    if (files.pattern().empty()) continue;
    core::Duration olderThan{};  // none given: any age
    if (!files.older_than().empty()) {
      auto parsed = core::parseDuration(files.older_than());
      if (!parsed) {
        // Removing files younger than meant is not a risk worth taking.
        NW_LOG(kLog, warn, "diskPressure.files: {}: {}, ignoring the pattern", files.pattern(),
               parsed.status().message());
        continue;
      }
      olderThan = *parsed;
    }
    config.files.push_back({files.pattern(), olderThan});
  }
  return config;
}

void DiskPressureMonitor::configure(const v1::DiskPressure& message) {
  std::optional<Config> config;
  if (message.ByteSizeLong() != 0) config = parse(message);
  if (config == config_) return;
  config_ = std::move(config);
  usage_.clear();
  loggedErrors_.clear();
  if (!config_) {
    checkTimer_->cancel();
    lastCheck_.reset();
    // A condition from before (or from the last agent run) must not stay
    // raised with nothing to lower it.
    if (board_.get(kNodeSubject, condition::kDiskPressure) != nullptr) {
      board_.set(kNodeSubject, condition::kDiskPressure, false, "NotMonitored",
                 "disk usage is not monitored");
    }
    return;
  }
  // From the loop, not inside the caller's state handling.
  checkTimer_->armIn(core::Duration::zero());
}

void DiskPressureMonitor::recheckUnreadable() {
  if (!config_ || cleanup_) return;
  const bool unreadable = std::any_of(usage_.begin(), usage_.end(),
                                      [](const MountUsage& mount) { return !mount.percent; });
  if (unreadable) check();
}

DiskPressureStatus DiskPressureMonitor::status() const {
  return {.enabled = config_.has_value(),
          .lastCheck = lastCheck_,
          .lastCleanup = lastCleanupWall_,
          .cleanupRunning = cleanup_ != nullptr,
          .mounts = usage_};
}

std::vector<MountUsage> DiskPressureMonitor::measure(const std::vector<std::string>& mounts) {
  std::vector<MountUsage> result;
  for (const std::string& mount : mounts) {
    auto usage = usageOf_(mount);
    if (usage) {
      result.push_back({.mount = mount, .percent = usage->percent(), .error = {}});
    } else {
      result.push_back(
          {.mount = mount, .percent = std::nullopt, .error = usage.status().message()});
    }
  }
  return result;
}

void DiskPressureMonitor::check() {
  if (!config_) return;
  usage_ = measure(config_->mounts);
  lastCheck_ = clock_.wallNow();
  std::vector<std::string> errors;
  for (const MountUsage& mount : usage_) {
    if (mount.error.empty()) continue;
    if (std::find(loggedErrors_.begin(), loggedErrors_.end(), mount.error) == loggedErrors_.end()) {
      NW_LOG(kLog, warn, "Failed to read the disk usage of {}: {}, ignoring", mount.mount,
             mount.error);
    }
    errors.push_back(mount.error);
  }
  loggedErrors_ = std::move(errors);
  checkTimer_->armIn(config_->checkInterval);
  evaluate(/*mayClean=*/true);
}

void DiskPressureMonitor::evaluate(bool mayClean) {
  const std::string threshold = std::to_string(config_->thresholdPercent) + "%";
  std::vector<std::string> over;
  std::vector<std::string> within;
  std::vector<std::string> unreadable;
  for (const MountUsage& mount : usage_) {
    if (!mount.percent) {
      unreadable.push_back(mount.error);
      continue;
    }
    std::string usage = mount.mount + " is " + percentText(mount.percent) + " full";
    if (*mount.percent > config_->thresholdPercent) {
      over.push_back(std::move(usage));
    } else {
      within.push_back(std::move(usage));
    }
  }

  if (over.empty()) {
    skipNoted_ = false;
    if (within.empty()) {
      board_.set(kNodeSubject, condition::kDiskPressure, false, "UsageUnknown",
                 "no checked mount could be read: " + joined(unreadable, "; "));
      return;
    }
    std::string message = joined(within, ", ") + ", within the threshold of " + threshold;
    if (!unreadable.empty()) message += "; could not read: " + joined(unreadable, "; ");
    board_.set(kNodeSubject, condition::kDiskPressure, false, "UsageBelowThreshold",
               std::move(message));
    return;
  }
  board_.set(kNodeSubject, condition::kDiskPressure, true, "UsageAboveThreshold",
             joined(over, ", ") + ", above the threshold of " + threshold);
  if (!mayClean || !config_->hasCleanups() || cleanup_) return;

  const core::MonotonicTime now = clock_.now();
  if (lastCleanup_ && now - *lastCleanup_ < config_->minInterval) {
    if (!skipNoted_) {
      skipNoted_ = true;
      const auto wait =
          std::chrono::ceil<std::chrono::seconds>(*lastCleanup_ + config_->minInterval - now);
      board_.record(
          kNodeSubject, kCleanupSkippedReason,
          "disk usage is still above " + threshold + ", but the last cleanup ran " +
              core::formatDuration(std::chrono::floor<std::chrono::seconds>(now - *lastCleanup_)) +
              " ago: the next may run in " + core::formatDuration(wait) + " (at most one every " +
              core::formatDuration(config_->minInterval) + ")");
    }
    return;
  }
  startCleanup();
}

void DiskPressureMonitor::startCleanup() {
  cleanup_ = std::make_unique<Cleanup>();
  cleanup_->config = *config_;
  cleanup_->before = usage_;
  lastCleanup_ = clock_.now();
  lastCleanupWall_ = clock_.wallNow();
  skipNoted_ = false;
  NW_LOG(kLog, info, "Disk usage above {}%, cleaning up", config_->thresholdPercent);
  vacuumJournal();
}

void DiskPressureMonitor::vacuumJournal() {
  const std::string size = cleanup_->config.journalVacuumSize;
  if (size.empty()) return pruneImages();
  const std::string command = "journalctl --vacuum-size=" + size;
  processes_.run(
      {.argv = {"journalctl", "--vacuum-size=" + size}, .timeout = kJournalVacuumTimeout},
      [this, alive = alive_, size, command](core::Result<core::ProcessResult> result) {
        if (!*alive || !cleanup_) return;
        if (result && result->succeeded()) {
          std::string done = "journal vacuumed to " + size;
          if (auto freed = journalFreed(*result)) done += ", freeing " + bytesText(*freed);
          cleanup_->done.push_back(std::move(done));
        } else {
          cleanup_->failures.push_back(describeFailure(command, result, kJournalVacuumTimeout));
        }
        pruneImages();
      });
}

void DiskPressureMonitor::pruneImages() {
  if (!cleanup_->config.pruneImages) return removeFiles();
  processes_.run({.argv = {"crictl", "rmi", "--prune"}, .timeout = kImagePruneTimeout},
                 [this, alive = alive_](core::Result<core::ProcessResult> result) {
                   if (!*alive || !cleanup_) return;
                   if (result && result->succeeded()) {
                     size_t images = 0;
                     for (const std::string& line : lines(result->stdoutData)) {
                       if (line.starts_with("Deleted:")) ++images;
                     }
                     cleanup_->done.push_back(
                         images == 0
                             ? "no unused image to remove"
                             : std::to_string(images) +
                                   (images == 1 ? " unused image" : " unused images") + " removed");
                   } else {
                     cleanup_->failures.push_back(
                         describeFailure("crictl rmi --prune", result, kImagePruneTimeout));
                   }
                   removeFiles();
                 });
}

void DiskPressureMonitor::removeFiles() {
  const std::vector<FileCleanup>& patterns = cleanup_->config.files;
  if (patterns.empty()) return finishCleanup();
  const core::WallTime now = clock_.wallNow();
  size_t removed = 0;
  size_t failed = 0;
  uint64_t bytes = 0;
  std::string firstFailure;
  bool limited = false;
  for (const FileCleanup& files : patterns) {
    if (limited) break;
    if (files.pattern.front() != '/') {
      // Relative to wherever the agent runs: never what was meant.
      cleanup_->failures.push_back("pattern \"" + files.pattern + "\" is not absolute, skipped");
      continue;
    }
    glob_t matches{};
    const int globbed = ::glob(files.pattern.c_str(), GLOB_NOSORT, nullptr, &matches);
    if (globbed != 0 && globbed != GLOB_NOMATCH) {
      cleanup_->failures.push_back("expand " + files.pattern + ": " +
                                   (globbed == GLOB_NOSPACE ? "out of memory" : "read error"));
    }
    const core::WallTime cutoff = now - files.olderThan;
    for (size_t i = 0; globbed == 0 && i < matches.gl_pathc; ++i) {
      if (removed + failed >= kMaxFilesPerCleanup) {
        limited = true;
        break;
      }
      const char* path = matches.gl_pathv[i];
      struct stat st {};
      // lstat: a symbolic link is not a file to remove, nor is what it points
      // to, which may be anywhere.
      if (::lstat(path, &st) != 0 || !S_ISREG(st.st_mode)) continue;
      if (modifiedAt(st) >= cutoff) continue;
      if (::unlink(path) != 0) {
        if (errno == ENOENT) continue;  // removed meanwhile: what we wanted
        if (firstFailure.empty()) {
          firstFailure = core::Status::fromErrno(errno, std::string("remove ") + path).message();
        }
        ++failed;
        continue;
      }
      ++removed;
      bytes += static_cast<uint64_t>(st.st_size);
    }
    ::globfree(&matches);
  }
  cleanup_->done.push_back(removed == 0
                               ? "no file old enough to remove"
                               : std::to_string(removed) + (removed == 1 ? " file" : " files") +
                                     " removed (" + bytesText(bytes) + ")");
  if (limited) {
    cleanup_->done.push_back("stopped at " + std::to_string(kMaxFilesPerCleanup) +
                             " files, the rest wait for the next cleanup");
  }
  if (failed != 0) {
    cleanup_->failures.push_back(
        firstFailure + (failed > 1 ? " (and " + std::to_string(failed - 1) + " more files)" : ""));
  }
  finishCleanup();
}

void DiskPressureMonitor::finishCleanup() {
  std::unique_ptr<Cleanup> run = std::move(cleanup_);
  const std::vector<MountUsage> after = measure(run->config.mounts);
  std::vector<std::string> usage;
  for (size_t i = 0; i < after.size(); ++i) {
    const std::optional<double> before =
        i < run->before.size() ? run->before[i].percent : std::nullopt;
    usage.push_back(after[i].mount + " " + percentText(before) + " → " +
                    percentText(after[i].percent));
  }
  std::string message = "usage " + joined(usage, ", ");
  if (!run->done.empty()) message += "; " + joined(run->done, "; ");
  if (!run->failures.empty()) message += "; failed: " + joined(run->failures, "; ");
  board_.record(kNodeSubject, kCleanupReason, std::move(message), !run->failures.empty());

  // The settings may have changed meanwhile; their own check follows.
  if (!config_ || config_->mounts != run->config.mounts) return;
  usage_ = after;
  lastCheck_ = clock_.wallNow();
  // Another cleanup waits for the next check, and the rate limit.
  evaluate(/*mayClean=*/false);
}

}  // namespace nodewarden::heal
