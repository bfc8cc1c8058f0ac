// DiskPressureMonitor on simulated time, a fake process runner and a usage
// table: the condition follows the usage, cleanups run above the threshold at
// most once per interval and each is reported, and file cleanup removes only
// old regular files matching its patterns, a bounded number per run.

#include "agent/heal/disk_pressure.h"

#include <fcntl.h>
#include <grp.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "agent/core/simulated_clock.h"
#include "agent/core/unique_fd.h"
#include "agent/heal/health.h"
#include "nodewarden/v1/state.pb.h"
#include "tests/fakes/fake_process_runner.h"

namespace nodewarden::heal {
namespace {

using namespace std::chrono_literals;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::StartsWith;

class DiskPressureTest : public ::testing::Test {
 protected:
  DiskPressureTest() {
    runner_.respond({"journalctl"}, 0, "",
                    "Vacuuming done, freed 1.5G of archived journals from /var/log/journal/ab.\n"
                    "Vacuuming done, freed 512.0M of archived journals from /run/log/journal.\n");
    runner_.respond({"crictl", "rmi", "--prune"}, 0,
                    "Deleted: docker.io/library/nginx:1.25\nDeleted: registry.k8s.io/pause:3.9\n");
  }
  ~DiskPressureTest() override {
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }

  // Percent full of each mount; a mount not in it cannot be read.
  void setUsage(const std::string& mount, double percent) { usage_[mount] = percent; }

  core::Result<FilesystemUsage> usageOf(const std::string& mount) {
    ++usageReads_;
    auto it = usage_.find(mount);
    if (it == usage_.end()) return core::Status::fromErrno(ENOENT, "statvfs " + mount);
    return FilesystemUsage{.usedBytes = static_cast<uint64_t>(it->second * 1000),
                           .availableBytes = static_cast<uint64_t>((100 - it->second) * 1000)};
  }

  const Condition* pressure() const { return board_.get(kNodeSubject, condition::kDiskPressure); }

  std::vector<Event> eventsWith(const std::string& reason) const {
    std::vector<Event> found;
    for (const Event& e : board_.events()) {
      if (e.reason == reason) found.push_back(e);
    }
    return found;
  }

  std::string makeDir() {
    std::string templ = (std::filesystem::temp_directory_path() / "nodewarden-disk-XXXXXX");
    if (::mkdtemp(templ.data()) == nullptr) ADD_FAILURE() << "mkdtemp: " << std::strerror(errno);
    dir_ = templ;
    return dir_;
  }

