// BusSystemdManager against a real systemd. Runs as root inside a test node
// (see tests/integration/test_systemd_client.py), never on a developer's host:
// it creates, starts and removes units named nwtest-*.

#include <signal.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "agent/core/loop.h"
#include "agent/systemd/bus_handles.h"
#include "agent/systemd/bus_systemd_manager.h"

namespace nodewarden::systemd {
namespace {

using namespace std::chrono_literals;
using Code = core::Status::Code;

const std::filesystem::path kUnitDirectory = "/etc/systemd/system";

void writeFile(const std::filesystem::path& path, const std::string& content) {
  std::filesystem::create_directories(path.parent_path());
  std::ofstream(path) << content;
}

void shell(const std::string& command) { ASSERT_EQ(std::system(command.c_str()), 0) << command; }

std::string describe(const UnitActivity& a) {
  std::ostringstream text;
  text << a.activeState << "/" << a.subState << " result=" << a.result << " pid=" << a.mainPid
       << " job=" << a.jobPending << " restarts=" << a.restarts;
  return text.str();
}

// Every activity a watch's callback heard, in order.
using Heard = std::vector<UnitActivity>;

std::string describe(const Heard& heard) {
  std::string text;
  for (const UnitActivity& a : heard) text += "\n  " + describe(a);
  return text;
}

// The manager promises never to report the same activity twice in a row.
void expectNoRepeats(const Heard& heard) {
  for (size_t i = 1; i < heard.size(); ++i) {
    EXPECT_NE(heard[i], heard[i - 1]) << "reported twice in a row:" << describe(heard);
  }
}

// Counts the PropertiesChanged signals systemd sends for one unit, on a
// connection of its own: evidence that systemd repeated itself while the
// watch stayed quiet.
class SignalCounter {
 public:
  SignalCounter(core::Loop& loop, const std::string& unit) {
    sd_bus* raw = nullptr;
    EXPECT_GE(sd_bus_new(&raw), 0);
    bus_.reset(raw);
    sd_bus_set_address(raw, "unix:path=/run/systemd/private");
    EXPECT_GE(sd_bus_start(raw), 0);
    EXPECT_GE(sd_bus_attach_event(raw, loop.event(), 0), 0);
    char* path = nullptr;
    sd_bus_path_encode("/org/freedesktop/systemd1/unit", unit.c_str(), &path);
    sd_bus_slot* slot = nullptr;
    EXPECT_GE(sd_bus_match_signal(raw, &slot, nullptr, path, "org.freedesktop.DBus.Properties",
                                  "PropertiesChanged", &SignalCounter::onSignal, this),
              0);
    std::free(path);
    match_.reset(slot);
    EXPECT_GE(
        sd_bus_call_method(raw, "org.freedesktop.systemd1", "/org/freedesktop/systemd1",
                           "org.freedesktop.systemd1.Manager", "Subscribe", nullptr, nullptr, ""),
        0);
  }
  int count() const { return count_; }

 private:
  static int onSignal(sd_bus_message*, void* userdata, sd_bus_error*) {
    ++static_cast<SignalCounter*>(userdata)->count_;
    return 0;
  }

  BusPtr bus_;
  SlotPtr match_;
  int count_ = 0;
};

class SystemdClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(geteuid(), 0u) << "run as root inside a test node";
    auto loop = core::Loop::create();
    ASSERT_TRUE(loop.isOk()) << loop.status().message();
    loop_ = std::move(loop).value();
    clock_ = std::make_unique<core::LoopClock>(*loop_);
    connect(30s);
  }

  void TearDown() override {
    manager_.reset();
    // Whatever a test left behind goes, so the next one starts clean.
    std::system(
        "systemctl stop 'nwtest-*' 2>/dev/null; systemctl disable nwtest-sleep.service "
        ">/dev/null 2>&1; rm -rf /etc/systemd/system/nwtest-* "
        "/run/systemd/system.control/nwtest-*; "
        "systemctl daemon-reload; "
        "systemctl reset-failed 'nwtest-*' 2>/dev/null");
  }

  void connect(core::Duration jobTimeout) {
    manager_.reset();
    auto manager = BusSystemdManager::connect(*loop_, *clock_, jobTimeout);
    ASSERT_TRUE(manager.isOk()) << manager.status().message();
    manager_ = std::move(manager).value();
    // The pytest wrapper checks which way the manager reached systemd.
    std::cerr << "connected to systemd through " << manager_->address() << "\n";
  }

