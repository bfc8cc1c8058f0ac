// The agent daemon on a simulated clock, a fake systemd and a temporary root:
// when it converges, what it tells systemd, and which state it enforces when
// the state file is bad.

#include "agent/daemon/daemon.h"

#include <sys/stat.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "agent/core/atomic_file.h"
#include "agent/core/file_lock.h"
#include "agent/core/simulated_clock.h"
#include "agent/daemon/file_watcher.h"
#include "agent/heal/health.h"
#include "tests/fakes/fake_package_manager.h"
#include "tests/fakes/fake_service_notifier.h"
#include "tests/fakes/fake_systemd_manager.h"
#include "tests/unit/converge/converge_test_support.h"

namespace nodewarden::daemon {
namespace {

using namespace std::chrono_literals;
using ::testing::AllOf;
using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::MatchesRegex;
using ::testing::Not;
using ::testing::StartsWith;

constexpr std::string_view kHeader = "apiVersion: nodewarden.io/v1\nkind: NodeState\n";
constexpr std::string_view kGoodBody = R"(
files:
  - path: /srv/app/app.conf
    content: "level = 3\n"
    mode: "0640"
units:
  - name: worker.service
    content: "[Service]\nExecStart=/bin/sleep infinity\n"
    state: running
)";
// A file with an invalid mode after a valid one: none of it may be applied.
constexpr std::string_view kInvalidBody = R"(
files:
  - path: /srv/app/never.conf
    content: "never\n"
  - path: /srv/app/bad.conf
    mode: "0999"
    content: "x\n"
)";
constexpr std::string_view kUnknownOwnerBody = R"(
files:
  - path: /srv/app/app.conf
    content: "level = 3\n"
    mode: "0640"
  - path: /srv/app/never.conf
    content: "never\n"
    owner: nodewarden-no-such-user
units:
  - name: worker.service
    content: "[Service]\nExecStart=/bin/sleep infinity\n"
    state: running
)";
// kGoodBody with worker.service's unit file changed: a running worker restarts.
constexpr std::string_view kNewWorkerBody = R"(
files:
  - path: /srv/app/app.conf
    content: "level = 3\n"
    mode: "0640"
units:
  - name: worker.service
    content: "[Service]\nExecStart=/bin/sleep 1000000\n"
    state: running
)";
constexpr char kWorker[] = "worker.service";
constexpr std::string_view kChecked = "[0-9][0-9]:[0-9][0-9]:[0-9][0-9]";

// Watches nothing: tests call Daemon::stateFileChanged() themselves.
class FakeFileWatcher final : public FileWatcher {
 public:
  core::Status watch(const std::string& path, std::function<void()> changed) override {
    path_ = path;
    changed_ = std::move(changed);
    return core::Status::ok();
  }
  void stop() override {
    path_.clear();
    changed_ = nullptr;
  }
  bool watching() const override { return static_cast<bool>(changed_); }

  const std::string& path() const { return path_; }
  // What an inotify event on the file would do.
  void fileChanged() const { changed_(); }

 private:
  std::string path_;
  std::function<void()> changed_;
};

std::string makeTemporaryDirectory() {
  std::string templ = std::filesystem::temp_directory_path() / "nodewarden-daemon-XXXXXX";
  if (::mkdtemp(templ.data()) == nullptr) {
    ADD_FAILURE() << "mkdtemp " << templ << ": " << std::strerror(errno);
    return {};
  }
  return templ;
}

class DaemonTest : public ::testing::Test {
 protected:
  DaemonTest()
      : directory_(makeTemporaryDirectory()),
        root_(directory_ + "/root"),
        stateDirectory_(directory_ + "/state"),
        stateFile_(directory_ + "/etc/node.yaml"),
        systemd_(fake_, root_ + "/etc/systemd/system") {
    std::filesystem::create_directories(root_);
    std::filesystem::create_directories(stateDirectory_);
    std::filesystem::create_directories(directory_ + "/etc");
  }
  ~DaemonTest() override {
    daemon_.reset();
    if (!directory_.empty()) std::filesystem::remove_all(directory_);
  }