  // A file of `size` bytes last modified `age` before the monitor's now.
  void makeFile(const std::string& path, size_t size, core::Duration age) {
    std::ofstream(path) << std::string(size, 'x');
    setAge(path, age, 0);
  }
  void setAge(const std::string& path, core::Duration age, int flags) {
    const auto when = clock_.wallNow() - age;
    const auto since = when.time_since_epoch();
    const auto secs = std::chrono::floor<std::chrono::seconds>(since);
    const struct timespec times[2] = {
        {.tv_sec = secs.count(), .tv_nsec = 0},
        {.tv_sec = secs.count(), .tv_nsec = 0},
    };
    ASSERT_EQ(::utimensat(AT_FDCWD, path.c_str(), times, flags), 0)
        << path << ": " << std::strerror(errno);
  }
  // Runs `scenario` in a child that is not root, since root removes files
  // even from a read-only directory, and returns what the scenario returned,
  // or why it could not run. Root's child becomes nobody, who is given the
  // test directory first. The child works on its own copy of the fixture, so
  // what it saw comes back only as text; it never returns into the test
  // runner.
  std::string runWithoutRoot(const std::function<std::string()>& scenario) {
    constexpr uid_t kNobody = 65534;
    const bool root = ::geteuid() == 0;
    if (root && !dir_.empty()) {
      std::error_code error;
      for (const auto& entry : std::filesystem::recursive_directory_iterator(dir_, error)) {
        if (::lchown(entry.path().c_str(), kNobody, kNobody) != 0) {
          ADD_FAILURE() << "chown " << entry.path() << ": " << std::strerror(errno);
        }
      }
      EXPECT_FALSE(error) << "walk " << dir_ << ": " << error.message();
      EXPECT_EQ(::lchown(dir_.c_str(), kNobody, kNobody), 0)
          << "chown " << dir_ << ": " << std::strerror(errno);
    }
    int pipeFds[2];
    if (::pipe2(pipeFds, O_CLOEXEC) != 0) {
      ADD_FAILURE() << "pipe: " << std::strerror(errno);
      return "";
    }
    core::UniqueFd readEnd(pipeFds[0]), writeEnd(pipeFds[1]);
    const pid_t pid = ::fork();
    if (pid < 0) {
      ADD_FAILURE() << "fork: " << std::strerror(errno);
      return "";
    }
    if (pid == 0) {
      int code = 0;
      std::string output;
      if (root && (::setgroups(0, nullptr) != 0 || ::setresgid(kNobody, kNobody, kNobody) != 0 ||
                   ::setresuid(kNobody, kNobody, kNobody) != 0)) {
        output = std::string("give up root: ") + std::strerror(errno);
        code = 1;
      } else if (!dir_.empty() && ::access(dir_.c_str(), R_OK | X_OK) != 0) {
        // A temporary directory under a path closed to nobody.
        output = "reach " + dir_ + " as uid " + std::to_string(::geteuid()) + ": " +
                 std::strerror(errno);
        code = 1;
      } else {
        output = scenario();
      }
      for (size_t done = 0; done < output.size();) {
        const ssize_t n = ::write(writeEnd.get(), output.data() + done, output.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) ::_exit(2);
        done += static_cast<size_t>(n);
      }
      ::_exit(code);
    }
    writeEnd.reset();
    std::string output;
    char buffer[4096];
    for (;;) {
      const ssize_t n = ::read(readEnd.get(), buffer, sizeof buffer);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      output.append(buffer, static_cast<size_t>(n));
    }
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
        << "the unprivileged child ended with status " << status << ": " << output;
    return output;
  }
  static std::vector<std::string> linesOf(const std::string& text) {
    std::vector<std::string> lines;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) lines.push_back(line);
    return lines;
  }
  static bool exists(const std::string& path) {
    struct stat st {};
    return ::lstat(path.c_str(), &st) == 0;
  }