  void writeUnit(const std::string& name, const std::string& content) {
    writeFile(kUnitDirectory / name, content);
  }

  // Queues a job and runs the loop until its callback; checks that the
  // callback never runs inside runJob().
  core::Status runJob(JobKind kind, const std::string& unit) {
    std::optional<core::Status> result;
    manager_->runJob(kind, unit, [&result](core::Status status) { result = std::move(status); });
    EXPECT_FALSE(result.has_value()) << "the callback ran inside runJob()";
    return wait(result);
  }

  core::Status wait(std::optional<core::Status>& result) {
    bool gaveUp = false;
    auto guard = clock_->createTimer([&gaveUp] { gaveUp = true; });
    guard->armIn(60s);
    core::Status loop = loop_->runUntil([&] { return result.has_value() || gaveUp; });
    if (!loop) return loop;
    if (!result) return core::Status::internal("the test gave up waiting for the job");
    return *result;
  }

  // Runs the loop until `done`, for at most `limit`; says whether `done` came.
  bool runUntil(const std::function<bool()>& done, core::Duration limit = 10s) {
    bool gaveUp = false;
    auto guard = clock_->createTimer([&gaveUp] { gaveUp = true; });
    guard->armIn(limit);
    EXPECT_TRUE(loop_->runUntil([&] { return done() || gaveUp; }).isOk());
    return done();
  }

  // Runs the loop for `duration`, letting whatever signals come in arrive.
  void runFor(core::Duration duration) {
    bool over = false;
    auto timer = clock_->createTimer([&over] { over = true; });
    timer->armIn(duration);
    EXPECT_TRUE(loop_->runUntil([&] { return over; }).isOk());
  }

  // Watches `unit` and returns what its callback hears from now on; checks that
  // the callback never runs inside watchUnit().
  std::shared_ptr<Heard> watch(const std::string& unit, UnitActivity& now) {
    auto heard = std::make_shared<Heard>();
    auto activity = manager_->watchUnit(
        unit, [heard](const std::string&, const UnitActivity& a) { heard->push_back(a); });
    EXPECT_TRUE(activity.isOk()) << activity.status().message();
    EXPECT_TRUE(heard->empty()) << "the callback ran inside watchUnit()";
    if (activity.isOk()) now = *activity;
    return heard;
  }

  // Whether the callback has heard `predicate` hold, waiting up to 10 s for it.
  bool hears(const std::shared_ptr<Heard>& heard,
             const std::function<bool(const UnitActivity&)>& predicate) {
    return runUntil([&] { return !heard->empty() && predicate(heard->back()); });
  }

  UnitStatus status(const std::string& unit) {
    auto status = manager_->unitStatus(unit);
    EXPECT_TRUE(status.isOk()) << status.status().message();
    return status.isOk() ? *status : UnitStatus{};
  }

  std::unique_ptr<core::Loop> loop_;
  std::unique_ptr<core::LoopClock> clock_;
  std::unique_ptr<BusSystemdManager> manager_;
};

constexpr const char* kSleepUnit =
    "[Service]\nExecStart=/bin/sleep infinity\n[Install]\nWantedBy=multi-user.target\n";