  AgentConfig config(core::Duration driftCheckInterval = 1h) const {
    return {.stateFile = stateFile_, .driftCheckInterval = driftCheckInterval};
  }

  // Builds the daemon as run.cpp does, on the fakes, and starts it.
  void start(AgentConfig agentConfig, converge::Providers providers = {}) {
    daemon_ = std::make_unique<Daemon>(clock_, systemd_, notifier_, watcher_,
                                       Daemon::Options{.config = std::move(agentConfig),
                                                       .stateDirectory = stateDirectory_,
                                                       .root = root_,
                                                       .providers = providers});
    daemon_->start();
  }
  void start() { start(config()); }
  // Starts on `body` and lets the first converge finish.
  void startConverged(std::string_view body) {
    writeState(body);
    start();
    fake_.completeJobs();
    ASSERT_TRUE(notifier_.isReady());
    ASSERT_FALSE(notifier_.lastStatus().starts_with("Applying"));
  }

  static std::string document(std::string_view body) {
    return std::string(kHeader) + std::string(body);
  }
  void writeState(std::string_view body) const {
    core::Status s = core::writeFileAtomic(stateFile_, document(body), {.mode = 0644});
    ASSERT_TRUE(s) << s.message();
  }
  // The state file changes, and settles.
  void changeState(std::string_view body) {
    writeState(body);
    watcher_.fileChanged();
    clock_.advance(kSettleDelay);
  }

  std::string nodePath(const std::string& path) const { return root_ + path; }
  bool exists(const std::string& path) const { return std::filesystem::exists(path); }
  std::string read(const std::string& path) const {
    auto text = core::readFile(path, 1 << 20);
    EXPECT_TRUE(text) << text.status().message();
    return text ? *text : "";
  }
  std::string lastAppliedPath() const { return stateDirectory_ + "/" + kLastAppliedName; }
  struct stat statOf(const std::string& path) const {
    struct stat st {};
    EXPECT_EQ(::stat(path.c_str(), &st), 0) << path << ": " << std::strerror(errno);
    return st;
  }
  // Converges finished so far: each ends with one STATUS= (the first READY=1
  // comes earlier, once its jobs are queued).
  size_t messages() const { return notifier_.messages().size(); }

  void pause(std::optional<std::string> unit, std::optional<core::Duration> duration = {}) {
    auto paused =
        daemon_->pause({.reason = "maintenance", .duration = duration, .unit = std::move(unit)});
    ASSERT_TRUE(paused) << paused.status().message();
  }
  void resume(std::optional<std::string> unit) {
    auto resumed = daemon_->resume(unit);
    ASSERT_TRUE(resumed) << resumed.status().message();
    ASSERT_EQ((*resumed)["resumed"], true);
  }
  size_t count(const std::string& change) const {
    const auto changes = fake_.changes();
    return static_cast<size_t>(std::count(changes.begin(), changes.end(), change));
  }
  std::vector<std::string> eventMessages(const std::string& reason) const {
    std::vector<std::string> messages;
    for (const heal::Event& e : daemon_->health().events()) {
      if (e.reason == reason) messages.push_back(e.subject + ": " + e.message);
    }
    return messages;
  }

  const std::string directory_;
  const std::string root_;
  const std::string stateDirectory_;
  const std::string stateFile_;
  systemd::FakeSystemdManager fake_;
  converge::test::RootedSystemd systemd_;
  core::SimulatedClock clock_;
  FakeServiceNotifier notifier_;
  FakeFileWatcher watcher_;
  std::unique_ptr<Daemon> daemon_;
};

TEST_F(DaemonTest, ReadyOnceTheFirstJobsAreQueuedThenStatusOnceDone) {
  writeState(kGoodBody);

  start();

  EXPECT_EQ(read(nodePath("/srv/app/app.conf")), "level = 3\n");
  ASSERT_GT(fake_.pendingJobs(), 0u);
  EXPECT_THAT(notifier_.messages(), ElementsAre("READY=1\nSTATUS=Applying the first state"));

  fake_.completeJobs();

  ASSERT_EQ(messages(), 2u);
  EXPECT_THAT(notifier_.messages()[1],
              MatchesRegex("STATUS=In desired state, checked " + std::string(kChecked) +
                           "; last drift " + std::string(kChecked) + " \\([0-9]+ changed\\)"));
  EXPECT_EQ(watcher_.path(), stateFile_);
}