  core::SimulatedClock clock_;
  core::FakeProcessRunner runner_;
  HealthBoard board_{clock_, ""};
  std::map<std::string, double> usage_{{"/", 40}};
  size_t usageReads_ = 0;
  DiskPressureMonitor monitor_{clock_, runner_, board_,
                               [this](const std::string& mount) { return usageOf(mount); }};
  std::string dir_;
};

v1::DiskPressure cleanups() {
  v1::DiskPressure config;
  config.set_journal_vacuum_size("200M");
  config.set_prune_images(true);
  return config;
}

TEST_F(DiskPressureTest, AbsentSettingsMonitorNothing) {
  monitor_.configure(v1::DiskPressure());
  setUsage("/", 99);
  clock_.advance(1h);

  EXPECT_EQ(pressure(), nullptr);
  EXPECT_THAT(runner_.commands(), IsEmpty());
  EXPECT_EQ(usageReads_, 0u);
  EXPECT_EQ(clock_.armedTimers(), 0u);
  EXPECT_FALSE(monitor_.status().enabled);
}

TEST_F(DiskPressureTest, UsageBelowThresholdIsReportedWithoutCleaning) {
  monitor_.configure(cleanups());
  clock_.advance(0s);

  ASSERT_NE(pressure(), nullptr);
  EXPECT_FALSE(pressure()->status);
  EXPECT_EQ(pressure()->reason, "UsageBelowThreshold");
  EXPECT_THAT(pressure()->message, HasSubstr("/ is 40% full"));
  EXPECT_THAT(pressure()->message, HasSubstr("85%"));
  EXPECT_THAT(runner_.commands(), IsEmpty());
  EXPECT_THAT(board_.events(), IsEmpty());
}

TEST_F(DiskPressureTest, UsageAboveThresholdRaisesPressureAndRunsEachCleanupOnceInTurn) {
  v1::DiskPressure config = cleanups();
  config.add_mounts("/");
  config.add_mounts("/var/lib/containerd");
  setUsage("/", 91.5);
  setUsage("/var/lib/containerd", 50);
  monitor_.configure(config);
  clock_.advance(0s);

  ASSERT_NE(pressure(), nullptr);
  EXPECT_TRUE(pressure()->status);
  EXPECT_EQ(pressure()->reason, "UsageAboveThreshold");
  // Rounded up, as df shows it.
  EXPECT_THAT(pressure()->message, HasSubstr("/ is 92% full"));
  EXPECT_THAT(pressure()->message, Not(HasSubstr("containerd")));
  // One cleanup at a time: the prune waits for the vacuum.
  EXPECT_THAT(runner_.commands(), ElementsAre("journalctl --vacuum-size=200M"));
  EXPECT_TRUE(monitor_.status().cleanupRunning);

  setUsage("/", 70);
  runner_.complete();

  EXPECT_THAT(runner_.commands(),
              ElementsAre("journalctl --vacuum-size=200M", "crictl rmi --prune"));
  ASSERT_EQ(eventsWith("DiskCleanup").size(), 1u);
  const Event cleanup = eventsWith("DiskCleanup")[0];
  EXPECT_EQ(cleanup.subject, kNodeSubject);
  EXPECT_FALSE(cleanup.warning);
  EXPECT_THAT(cleanup.message, HasSubstr("/ 92% → 70%"));
  EXPECT_THAT(cleanup.message, HasSubstr("/var/lib/containerd 50% → 50%"));
  EXPECT_THAT(cleanup.message, HasSubstr("journal vacuumed to 200M, freeing 2.0 GiB"));
  EXPECT_THAT(cleanup.message, HasSubstr("2 unused images removed"));
  // The cleanup's own measure lowers the condition at once.
  EXPECT_FALSE(pressure()->status);
  EXPECT_EQ(pressure()->reason, "UsageBelowThreshold");
  EXPECT_FALSE(monitor_.status().cleanupRunning);
}

TEST_F(DiskPressureTest, CleanupsRunAtMostOncePerMinimumIntervalAndTheSkipIsToldOnce) {
  v1::DiskPressure config;
  config.set_journal_vacuum_size("100M");
  config.set_check_interval("1m");
  config.set_min_interval("10m");
  setUsage("/", 95);
  monitor_.configure(config);
  clock_.advance(0s);
  runner_.complete();
  ASSERT_EQ(runner_.commands().size(), 1u);
  ASSERT_EQ(eventsWith("DiskCleanup").size(), 1u);
  EXPECT_TRUE(pressure()->status);

  clock_.advance(1min);
  EXPECT_EQ(runner_.pending(), 0u);
  ASSERT_EQ(eventsWith("DiskCleanupSkipped").size(), 1u);
  EXPECT_THAT(eventsWith("DiskCleanupSkipped")[0].message, HasSubstr("the next may run in 9m"));

  clock_.advance(8min);
  EXPECT_EQ(runner_.commands().size(), 1u);
  EXPECT_EQ(eventsWith("DiskCleanupSkipped").size(), 1u);
  EXPECT_TRUE(pressure()->status);

  clock_.advance(1min);  // 10m after the first
  runner_.complete();
  EXPECT_EQ(runner_.commands().size(), 2u);
  EXPECT_EQ(eventsWith("DiskCleanup").size(), 2u);
}

TEST_F(DiskPressureTest, PressureClearsWhenUsageFallsBackAndTheCheckRepeats) {
  v1::DiskPressure config;
  config.set_threshold_percent(80);
  config.set_check_interval("30s");
  setUsage("/", 81);
  monitor_.configure(config);
  clock_.advance(0s);
  EXPECT_TRUE(pressure()->status);
  // Without cleanups configured, only the condition.
  EXPECT_THAT(runner_.commands(), IsEmpty());

  setUsage("/", 79);
  clock_.advance(29s);
  EXPECT_TRUE(pressure()->status);
  clock_.advance(1s);
  EXPECT_FALSE(pressure()->status);
  EXPECT_EQ(pressure()->reason, "UsageBelowThreshold");
  EXPECT_THAT(pressure()->message, HasSubstr("within the threshold of 80%"));
}

TEST_F(DiskPressureTest, FailedCleanupsAreReportedInOneWarningAndTheRestStillRuns) {
  runner_.clearResponses();  // no crictl on this node
  runner_.respond({"journalctl"}, 1, "", "Failed to open journal directory: Permission denied\n");
  setUsage("/", 90);
  monitor_.configure(cleanups());
  clock_.advance(0s);
  runner_.complete();

  EXPECT_THAT(runner_.commands(),
              ElementsAre("journalctl --vacuum-size=200M", "crictl rmi --prune"));
  ASSERT_EQ(eventsWith("DiskCleanup").size(), 1u);
  const Event cleanup = eventsWith("DiskCleanup")[0];
  EXPECT_TRUE(cleanup.warning);
  EXPECT_THAT(cleanup.message,
              HasSubstr("journalctl --vacuum-size=200M exited with status 1: Failed to open "
                        "journal directory: Permission denied"));
  EXPECT_THAT(cleanup.message, HasSubstr("crictl rmi --prune: run crictl: No such file"));
  EXPECT_TRUE(pressure()->status);
}

TEST_F(DiskPressureTest, FileCleanupRemovesOnlyOldRegularFilesMatchingThePattern) {
  const std::string dir = makeDir();
  ASSERT_EQ(::mkdir((dir + "/pods").c_str(), 0755), 0);
  ASSERT_EQ(::mkdir((dir + "/outside").c_str(), 0755), 0);
  makeFile(dir + "/pods/app.log.1", 1000, 8 * 24h);
  makeFile(dir + "/pods/app.log.2", 500, 30 * 24h);
  makeFile(dir + "/pods/app.log.3", 300, 1h);      // too young
  makeFile(dir + "/pods/app.log", 700, 30 * 24h);  // does not match
  ASSERT_EQ(::mkdir((dir + "/pods/old.log.d").c_str(), 0755), 0);
  setAge(dir + "/pods/old.log.d", 30 * 24h, 0);
  makeFile(dir + "/outside/secret", 100, 30 * 24h);
  ASSERT_EQ(::symlink((dir + "/outside/secret").c_str(), (dir + "/pods/link.log.9").c_str()), 0);
  setAge(dir + "/pods/link.log.9", 30 * 24h, AT_SYMLINK_NOFOLLOW);

  v1::DiskPressure config;
  v1::FileCleanup* logs = config.add_files();
  logs->set_pattern(dir + "/pods/*.log.*");
  logs->set_older_than("7d");
  setUsage("/", 90);
  monitor_.configure(config);
  clock_.advance(0s);

  EXPECT_FALSE(exists(dir + "/pods/app.log.1"));
  EXPECT_FALSE(exists(dir + "/pods/app.log.2"));
  EXPECT_TRUE(exists(dir + "/pods/app.log.3"));
  EXPECT_TRUE(exists(dir + "/pods/app.log"));
  EXPECT_TRUE(exists(dir + "/pods/old.log.d"));
  EXPECT_TRUE(exists(dir + "/pods/link.log.9"));
  EXPECT_TRUE(exists(dir + "/outside/secret"));
  ASSERT_EQ(eventsWith("DiskCleanup").size(), 1u);
  EXPECT_THAT(eventsWith("DiskCleanup")[0].message, HasSubstr("2 files removed (1.5 KiB)"));
  EXPECT_FALSE(eventsWith("DiskCleanup")[0].warning);
  EXPECT_THAT(runner_.commands(), IsEmpty());
}

TEST_F(DiskPressureTest, FileCleanupStopsAtItsBoundAndGoesOnInTheNextRun) {
  const std::string dir = makeDir();
  const size_t total = DiskPressureMonitor::kMaxFilesPerCleanup + 5;
  for (size_t i = 0; i < total; ++i) makeFile(dir + "/f" + std::to_string(i), 0, 48h);

  v1::DiskPressure config;
  config.set_min_interval("10m");
  v1::FileCleanup* files = config.add_files();
  files->set_pattern(dir + "/f*");
  files->set_older_than("1d");
  setUsage("/", 90);
  monitor_.configure(config);
  clock_.advance(0s);

  size_t left = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    (void)entry;
    ++left;
  }
  EXPECT_EQ(left, 5u);
  ASSERT_EQ(eventsWith("DiskCleanup").size(), 1u);
  EXPECT_THAT(eventsWith("DiskCleanup")[0].message, HasSubstr("10000 files removed"));
  EXPECT_THAT(eventsWith("DiskCleanup")[0].message, HasSubstr("stopped at 10000 files"));