TEST_F(SystemdClientTest, AServiceGoesThroughItsWholeLife) {
  writeUnit("nwtest-sleep.service", kSleepUnit);
  ASSERT_TRUE(manager_->daemonReload().isOk());

  UnitStatus unit = status("nwtest-sleep.service");
  EXPECT_EQ(unit.loadState, "loaded");
  EXPECT_EQ(unit.activeState, "inactive");
  EXPECT_EQ(unit.subState, "dead");
  EXPECT_EQ(unit.unitFileState, "disabled");
  EXPECT_EQ(unit.fragmentPath, "/etc/systemd/system/nwtest-sleep.service");
  EXPECT_FALSE(unit.needDaemonReload);
  EXPECT_TRUE(unit.dropInPaths.empty());

  ASSERT_TRUE(manager_->enableUnitFiles({"nwtest-sleep.service"}).isOk());
  EXPECT_TRUE(
      std::filesystem::is_symlink(kUnitDirectory / "multi-user.target.wants/nwtest-sleep.service"));
  ASSERT_TRUE(manager_->daemonReload().isOk());
  EXPECT_EQ(status("nwtest-sleep.service").unitFileState, "enabled");

  core::Status started = runJob(JobKind::kStart, "nwtest-sleep.service");
  EXPECT_TRUE(started.isOk()) << started.message();
  unit = status("nwtest-sleep.service");
  EXPECT_EQ(unit.activeState, "active");
  EXPECT_EQ(unit.subState, "running");

  core::Status restarted = runJob(JobKind::kRestart, "nwtest-sleep.service");
  EXPECT_TRUE(restarted.isOk()) << restarted.message();
  EXPECT_EQ(status("nwtest-sleep.service").activeState, "active");

  core::Status stopped = runJob(JobKind::kStop, "nwtest-sleep.service");
  EXPECT_TRUE(stopped.isOk()) << stopped.message();
  EXPECT_EQ(status("nwtest-sleep.service").activeState, "inactive");

  ASSERT_TRUE(manager_->disableUnitFiles({"nwtest-sleep.service"}).isOk());
  ASSERT_TRUE(manager_->daemonReload().isOk());
  EXPECT_EQ(status("nwtest-sleep.service").unitFileState, "disabled");
}

TEST_F(SystemdClientTest, EnablingARunningUnitShowsAfterADaemonReload) {
  writeUnit("nwtest-sleep.service", kSleepUnit);
  ASSERT_TRUE(manager_->daemonReload().isOk());
  ASSERT_TRUE(runJob(JobKind::kStart, "nwtest-sleep.service").isOk());
  ASSERT_EQ(status("nwtest-sleep.service").unitFileState, "disabled");

  ASSERT_TRUE(manager_->enableUnitFiles({"nwtest-sleep.service"}).isOk());
  // A loaded unit caches its unit file state: systemd 252 still says "disabled" here.
  std::cout << "unitFileState of a running unit right after enabling: "
            << status("nwtest-sleep.service").unitFileState << "\n";
  ASSERT_TRUE(manager_->daemonReload().isOk());
  EXPECT_EQ(status("nwtest-sleep.service").unitFileState, "enabled");
  EXPECT_EQ(status("nwtest-sleep.service").activeState, "active");

  ASSERT_TRUE(manager_->disableUnitFiles({"nwtest-sleep.service"}).isOk());
  ASSERT_TRUE(manager_->daemonReload().isOk());
  EXPECT_EQ(status("nwtest-sleep.service").unitFileState, "disabled");
}

TEST_F(SystemdClientTest, EditsOnDiskCallForADaemonReload) {
  writeUnit("nwtest-sleep.service", kSleepUnit);
  writeFile(kUnitDirectory / "nwtest-sleep.service.d/10-a.conf", "[Service]\nEnvironment=A=1\n");
  ASSERT_TRUE(manager_->daemonReload().isOk());
  // Keep the unit loaded: systemd drops inactive units nobody references, and
  // a freshly loaded unit needs no reload.
  ASSERT_TRUE(runJob(JobKind::kStart, "nwtest-sleep.service").isOk());
  UnitStatus unit = status("nwtest-sleep.service");
  EXPECT_FALSE(unit.needDaemonReload);
  ASSERT_EQ(unit.dropInPaths.size(), 1u);
  EXPECT_EQ(unit.dropInPaths[0], "/etc/systemd/system/nwtest-sleep.service.d/10-a.conf");

  writeFile(kUnitDirectory / "nwtest-sleep.service.d/20-b.conf", "[Service]\nEnvironment=B=1\n");
  EXPECT_TRUE(status("nwtest-sleep.service").needDaemonReload);
  ASSERT_TRUE(manager_->daemonReload().isOk());
  unit = status("nwtest-sleep.service");
  EXPECT_FALSE(unit.needDaemonReload);
  EXPECT_EQ(unit.dropInPaths.size(), 2u);

  writeUnit("nwtest-sleep.service", std::string(kSleepUnit) + "# edited\n");
  EXPECT_TRUE(status("nwtest-sleep.service").needDaemonReload);
}