// dpkg starts the agent from its package's maintainer script and keeps the
// package database locked until that start returns: a first converge that
// installs packages would wait for the lock before ready, and dpkg for ready.
TEST_F(DaemonTest, ReadyBeforeAFirstPackageTransactionWhenAnotherProcessHoldsTheLock) {
  constexpr std::string_view kSocat = "packages:\n  - name: socat\n";
  for (const bool locked : {true, false}) {
    SCOPED_TRACE(locked ? "locked" : "free");
    packages::FakePackageManager packages;
    packages.setAvailable("socat", {"1.7.4.4-2"});
    if (locked) packages.setLockHolder("64 (dpkg)");
    notifier_ = FakeServiceNotifier();
    writeState(kSocat);
    start(config(), {.packages = &packages});

    ASSERT_TRUE(packages.completeOne());  // observed: planned, the transaction started
    ASSERT_EQ(packages.transactions().size(), 1u);
    ASSERT_EQ(packages.pending(), 1u);
    if (locked) {
      EXPECT_THAT(notifier_.messages(), ElementsAre("READY=1\nSTATUS=Applying the first state"));
    } else {
      EXPECT_FALSE(notifier_.isReady());  // ready once the transaction is done
    }

    packages.complete();
    EXPECT_TRUE(notifier_.isReady());
    EXPECT_EQ(packages.package("socat").installed, "1.7.4.4-2");
    daemon_.reset();
  }
}

TEST_F(DaemonTest, ABurstOfChangesWithinTheSettleDelayConvergesOnce) {
  startConverged(kGoodBody);
  const size_t before = messages();
  std::string changed(kGoodBody);
  changed.replace(changed.find("level = 3"), 9, "level = 4");

  // An editor writing the file in steps, each one within the delay of the last.
  writeState(changed);
  for (int i = 0; i < 5; ++i) {
    watcher_.fileChanged();
    clock_.advance(kSettleDelay / 2);
  }
  clock_.advance(kSettleDelay / 2 - 1ns);
  EXPECT_EQ(messages(), before) << "converged before the file settled";
  EXPECT_EQ(read(nodePath("/srv/app/app.conf")), "level = 3\n");

  clock_.advance(1ns);
  fake_.completeJobs();
  EXPECT_EQ(messages(), before + 1);
  EXPECT_EQ(read(nodePath("/srv/app/app.conf")), "level = 4\n");
  clock_.advance(kSettleDelay * 10);
  EXPECT_EQ(messages(), before + 1);
}

TEST_F(DaemonTest, TriggersWhileConvergingRunOneMoreConvergeAfterIt) {
  writeState(kGoodBody);
  start();
  ASSERT_GT(fake_.pendingJobs(), 0u);

  // Changes, a reload and a drift check while the first converge's jobs run.
  watcher_.fileChanged();
  clock_.advance(kSettleDelay);
  daemon_->requestConverge("test");
  watcher_.fileChanged();
  clock_.advance(kSettleDelay);
  EXPECT_EQ(messages(), 1u) << "a converge started while one was running";

  // The first converge ends; the second finds the node as it should be.
  EXPECT_EQ(fake_.completeJobs(), 1u);
  EXPECT_EQ(messages(), 3u);
  EXPECT_EQ(fake_.pendingJobs(), 0u);
  clock_.advance(kSettleDelay * 10);
  EXPECT_EQ(messages(), 3u);
}

TEST_F(DaemonTest, DriftIsRepairedAtTheDriftCheckIntervalAndNotBefore) {
  writeState(kGoodBody);
  start(config(5min));
  fake_.completeJobs();
  std::filesystem::remove(nodePath("/srv/app/app.conf"));
  const size_t before = messages();

  clock_.advance(5min - 1ns);
  EXPECT_FALSE(exists(nodePath("/srv/app/app.conf")));
  EXPECT_EQ(messages(), before);

  clock_.advance(1ns);
  EXPECT_EQ(read(nodePath("/srv/app/app.conf")), "level = 3\n");
  EXPECT_EQ(messages(), before + 1);
  EXPECT_THAT(notifier_.lastStatus(), HasSubstr("(1 changed)"));
}