  clock_.advance(10min);
  EXPECT_TRUE(std::filesystem::is_empty(dir));
  ASSERT_EQ(eventsWith("DiskCleanup").size(), 2u);
  EXPECT_THAT(eventsWith("DiskCleanup")[1].message, HasSubstr("5 files removed"));
}

TEST_F(DiskPressureTest, AnUnremovableFileIsAFailureOfTheRun) {
  const std::string dir = makeDir();
  ASSERT_EQ(::mkdir((dir + "/locked").c_str(), 0755), 0);
  makeFile(dir + "/locked/a.log", 10, 48h);
  ASSERT_EQ(::chmod((dir + "/locked").c_str(), 0555), 0);

  v1::DiskPressure config;
  config.add_files()->set_pattern(dir + "/locked/*.log");
  setUsage("/", 90);
  const std::string outcome = runWithoutRoot([&] {
    monitor_.configure(config);
    clock_.advance(0s);
    std::string cleanups;
    for (const Event& e : eventsWith("DiskCleanup")) {
      cleanups += (e.warning ? "warning: " : "normal: ") + e.message + "\n";
    }
    return cleanups;
  });
  ASSERT_EQ(::chmod((dir + "/locked").c_str(), 0755), 0);

  EXPECT_THAT(linesOf(outcome),
              ElementsAre(AllOf(StartsWith("warning: "),
                                HasSubstr("remove " + dir + "/locked/a.log: Permission denied"))))
      << outcome;
  EXPECT_TRUE(exists(dir + "/locked/a.log"));
}