TEST_F(SystemdClientTest, AFailingServiceFailsItsJobAndSaysWhy) {
  writeUnit("nwtest-false.service", "[Service]\nType=oneshot\nExecStart=/bin/false\n");
  ASSERT_TRUE(manager_->daemonReload().isOk());

  core::Status started = runJob(JobKind::kStart, "nwtest-false.service");
  EXPECT_EQ(started.code(), Code::kInternal);
  EXPECT_EQ(started.message(),
            "start nwtest-false.service: job failed because the control process exited with "
            "error code (result: exit-code)");
  EXPECT_EQ(status("nwtest-false.service").activeState, "failed");

  ASSERT_TRUE(manager_->resetFailed("nwtest-false.service").isOk());
  EXPECT_EQ(status("nwtest-false.service").activeState, "inactive");
  // Nothing to reset is not an error, even once systemd has unloaded the unit.
  EXPECT_TRUE(manager_->resetFailed("nwtest-false.service").isOk());
  EXPECT_TRUE(manager_->resetFailed("nwtest-nope.service").isOk());
}

TEST_F(SystemdClientTest, AMissingUnitGetsAClearError) {
  UnitStatus unit = status("nwtest-nope.service");
  EXPECT_EQ(unit.loadState, "not-found");
  EXPECT_EQ(unit.activeState, "inactive");
  EXPECT_EQ(unit.unitFileState, "");

  core::Status started = runJob(JobKind::kStart, "nwtest-nope.service");
  EXPECT_EQ(started.code(), Code::kNotFound);
  EXPECT_EQ(started.message(), "start nwtest-nope.service: Unit nwtest-nope.service not found.");

  core::Status enabled = manager_->enableUnitFiles({"nwtest-nope.service"});
  EXPECT_EQ(enabled.code(), Code::kNotFound);
  EXPECT_EQ(enabled.message(),
            "enable nwtest-nope.service: Unit file nwtest-nope.service does not exist.");

  auto invalid = manager_->unitStatus("nwtest-no-suffix");
  ASSERT_FALSE(invalid.isOk());
  EXPECT_EQ(invalid.status().code(), Code::kInvalidArgument);
  std::cout << "invalid name: " << invalid.status().message() << "\n";
}

TEST_F(SystemdClientTest, AJobThatTakesTooLongTimesOutAndKeepsRunning) {
  connect(1s);
  writeUnit("nwtest-slow.service",
            "[Service]\nExecStartPre=/bin/sleep 5\nExecStart=/bin/sleep infinity\n");
  ASSERT_TRUE(manager_->daemonReload().isOk());

  const auto started = std::chrono::steady_clock::now();
  core::Status result = runJob(JobKind::kStart, "nwtest-slow.service");
  const auto waited = std::chrono::steady_clock::now() - started;
  EXPECT_EQ(result.code(), Code::kTimeout);
  EXPECT_EQ(result.message(),
            "start nwtest-slow.service: job did not finish within 1s; systemd keeps running it");
  EXPECT_GE(waited, 1s);
  EXPECT_LT(waited, 5s);
  // The job was left alone, not canceled.
  EXPECT_EQ(status("nwtest-slow.service").activeState, "activating");

  // Its JobRemoved arrives later and is ignored; the next job gets its own result.
  writeUnit("nwtest-sleep.service", kSleepUnit);
  ASSERT_TRUE(manager_->daemonReload().isOk());
  EXPECT_TRUE(runJob(JobKind::kStart, "nwtest-sleep.service").isOk());
}

TEST_F(SystemdClientTest, ConcurrentJobsEachGetTheirOwnResult) {
  writeUnit("nwtest-sleep.service", kSleepUnit);
  writeUnit("nwtest-false.service", "[Service]\nType=oneshot\nExecStart=/bin/false\n");
  writeUnit("nwtest-true.service", "[Service]\nType=oneshot\nExecStart=/bin/true\n");
  ASSERT_TRUE(manager_->daemonReload().isOk());

  std::optional<core::Status> sleep, fail, succeed;
  manager_->runJob(JobKind::kStart, "nwtest-sleep.service",
                   [&](core::Status s) { sleep = std::move(s); });
  manager_->runJob(JobKind::kStart, "nwtest-false.service",
                   [&](core::Status s) { fail = std::move(s); });
  manager_->runJob(JobKind::kStart, "nwtest-true.service",
                   [&](core::Status s) { succeed = std::move(s); });
  ASSERT_TRUE(wait(sleep).isOk());
  EXPECT_FALSE(wait(fail).isOk());
  EXPECT_TRUE(wait(succeed).isOk());
}