TEST_F(DaemonTest, ARejectedStateLeavesTheLastGoodOneInForce) {
  startConverged(kGoodBody);
  std::filesystem::remove(nodePath("/srv/app/app.conf"));

  changeState(kInvalidBody);

  EXPECT_THAT(notifier_.lastStatus(),
              AllOf(HasSubstr("State rejected (" + stateFile_ + ":"), HasSubstr("files[1].mode"),
                    HasSubstr("; enforcing the last good state")));
  EXPECT_EQ(read(nodePath("/srv/app/app.conf")), "level = 3\n");
  EXPECT_FALSE(exists(nodePath("/srv/app/never.conf")));
  EXPECT_EQ(read(lastAppliedPath()), document(kGoodBody));
}

TEST_F(DaemonTest, AStateThatCannotBePlannedLeavesTheLastGoodOneInForce) {
  startConverged(kGoodBody);
  std::filesystem::remove(nodePath("/srv/app/app.conf"));

  changeState(kUnknownOwnerBody);

  EXPECT_THAT(notifier_.lastStatus(),
              AllOf(HasSubstr("Cannot apply the state: "), HasSubstr("nodewarden-no-such-user"),
                    HasSubstr("; enforcing the last good state")));
  EXPECT_EQ(read(nodePath("/srv/app/app.conf")), "level = 3\n");
  EXPECT_FALSE(exists(nodePath("/srv/app/never.conf")));
  EXPECT_EQ(read(lastAppliedPath()), document(kGoodBody));
}

TEST_F(DaemonTest, LastAppliedIsWrittenOnceAndNotOnANoOpConverge) {
  startConverged(kGoodBody);
  const struct stat first = statOf(lastAppliedPath());
  EXPECT_EQ(first.st_mode & 07777, 0600u);
  EXPECT_EQ(read(lastAppliedPath()), document(kGoodBody));

  changeState(kGoodBody);  // rewritten, same text
  fake_.completeJobs();

  const struct stat second = statOf(lastAppliedPath());
  EXPECT_EQ(second.st_ino, first.st_ino);
  EXPECT_EQ(second.st_mtim.tv_sec, first.st_mtim.tv_sec);
  EXPECT_EQ(second.st_mtim.tv_nsec, first.st_mtim.tv_nsec);
  EXPECT_THAT(notifier_.lastStatus(), HasSubstr("In desired state"));
}

TEST_F(DaemonTest, WaitsForTheConvergeLockAndRetries) {
  writeState(kGoodBody);
  // As a one-shot apply would hold it.
  auto lock = core::FileLock::tryAcquire(stateDirectory_ + "/" + kConvergeLockName);
  ASSERT_TRUE(lock) << lock.status().message();
  std::optional<core::FileLock> held(std::move(*lock));

  start();
  clock_.advance(kLockRetryDelay);  // retries, and waits again
  EXPECT_FALSE(exists(nodePath("/srv/app/app.conf")));
  EXPECT_EQ(messages(), 0u);

  held.reset();
  clock_.advance(kLockRetryDelay - 1ns);
  EXPECT_FALSE(exists(nodePath("/srv/app/app.conf")));
  clock_.advance(1ns);
  EXPECT_EQ(read(nodePath("/srv/app/app.conf")), "level = 3\n");
  EXPECT_TRUE(notifier_.isReady());
}

TEST_F(DaemonTest, ALockThatCannotBeOpenedIsReportedNotWaitedFor) {
  writeState(kGoodBody);
  // A directory where the lock file should be: open() fails, nobody holds it.
  std::filesystem::create_directories(stateDirectory_ + "/" + kConvergeLockName);

  start();

  EXPECT_TRUE(notifier_.isReady());
  EXPECT_THAT(notifier_.messages().back(), HasSubstr("Cannot apply the state: open "));
  EXPECT_FALSE(exists(nodePath("/srv/app/app.conf")));
}