TEST_F(DiskPressureTest, TheSameSettingsAgainChangeNothingAndRemovingThemLowersTheCondition) {
  v1::DiskPressure config;
  config.set_check_interval("5m");
  setUsage("/", 90);
  monitor_.configure(config);
  clock_.advance(0s);
  ASSERT_TRUE(pressure()->status);
  const size_t reads = usageReads_;

  monitor_.configure(config);
  clock_.advance(0s);
  EXPECT_EQ(usageReads_, reads);  // no new check before the interval

  monitor_.configure(v1::DiskPressure());
  EXPECT_FALSE(pressure()->status);
  EXPECT_EQ(pressure()->reason, "NotMonitored");
  clock_.advance(1h);
  EXPECT_EQ(usageReads_, reads);
  EXPECT_EQ(clock_.armedTimers(), 0u);
}

TEST_F(DiskPressureTest, AnUnreadableMountIsReportedAndTheOthersStillCount) {
  v1::DiskPressure config;
  config.add_mounts("/");
  config.add_mounts("/data");
  monitor_.configure(config);
  clock_.advance(0s);

  EXPECT_FALSE(pressure()->status);
  EXPECT_THAT(pressure()->message, HasSubstr("statvfs /data: No such file or directory"));
  const DiskPressureStatus status = monitor_.status();
  EXPECT_TRUE(status.enabled);
  EXPECT_EQ(status.lastCheck, clock_.wallNow());
  ASSERT_EQ(status.mounts.size(), 2u);
  EXPECT_EQ(status.mounts[0].mount, "/");
  EXPECT_DOUBLE_EQ(status.mounts[0].percent.value_or(-1), 40);
  EXPECT_EQ(status.mounts[1].mount, "/data");
  EXPECT_FALSE(status.mounts[1].percent.has_value());
  EXPECT_THAT(status.mounts[1].error, HasSubstr("No such file"));
  EXPECT_FALSE(status.lastCleanup.has_value());
}