TEST_F(SystemdClientTest, WorksWithoutTheBusDaemon) {
  shell("systemctl stop dbus.socket dbus.service");
  connect(30s);
  writeUnit("nwtest-sleep.service", kSleepUnit);
  EXPECT_TRUE(manager_->daemonReload().isOk());
  EXPECT_TRUE(runJob(JobKind::kStart, "nwtest-sleep.service").isOk());
  shell("systemctl start dbus.socket");
}

TEST_F(SystemdClientTest, ReconnectsAfterSystemdReexecutes) {
  writeUnit("nwtest-sleep.service", kSleepUnit);
  ASSERT_TRUE(manager_->daemonReload().isOk());
  shell("systemctl daemon-reexec");
  // Let the loop see the connection close, as it would in the agent.
  bool ticked = false;
  auto tick = clock_->createTimer([&ticked] { ticked = true; });
  tick->armIn(200ms);
  ASSERT_TRUE(loop_->runUntil([&] { return ticked; }).isOk());

  EXPECT_EQ(status("nwtest-sleep.service").loadState, "loaded");
  EXPECT_TRUE(runJob(JobKind::kStart, "nwtest-sleep.service").isOk());
}

TEST_F(SystemdClientTest, ReconnectsWhenTheDropIsNoticedMidCall) {
  writeUnit("nwtest-sleep.service", kSleepUnit);
  ASSERT_TRUE(manager_->daemonReload().isOk());
  // No loop iteration between the re-exec and the next call: the call itself
  // finds the connection gone.
  shell("systemctl daemon-reexec");
  EXPECT_EQ(status("nwtest-sleep.service").loadState, "loaded");
}

constexpr const char* kRestartingUnit =
    "[Service]\nExecStart=/bin/sleep infinity\nRestart=always\nRestartSec=200ms\n";

TEST_F(SystemdClientTest, AWatchSeesAKilledServiceFail) {
  writeUnit("nwtest-sleep.service", kSleepUnit);
  ASSERT_TRUE(manager_->daemonReload().isOk());
  ASSERT_TRUE(runJob(JobKind::kStart, "nwtest-sleep.service").isOk());
  UnitActivity now;
  auto heard = watch("nwtest-sleep.service", now);
  EXPECT_EQ(now.activeState, "active");
  EXPECT_EQ(now.subState, "running");
  EXPECT_EQ(now.result, "success");
  EXPECT_FALSE(now.jobPending);
  ASSERT_NE(now.mainPid, 0u);

  const auto killed = std::chrono::steady_clock::now();
  ASSERT_EQ(::kill(static_cast<pid_t>(now.mainPid), SIGKILL), 0);
  ASSERT_TRUE(hears(heard, [](const UnitActivity& a) { return a.activeState == "failed"; }))
      << describe(*heard);
  const std::chrono::duration<double, std::milli> took = std::chrono::steady_clock::now() - killed;
  std::cout << "kill -9 to the watch's callback: " << took.count() << " ms\n";
  EXPECT_EQ(heard->back(), (UnitActivity{.activeState = "failed",
                                         .subState = "failed",
                                         .result = "signal",
                                         .mainPid = 0,
                                         .jobPending = false,
                                         .restarts = 0}))
      << describe(*heard);
  runFor(200ms);
  expectNoRepeats(*heard);
  EXPECT_EQ(heard->back().activeState, "failed") << describe(*heard);
}

TEST_F(SystemdClientTest, AWatchSeesSystemdRestartAServiceWithANewMainPid) {
  writeUnit("nwtest-restarting.service", kRestartingUnit);
  ASSERT_TRUE(manager_->daemonReload().isOk());
  ASSERT_TRUE(runJob(JobKind::kStart, "nwtest-restarting.service").isOk());
  UnitActivity now;
  auto heard = watch("nwtest-restarting.service", now);
  ASSERT_NE(now.mainPid, 0u);
  EXPECT_EQ(now.restarts, 0u);

  ASSERT_EQ(::kill(static_cast<pid_t>(now.mainPid), SIGKILL), 0);
  // The restart job's end comes last.
  ASSERT_TRUE(hears(heard, [&](const UnitActivity& a) {
    return a.subState == "running" && a.mainPid != 0 && a.mainPid != now.mainPid && !a.jobPending;
  })) << describe(*heard);
  const UnitActivity& restarted = heard->back();
  EXPECT_EQ(restarted.activeState, "active");
  EXPECT_EQ(restarted.restarts, 1u);
  EXPECT_FALSE(restarted.jobPending);
  bool sawAutoRestart = false;
  for (const UnitActivity& a : *heard) {
    if (a.subState == "auto-restart") {
      sawAutoRestart = true;
      EXPECT_EQ(a.result, "signal");
      EXPECT_EQ(a.mainPid, 0u);
    }
  }
  EXPECT_TRUE(sawAutoRestart) << describe(*heard);
  expectNoRepeats(*heard);
  std::cout << "a systemd restart as the watch heard it:" << describe(*heard) << "\n";
}