TEST_F(DaemonTest, ARetryNoLongerDueOnceAnotherTriggerTookTheLock) {
  writeState(kGoodBody);
  auto lock = core::FileLock::tryAcquire(stateDirectory_ + "/" + kConvergeLockName);
  ASSERT_TRUE(lock) << lock.status().message();
  std::optional<core::FileLock> held(std::move(*lock));
  start();  // waits, retry armed
  held.reset();
  daemon_->requestConverge("reload");  // takes the lock before the retry is due
  fake_.completeJobs();
  const size_t converged = messages();

  clock_.advance(kLockRetryDelay);

  EXPECT_EQ(messages(), converged) << "the stale retry converged again";
}

TEST_F(DaemonTest, ARestartWithAnInvalidStateEnforcesTheLastApplied) {
  startConverged(kGoodBody);
  changeState(kInvalidBody);
  daemon_.reset();
  std::filesystem::remove(nodePath("/srv/app/app.conf"));
  notifier_ = FakeServiceNotifier();

  start();
  fake_.completeJobs();

  EXPECT_TRUE(notifier_.isReady());
  EXPECT_EQ(read(nodePath("/srv/app/app.conf")), "level = 3\n");
  EXPECT_FALSE(exists(nodePath("/srv/app/never.conf")));
  EXPECT_THAT(notifier_.messages().front(),
              AllOf(HasSubstr("READY=1\nSTATUS=State rejected (" + stateFile_ + ":"),
                    HasSubstr("enforcing the last good state")));
}

TEST_F(DaemonTest, NoStateAndNoLastAppliedIsReadyWithNothingToEnforce) {
  start();

  EXPECT_THAT(notifier_.messages(), ElementsAre(AllOf(HasSubstr("READY=1\nSTATUS=State rejected ("),
                                                      HasSubstr("; nothing to enforce"))));
  EXPECT_THAT(fake_.changes(), ElementsAre());
}

TEST_F(DaemonTest, AReloadWithAnotherStateFileWatchesAndEnforcesIt) {
  startConverged(kGoodBody);
  const std::string other = directory_ + "/etc/other.yaml";
  ASSERT_TRUE(core::writeFileAtomic(
      other, document("files:\n  - path: /srv/other.conf\n    content: \"x\\n\"\n"), {}));
  AgentConfig reread = config();
  reread.stateFile = other;

  daemon_->reload(reread);

  EXPECT_EQ(watcher_.path(), other);
  EXPECT_EQ(read(nodePath("/srv/other.conf")), "x\n");
  EXPECT_THAT(notifier_.lastStatus(), Not(HasSubstr("rejected")));
}

TEST_F(DaemonTest, APausedNodeIsConvergedAsADryRunAndResumeAppliesIt) {
  startConverged(kGoodBody);
  pause(std::nullopt);
  EXPECT_THAT(notifier_.lastStatus(), StartsWith("Paused (maintenance); "));
  std::string changed(kGoodBody);
  changed.replace(changed.find("level = 3"), 9, "level = 4");
  fake_.clearCalls();

  changeState(changed);

  EXPECT_EQ(read(nodePath("/srv/app/app.conf")), "level = 3\n");
  EXPECT_EQ(read(lastAppliedPath()), document(kGoodBody)) << "a state never applied was saved";
  EXPECT_THAT(fake_.changes(), IsEmpty());
  EXPECT_THAT(notifier_.lastStatus(),
              AllOf(StartsWith("Paused (maintenance); 1 change held back, checked "),
                    Not(HasSubstr("In desired state"))));
  nlohmann::json status = daemon_->status();
  EXPECT_EQ(status["converge"]["result"], "paused");
  EXPECT_EQ(status["converge"]["changed"], 0);
  EXPECT_EQ(status["converge"]["message"], "1 change held back while paused");
  EXPECT_FALSE(status["converge"].contains("durationMs"));
  EXPECT_EQ(status["paused"]["node"]["reason"], "maintenance");

  resume(std::nullopt);
  fake_.completeJobs();

  EXPECT_EQ(read(nodePath("/srv/app/app.conf")), "level = 4\n");
  EXPECT_EQ(read(lastAppliedPath()), document(changed));
  EXPECT_THAT(notifier_.lastStatus(), StartsWith("In desired state, checked "));
  EXPECT_EQ(daemon_->status()["converge"]["result"], "ok");
  EXPECT_THAT(eventMessages("Resumed"),
              ElementsAre("node: enforcement and healing of the node resumed"));
}

