#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "agent/core/clock.h"
#include "agent/core/status.h"

namespace nodewarden::v1 {
class DiskPressure;
}

namespace nodewarden::core {
class ProcessRunner;
}

namespace nodewarden::heal {

class HealthBoard;

// How full a filesystem is, in the numbers `df` shows.
struct FilesystemUsage {
  uint64_t usedBytes = 0;       // blocks in use, root's reserve not counted
  uint64_t availableBytes = 0;  // what unprivileged writers can still get
  // df's Use%: used / (used + available). The blocks reserved for root count
  // as neither, so a filesystem at 100 % may still take root's writes.
  double percent() const;
};

using FilesystemUsageFunction =
    std::function<core::Result<FilesystemUsage>(const std::string& path)>;

// The usage of the filesystem holding `path`, from statvfs(3).
core::Result<FilesystemUsage> statFilesystem(const std::string& path);

// One checked mount, as the last check found it.
struct MountUsage {
  std::string mount;
  std::optional<double> percent;  // unset when it could not be read
  std::string error;              // why it could not be read
};

// For the status output.
struct DiskPressureStatus {
  bool enabled = false;
  std::optional<core::WallTime> lastCheck;
  std::optional<core::WallTime> lastCleanup;  // when the last cleanup started
  bool cleanupRunning = false;
  std::vector<MountUsage> mounts;
};

// Watches the usage of the configured mounts every check interval. Above the
// threshold it raises the node's DiskPressure condition and runs the configured
// cleanups (journal vacuum, image prune, old files), at most once per minimum
// interval, each run reported as one DiskCleanup event; below it the condition
// is cleared. Lives on the loop thread.
class DiskPressureMonitor final {
 public:
  static constexpr uint32_t kDefaultThresholdPercent = 85;
  static constexpr core::Duration kDefaultCheckInterval = std::chrono::minutes(1);
  static constexpr core::Duration kDefaultMinInterval = std::chrono::minutes(10);
  // Files removed by one cleanup at most: removal runs on the loop thread, and
  // a pattern that matches a million files must not stall it. The rest go in
  // later runs.
  static constexpr size_t kMaxFilesPerCleanup = 10000;
  static constexpr core::Duration kJournalVacuumTimeout = std::chrono::minutes(2);
  static constexpr core::Duration kImagePruneTimeout = std::chrono::minutes(10);

  DiskPressureMonitor(core::Clock& clock, core::ProcessRunner& processes, HealthBoard& board,
                      FilesystemUsageFunction usage = statFilesystem);
  DiskPressureMonitor(const DiskPressureMonitor&) = delete;
  DiskPressureMonitor& operator=(const DiskPressureMonitor&) = delete;
  ~DiskPressureMonitor();

  // Takes the settings of a new desired state; an absent (empty) message turns
  // monitoring off. The same settings again change nothing, so it may be
  // called with every state. New settings are checked at once, from the loop;
  // the rate limit carries over.
  void configure(const v1::DiskPressure& config);

  // Checks again now if a mount could not be read last time: the converge
  // that just ran may have made it (containerd's /var/lib/containerd comes
  // with its package). Otherwise waits for the check interval.
  void recheckUnreadable();

  DiskPressureStatus status() const;

 private:
  struct FileCleanup {
    std::string pattern;
    core::Duration olderThan{};
    bool operator==(const FileCleanup&) const = default;
  };
  struct Config {
    std::vector<std::string> mounts;
    uint32_t thresholdPercent = kDefaultThresholdPercent;
    core::Duration checkInterval = kDefaultCheckInterval;
    core::Duration minInterval = kDefaultMinInterval;
    std::string journalVacuumSize;
    bool pruneImages = false;
    std::vector<FileCleanup> files;

    bool hasCleanups() const { return !journalVacuumSize.empty() || pruneImages || !files.empty(); }
    bool operator==(const Config&) const = default;
  };
  struct Cleanup;  // one run in progress

  static Config parse(const v1::DiskPressure& config);
  void check();
  std::vector<MountUsage> measure(const std::vector<std::string>& mounts);
  // Sets DiskPressure from usage_; may start a cleanup when over the threshold.
  void evaluate(bool mayClean);
  void startCleanup();
  void vacuumJournal();
  void pruneImages();
  void removeFiles();
  void finishCleanup();

  core::Clock& clock_;
  core::ProcessRunner& processes_;
  HealthBoard& board_;
  FilesystemUsageFunction usageOf_;
  std::optional<Config> config_;  // unset: off
  std::unique_ptr<core::Timer> checkTimer_;
  std::vector<MountUsage> usage_;
  std::optional<core::WallTime> lastCheck_;
  std::optional<core::WallTime> lastCleanupWall_;
  std::optional<core::MonotonicTime> lastCleanup_;
  // Whether the skip of a cleanup for the rate limit was told since the last
  // cleanup: once is enough.
  bool skipNoted_ = false;
  // Errors reading a mount, logged once until they change.
  std::vector<std::string> loggedErrors_;
  std::unique_ptr<Cleanup> cleanup_;
  // Callbacks that outlive the monitor find it gone.
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace nodewarden::heal