TEST_F(SystemdClientTest, SignalsThatRepeatTheActivityAreNotReported) {
  writeUnit("nwtest-restarting.service", kRestartingUnit);
  ASSERT_TRUE(manager_->daemonReload().isOk());
  ASSERT_TRUE(runJob(JobKind::kStart, "nwtest-restarting.service").isOk());
  UnitActivity now;
  auto heard = watch("nwtest-restarting.service", now);
  SignalCounter counter(*loop_, "nwtest-restarting.service");

  ASSERT_EQ(::kill(static_cast<pid_t>(now.mainPid), SIGKILL), 0);
  ASSERT_TRUE(hears(heard, [&](const UnitActivity& a) {
    return a.activeState == "active" && a.mainPid != now.mainPid && !a.jobPending;
  })) << describe(*heard);
  runFor(200ms);
  // systemd sends a pair of signals (the Service's, the Unit's) whenever
  // anything about the unit changed, often with the same states again.
  std::cout << counter.count() << " PropertiesChanged signals, " << heard->size() << " reports\n";
  EXPECT_LT(2 * heard->size(), static_cast<size_t>(counter.count())) << describe(*heard);
  expectNoRepeats(*heard);
}

TEST_F(SystemdClientTest, AWatchSeesAnOperatorStopTheService) {
  writeUnit("nwtest-sleep.service", kSleepUnit);
  ASSERT_TRUE(manager_->daemonReload().isOk());
  ASSERT_TRUE(runJob(JobKind::kStart, "nwtest-sleep.service").isOk());
  UnitActivity now;
  auto heard = watch("nwtest-sleep.service", now);
  shell("systemctl stop nwtest-sleep.service");
  ASSERT_TRUE(hears(heard, [](const UnitActivity& a) {
    return a.activeState == "inactive" && !a.jobPending;
  })) << describe(*heard);
  EXPECT_EQ(heard->back(), (UnitActivity{.activeState = "inactive",
                                         .subState = "dead",
                                         .result = "success",
                                         .mainPid = 0,
                                         .jobPending = false,
                                         .restarts = 0}))
      << describe(*heard);
  expectNoRepeats(*heard);
}

TEST_F(SystemdClientTest, AWatchFollowsAUnitSystemdUnloadsAndLoadsAgain) {
  // Disabled and inactive: systemd unloads it as soon as nobody references it.
  writeUnit("nwtest-sleep.service", kSleepUnit);
  ASSERT_TRUE(manager_->daemonReload().isOk());
  UnitActivity now;
  auto heard = watch("nwtest-sleep.service", now);
  EXPECT_EQ(now.activeState, "inactive");
  EXPECT_EQ(now.subState, "dead");
  runFor(100ms);
  shell("systemctl start nwtest-sleep.service");
  ASSERT_TRUE(hears(heard, [](const UnitActivity& a) {
    return a.activeState == "active" && a.mainPid != 0;
  })) << describe(*heard);
  expectNoRepeats(*heard);
}

TEST_F(SystemdClientTest, WatchingUnknownAndInvalidUnits) {
  UnitActivity now;
  auto heard = watch("nwtest-nope.service", now);
  EXPECT_EQ(now.activeState, "inactive");
  EXPECT_EQ(now.subState, "dead");
  EXPECT_EQ(now.mainPid, 0u);

  auto invalid =
      manager_->watchUnit("nwtest-no-suffix", [](const std::string&, const UnitActivity&) {});
  ASSERT_FALSE(invalid.isOk());
  EXPECT_EQ(invalid.status().message(),
            "watch nwtest-no-suffix: Unit name nwtest-no-suffix is neither a valid invocation ID "
            "nor unit name.");
}