TEST_F(DaemonTest, AUnitThatFailsWhileTheNodeIsPausedIsLeftAloneAndRepairedOnResume) {
  startConverged(kGoodBody);
  pause(std::nullopt);
  fake_.clearCalls();

  fake_.setActivity(kWorker, {.activeState = "failed", .subState = "failed", .result = "signal"});
  daemon_->requestConverge("drift check");
  fake_.completeJobs();

  EXPECT_THAT(fake_.changes(), IsEmpty());
  EXPECT_EQ(fake_.unit(kWorker).activeState, "failed");
  EXPECT_THAT(notifier_.lastStatus(),
              AllOf(HasSubstr("1 change held back"), HasSubstr("1 unit not healthy")));

  resume(std::nullopt);
  fake_.completeJobs();

  EXPECT_EQ(fake_.unit(kWorker).activeState, "active");
  EXPECT_EQ(count("restart worker.service"), 0u);
  EXPECT_THAT(fake_.changes(), Contains("start worker.service"));
  EXPECT_THAT(notifier_.lastStatus(), Not(HasSubstr("not healthy")));
}

TEST_F(DaemonTest, AUnitPausedAloneHasItsJobsHeldBackWhileTheRestIsEnforced) {
  startConverged(kGoodBody);
  pause(kWorker);
  EXPECT_THAT(notifier_.lastStatus(), StartsWith("Paused for worker.service; "));
  fake_.clearCalls();

  // An operator stops it, and a file drifts.
  fake_.setActivity(kWorker, {.activeState = "inactive", .subState = "dead"});
  std::filesystem::remove(nodePath("/srv/app/app.conf"));
  daemon_->requestConverge("drift check");
  fake_.completeJobs();

  EXPECT_EQ(read(nodePath("/srv/app/app.conf")), "level = 3\n");
  EXPECT_EQ(count("start worker.service"), 0u);
  EXPECT_EQ(fake_.unit(kWorker).activeState, "inactive");
  EXPECT_EQ(daemon_->status()["converge"]["failed"], 0);

  resume(kWorker);
  fake_.completeJobs();

  EXPECT_EQ(fake_.unit(kWorker).activeState, "active");
  EXPECT_THAT(notifier_.lastStatus(), StartsWith("In desired state"));
  EXPECT_THAT(eventMessages("Resumed"),
              ElementsAre("worker.service: enforcement and healing of worker.service resumed"));
}

TEST_F(DaemonTest, ARestartHeldBackForAPausedUnitIsOwedUntilItResumes) {
  startConverged(kGoodBody);
  pause(kWorker);
  fake_.clearCalls();

  changeState(kNewWorkerBody);  // its unit file is rewritten, its restart held back
  fake_.completeJobs();
  EXPECT_EQ(count("restart worker.service"), 0u);
  daemon_->requestConverge("drift check");  // the file matches now
  fake_.completeJobs();
  EXPECT_EQ(count("restart worker.service"), 0u);

  resume(kWorker);
  fake_.completeJobs();

  EXPECT_EQ(count("restart worker.service"), 1u) << "the worker still runs its old command";
  daemon_->requestConverge("drift check");
  fake_.completeJobs();
  EXPECT_EQ(count("restart worker.service"), 1u);
}

TEST_F(DaemonTest, ARestartHeldBackForAPausedUnitSurvivesAnAgentRestart) {
  startConverged(kGoodBody);
  pause(kWorker);
  changeState(kNewWorkerBody);
  fake_.completeJobs();
  daemon_.reset();
  notifier_ = FakeServiceNotifier();
  fake_.clearCalls();

  start();
  fake_.completeJobs();
  EXPECT_EQ(count("restart worker.service"), 0u) << "the pause was not kept";
  resume(kWorker);
  fake_.completeJobs();

  EXPECT_EQ(count("restart worker.service"), 1u);
}