TEST_F(DiskPressureTest, AMountThatWasMissingIsReadAgainWhenAsked) {
  v1::DiskPressure config;
  config.add_mounts("/");
  config.add_mounts("/var/lib/containerd");
  monitor_.configure(config);
  clock_.advance(0s);
  ASSERT_THAT(pressure()->message, HasSubstr("could not read"));
  const size_t reads = usageReads_;

  // A converge installed containerd: its directory is there now.
  setUsage("/var/lib/containerd", 50);
  monitor_.recheckUnreadable();
  EXPECT_EQ(pressure()->message,
            "/ is 40% full, /var/lib/containerd is 50% full, within the threshold of 85%");
  EXPECT_EQ(usageReads_, reads + 2);

  // Every mount read: nothing to read again before the check interval.
  monitor_.recheckUnreadable();
  EXPECT_EQ(usageReads_, reads + 2);
}

TEST_F(DiskPressureTest, StatusTellsWhenTheLastCleanupStarted) {
  setUsage("/", 90);
  monitor_.configure(cleanups());
  clock_.advance(0s);
  const core::WallTime started = clock_.wallNow();
  clock_.advance(5s);
  EXPECT_TRUE(monitor_.status().cleanupRunning);
  runner_.complete();

  const DiskPressureStatus status = monitor_.status();
  EXPECT_EQ(status.lastCleanup, started);
  EXPECT_FALSE(status.cleanupRunning);
}

TEST_F(DiskPressureTest, ACleanupOutlivingTheMonitorIsDropped) {
  setUsage("/", 90);
  {
    DiskPressureMonitor monitor(clock_, runner_, board_,
                                [this](const std::string& mount) { return usageOf(mount); });
    monitor.configure(cleanups());
    clock_.advance(0s);
    ASSERT_EQ(runner_.pending(), 1u);
  }
  EXPECT_EQ(runner_.complete(), 1u);
  EXPECT_THAT(eventsWith("DiskCleanup"), IsEmpty());
}

TEST(FilesystemUsageTest, PercentIsDfsUseOfUsedAndAvailable) {
  // Blocks reserved for root are neither: 85 used, 10 available, 5 reserved.
  const FilesystemUsage usage{.usedBytes = 85, .availableBytes = 10};
  EXPECT_NEAR(usage.percent(), 89.47, 0.01);
  EXPECT_EQ(FilesystemUsage{}.percent(), 0);
}

TEST(FilesystemUsageTest, StatFilesystemReadsARealMountAndNamesAMissingOne) {
  auto root = statFilesystem("/");
  ASSERT_TRUE(root.isOk()) << root.status().message();
  EXPECT_GT(root->usedBytes + root->availableBytes, 0u);
  EXPECT_GE(root->percent(), 0);
  EXPECT_LE(root->percent(), 100);

  auto missing = statFilesystem("/nonexistent/mount");
  ASSERT_FALSE(missing.isOk());
  EXPECT_THAT(missing.status().message(), HasSubstr("statvfs /nonexistent/mount"));
}

}  // namespace
}  // namespace nodewarden::heal