TEST_F(SystemdClientTest, AWatchOutlivesSystemdReexecuting) {
  writeUnit("nwtest-sleep.service", kSleepUnit);
  writeUnit("nwtest-other.service", kSleepUnit);
  ASSERT_TRUE(manager_->daemonReload().isOk());
  ASSERT_TRUE(runJob(JobKind::kStart, "nwtest-sleep.service").isOk());
  ASSERT_TRUE(runJob(JobKind::kStart, "nwtest-other.service").isOk());
  UnitActivity sleepNow, otherNow;
  auto sleep = watch("nwtest-sleep.service", sleepNow);
  auto other = watch("nwtest-other.service", otherNow);

  // The other unit stops while the manager has not yet seen the connection
  // drop: the change reaches it from the read after reconnecting.
  shell("systemctl daemon-reexec");
  shell("systemctl stop nwtest-other.service");
  ASSERT_TRUE(hears(other, [](const UnitActivity& a) { return a.activeState == "inactive"; }))
      << describe(*other);

  // Changes after the reconnect arrive as signals again.
  ASSERT_EQ(::kill(static_cast<pid_t>(sleepNow.mainPid), SIGKILL), 0);
  ASSERT_TRUE(hears(sleep, [](const UnitActivity& a) { return a.activeState == "failed"; }))
      << describe(*sleep);
  EXPECT_EQ(sleep->back().result, "signal");
  expectNoRepeats(*sleep);
  expectNoRepeats(*other);

  // And again after a second re-exec, noticed by the loop this time.
  shell("systemctl daemon-reexec");
  runFor(300ms);
  shell("systemctl start nwtest-other.service");
  ASSERT_TRUE(hears(other, [](const UnitActivity& a) { return a.activeState == "active"; }))
      << describe(*other);
}

TEST_F(SystemdClientTest, AnUnwatchedUnitIsNoLongerReported) {
  writeUnit("nwtest-sleep.service", kSleepUnit);
  ASSERT_TRUE(manager_->daemonReload().isOk());
  ASSERT_TRUE(runJob(JobKind::kStart, "nwtest-sleep.service").isOk());
  UnitActivity now;
  auto heard = watch("nwtest-sleep.service", now);
  manager_->unwatchUnit("nwtest-sleep.service");
  SignalCounter counter(*loop_, "nwtest-sleep.service");
  shell("systemctl stop nwtest-sleep.service");
  ASSERT_TRUE(runUntil([&] { return counter.count() > 0; }));
  runFor(100ms);
  EXPECT_TRUE(heard->empty()) << describe(*heard);
}

// A figure for the report, not a pass/fail threshold: bench/ owns those.
void reportObservationTime(BusSystemdManager& manager, const std::vector<std::string>& units,
                           const std::string& label) {
  constexpr int kRounds = 20;
  using Ms = std::chrono::duration<double, std::milli>;
  Ms best = std::chrono::hours(1), total{};
  for (int round = 0; round < kRounds; ++round) {
    const auto start = std::chrono::steady_clock::now();
    for (const std::string& unit : units) ASSERT_TRUE(manager.unitStatus(unit).isOk());
    const Ms took = std::chrono::steady_clock::now() - start;
    best = std::min(best, took);
    total += took;
  }
  std::cout << "unitStatus of 20 " << label << " units: best " << best.count() << " ms, mean "
            << (total / kRounds).count() << " ms over " << kRounds << " rounds\n";
}

TEST_F(SystemdClientTest, ObservingTwentyUnits) {
  std::vector<std::string> units;
  for (int i = 0; i < 20; ++i) {
    units.push_back("nwtest-unit" + std::to_string(i) + ".service");
    writeUnit(units.back(), kSleepUnit);
  }
  ASSERT_TRUE(manager_->daemonReload().isOk());
  // Inactive units nobody references are unloaded between calls, so each
  // query loads its unit from disk again.
  reportObservationTime(*manager_, units, "inactive");
  for (const std::string& unit : units) ASSERT_TRUE(runJob(JobKind::kStart, unit).isOk());
  reportObservationTime(*manager_, units, "running");
}

}  // namespace
}  // namespace nodewarden::systemd