TEST_F(DaemonTest, AUnitsPauseEndingOnTimeAppliesWhatItHeldBack) {
  startConverged(kGoodBody);
  pause(kWorker, 10min);
  fake_.clearCalls();
  changeState(kNewWorkerBody);
  fake_.completeJobs();
  ASSERT_EQ(count("restart worker.service"), 0u);

  clock_.advance(10min);
  fake_.completeJobs();

  EXPECT_EQ(count("restart worker.service"), 1u);
  EXPECT_THAT(notifier_.lastStatus(), Not(HasSubstr("Paused")));
  EXPECT_THAT(eventMessages("Resumed"),
              ElementsAre("worker.service: enforcement and healing of worker.service resumed: "
                          "the pause ended (maintenance)"));
}

TEST_F(DaemonTest, StatusSaysWhenAUnitIsNotHealthyBetweenConverges) {
  startConverged(kGoodBody);
  ASSERT_THAT(notifier_.lastStatus(), Not(HasSubstr("not healthy")));

  fake_.setActivity(kWorker, {.activeState = "failed", .subState = "failed", .result = "signal"});
  EXPECT_THAT(notifier_.lastStatus(), HasSubstr("; 1 unit not healthy"));

  fake_.completeJobs();  // the healer's start
  EXPECT_EQ(fake_.unit(kWorker).activeState, "active");
  EXPECT_THAT(notifier_.lastStatus(),
              AllOf(StartsWith("In desired state, checked "), Not(HasSubstr("not healthy"))));
}

TEST_F(DaemonTest, AUnitTheNewStateStopsIsNotRestartedByAPendingBackoff) {
  startConverged(kGoodBody);
  fake_.setActivity(kWorker, {.activeState = "failed", .subState = "failed", .result = "signal"});
  fake_.completeJobs();  // started again at once
  fake_.setActivity(kWorker, {.activeState = "failed", .subState = "failed", .result = "signal"});
  ASSERT_EQ(count("start worker.service"), 2u) << "the first converge's and the healer's";
  std::string stopped(kGoodBody);
  stopped.replace(stopped.find("state: running"), 14, "state: stopped");

  changeState(stopped);  // while the next restart waits out its backoff
  fake_.completeJobs();
  clock_.advance(10min);
  fake_.completeJobs();

  EXPECT_EQ(count("start worker.service"), 2u);
  EXPECT_EQ(fake_.unit(kWorker).activeState, "failed");
  EXPECT_EQ(daemon_->health().get(kWorker, heal::condition::kHealthy), nullptr);
}

TEST_F(DaemonTest, ARestartOwedByAnInterruptedRunWaitsOutANodePause) {
  startConverged(kGoodBody);
  pause(std::nullopt);
  // As a run killed before its restart left it.
  ASSERT_TRUE(
      converge::RestartLedger(stateDirectory_ + "/" + kRestartLedgerName).record({kWorker}));
  fake_.clearCalls();

  daemon_->requestConverge("drift check");
  fake_.completeJobs();
  EXPECT_THAT(fake_.changes(), IsEmpty());
  EXPECT_THAT(notifier_.lastStatus(), HasSubstr("1 change held back"));

  resume(std::nullopt);
  fake_.completeJobs();
  EXPECT_THAT(fake_.changes(), ElementsAre("restart worker.service"));
}

TEST_F(DaemonTest, ConditionsOfUnitsNoLongerInTheStateAreDropped) {
  {
    // As an agent that managed old.service left them.
    heal::HealthBoard earlier(clock_, stateDirectory_ + "/" + kHealthName);
    earlier.set("old.service", heal::condition::kHealthy, false, "Failed", "old.service failed");
    earlier.set(kWorker, heal::condition::kCrashLooping, true, "RestartedTooOften", "");
    ASSERT_TRUE(earlier.flush());
  }
  startConverged(kGoodBody);

  const heal::HealthBoard& board = daemon_->health();
  EXPECT_EQ(board.get("old.service", heal::condition::kHealthy), nullptr);
  EXPECT_FALSE(board.holds(kWorker, heal::condition::kCrashLooping));
  EXPECT_TRUE(board.holds(kWorker, heal::condition::kHealthy));
}

}  // namespace
}  // namespace nodewarden::daemon
