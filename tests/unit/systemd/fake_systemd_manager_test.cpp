#include "tests/fakes/fake_systemd_manager.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <optional>

#include "agent/systemd/job_result.h"

namespace nodewarden::systemd {
namespace {

using namespace std::chrono_literals;
using ::testing::ElementsAre;
using Code = core::Status::Code;

UnitStatus loaded(std::string activeState, std::string unitFileState) {
  return UnitStatus{.loadState = "loaded",
                    .activeState = std::move(activeState),
                    .unitFileState = std::move(unitFileState)};
}

// Queues a job whose result lands in `result`.
void run(FakeSystemdManager& fake, JobKind kind, const std::string& unit,
         std::optional<core::Status>& result) {
  fake.runJob(kind, unit, [&result](core::Status status) { result = std::move(status); });
}

TEST(FakeSystemdManagerTest, RecordsEveryCallInOrder) {
  FakeSystemdManager fake;
  fake.setUnit("a.service", loaded("inactive", "disabled"));
  fake.setUnit("b.service", loaded("inactive", "disabled"));
  ASSERT_TRUE(fake.unitStatus("a.service").isOk());
  ASSERT_TRUE(fake.daemonReload().isOk());
  ASSERT_TRUE(fake.enableUnitFiles({"a.service", "b.service"}).isOk());
  ASSERT_TRUE(fake.disableUnitFiles({"b.service"}).isOk());
  ASSERT_TRUE(fake.resetFailed("a.service").isOk());
  fake.runJob(JobKind::kRestart, "a.service", [](core::Status) {});

  EXPECT_THAT(fake.calls(),
              ElementsAre("status a.service", "daemon-reload", "enable a.service b.service",
                          "disable b.service", "reset-failed a.service", "restart a.service"));
  EXPECT_THAT(fake.changes(),
              ElementsAre("daemon-reload", "enable a.service b.service", "disable b.service",
                          "reset-failed a.service", "restart a.service"));
  fake.clearCalls();
  EXPECT_TRUE(fake.calls().empty());
}

TEST(FakeSystemdManagerTest, UnknownUnitsAreNotFoundLikeSystemdReportsThem) {
  FakeSystemdManager fake;
  auto status = fake.unitStatus("nope.service");
  ASSERT_TRUE(status.isOk());
  EXPECT_EQ(status->loadState, "not-found");
  EXPECT_EQ(status->activeState, "inactive");
  EXPECT_EQ(status->unitFileState, "");
}

TEST(FakeSystemdManagerTest, JobsWaitForCompleteJobsThenApplyTheirEffect) {
  FakeSystemdManager fake;
  fake.setUnit("a.service", loaded("inactive", "enabled"));
  std::optional<core::Status> result;
  run(fake, JobKind::kStart, "a.service", result);

  EXPECT_FALSE(result.has_value());
  EXPECT_EQ(fake.pendingJobs(), 1u);
  EXPECT_EQ(fake.unit("a.service").activeState, "inactive");

  EXPECT_EQ(fake.completeJobs(), 1u);
  ASSERT_TRUE(result.has_value());
  EXPECT_TRUE(result->isOk());
  EXPECT_EQ(fake.unit("a.service").activeState, "active");
  EXPECT_EQ(fake.unit("a.service").subState, "running");

  run(fake, JobKind::kStop, "a.service", result);
  fake.completeJobs();
  EXPECT_TRUE(result->isOk());
  EXPECT_EQ(fake.unit("a.service").activeState, "inactive");
}

TEST(FakeSystemdManagerTest, CompleteJobsRunsJobsQueuedByCallbacks) {
  FakeSystemdManager fake;
  fake.setUnit("a.service", loaded("inactive", "enabled"));
  fake.setUnit("b.service", loaded("inactive", "enabled"));
  std::optional<core::Status> second;
  fake.runJob(JobKind::kStart, "a.service",
              [&](core::Status) { run(fake, JobKind::kStart, "b.service", second); });
  EXPECT_EQ(fake.completeJobs(), 2u);
  ASSERT_TRUE(second.has_value());
  EXPECT_EQ(fake.unit("b.service").activeState, "active");
}

TEST(FakeSystemdManagerTest, FailedJobsLeaveTheUnitFailedAndSayWhy) {
  FakeSystemdManager fake;
  fake.setUnit("kubelet.service", loaded("inactive", "enabled"));
  fake.failJobsFor("kubelet.service");
  std::optional<core::Status> result;
  run(fake, JobKind::kStart, "kubelet.service", result);
  fake.completeJobs();

  ASSERT_TRUE(result.has_value());
  EXPECT_EQ(result->message(),
            jobResultStatus(JobKind::kStart, "kubelet.service", "failed", "exit-code").message());
  EXPECT_EQ(fake.unit("kubelet.service").activeState, "failed");

  ASSERT_TRUE(fake.resetFailed("kubelet.service").isOk());
  EXPECT_EQ(fake.unit("kubelet.service").activeState, "inactive");

  fake.clearFailures();
  run(fake, JobKind::kStart, "kubelet.service", result);
  fake.completeJobs();
  EXPECT_TRUE(result->isOk());
}

TEST(FakeSystemdManagerTest, JobsForUnitsSystemdWouldRefuseFail) {
  FakeSystemdManager fake;
  fake.setUnit("masked.service", UnitStatus{.loadState = "masked", .activeState = "inactive"});
  std::optional<core::Status> missing, stopMissing, masked;
  run(fake, JobKind::kStart, "nope.service", missing);
  run(fake, JobKind::kStop, "nope.service", stopMissing);
  run(fake, JobKind::kStart, "masked.service", masked);
  fake.completeJobs();

  EXPECT_EQ(missing->code(), Code::kNotFound);
  EXPECT_EQ(missing->message(), "start nope.service: Unit nope.service not found.");
  EXPECT_EQ(stopMissing->message(), "stop nope.service: Unit nope.service not loaded.");
  EXPECT_EQ(masked->code(), Code::kFailedPrecondition);
  EXPECT_EQ(masked->message(), "start masked.service: Unit masked.service is masked.");
}

TEST(FakeSystemdManagerTest, FailCallFailsThatCallOnlyAndChangesNothing) {
  FakeSystemdManager fake;
  fake.setUnit("a.service", loaded("inactive", "disabled"));
  fake.failCall("enable a.service", core::Status::internal("enable a.service: Access denied"));
  fake.failCall("start a.service", jobTimeoutStatus(JobKind::kStart, "a.service", 90s));

  EXPECT_EQ(fake.enableUnitFiles({"a.service"}).message(), "enable a.service: Access denied");
  EXPECT_EQ(fake.unit("a.service").unitFileState, "disabled");
  EXPECT_TRUE(fake.daemonReload().isOk());

  std::optional<core::Status> result;
  run(fake, JobKind::kStart, "a.service", result);
  fake.completeJobs();
  EXPECT_EQ(result->code(), Code::kTimeout);
  EXPECT_EQ(fake.unit("a.service").activeState, "inactive");
  EXPECT_THAT(fake.changes(), ElementsAre("enable a.service", "daemon-reload", "start a.service"));
}

TEST(FakeSystemdManagerTest, EnableAndDisableShowAfterADaemonReload) {
  FakeSystemdManager fake;
  fake.setUnit("a.service", loaded("inactive", "disabled"));
  fake.setUnit("static.service", loaded("inactive", "static"));

  ASSERT_TRUE(fake.enableUnitFiles({"a.service", "static.service"}).isOk());
  // systemd reports the change after a daemon-reload only.
  EXPECT_EQ(fake.unit("a.service").unitFileState, "disabled");
  ASSERT_TRUE(fake.daemonReload().isOk());
  EXPECT_EQ(fake.unit("a.service").unitFileState, "enabled");
  EXPECT_EQ(fake.unit("static.service").unitFileState, "static");

  ASSERT_TRUE(fake.disableUnitFiles({"a.service"}).isOk());
  EXPECT_EQ(fake.unit("a.service").unitFileState, "enabled");
  ASSERT_TRUE(fake.daemonReload().isOk());
  EXPECT_EQ(fake.unit("a.service").unitFileState, "disabled");

  core::Status missing = fake.enableUnitFiles({"nope.service"});
  EXPECT_EQ(missing.code(), Code::kNotFound);
  EXPECT_EQ(missing.message(), "enable nope.service: Unit file nope.service does not exist.");
}

TEST(FakeSystemdManagerTest, ANewUnitFileLoadsAtTheNextDaemonReload) {
  FakeSystemdManager fake;
  fake.setUnitFile("new.service", true);
  EXPECT_EQ(fake.unit("new.service").loadState, "not-found");
  // Enabling looks at the disk, not at what systemd has loaded.
  ASSERT_TRUE(fake.enableUnitFiles({"new.service"}).isOk());

  ASSERT_TRUE(fake.daemonReload().isOk());
  EXPECT_EQ(fake.unit("new.service").loadState, "loaded");
  EXPECT_EQ(fake.unit("new.service").unitFileState, "enabled");
  EXPECT_EQ(fake.unit("new.service").fragmentPath, "/etc/systemd/system/new.service");
}

TEST(FakeSystemdManagerTest, AChangedUnitFileNeedsADaemonReload) {
  FakeSystemdManager fake;
  fake.setUnit("a.service", loaded("active", "enabled"));
  fake.setUnitFile("a.service", true);
  EXPECT_TRUE(fake.unit("a.service").needDaemonReload);
  ASSERT_TRUE(fake.daemonReload().isOk());
  EXPECT_FALSE(fake.unit("a.service").needDaemonReload);

  fake.setUnitFile("a.service", false);
  ASSERT_TRUE(fake.daemonReload().isOk());
  EXPECT_EQ(fake.unit("a.service").loadState, "not-found");
  EXPECT_EQ(fake.unit("a.service").activeState, "active");
}

// Records each activity a watcher hears, and where it heard it relative to job callbacks.
struct Heard {
  std::vector<std::string> events;
  std::vector<UnitActivity> activities;
  UnitActivityCallback callback() {
    return [this](const std::string& unit, const UnitActivity& activity) {
      events.push_back(unit + " " + activity.activeState + "/" + activity.subState);
      activities.push_back(activity);
    };
  }
};

TEST(FakeSystemdManagerTest, WatchingRecordsNoCallAndAnswersTheActivity) {
  FakeSystemdManager fake;
  fake.setUnit("a.service", loaded("inactive", "enabled"));
  fake.setActivity("a.service", {.activeState = "active",
                                 .subState = "running",
                                 .result = "success",
                                 .mainPid = 42,
                                 .restarts = 2});
  Heard heard;
  auto activity = fake.watchUnit("a.service", heard.callback());
  ASSERT_TRUE(activity.isOk());
  EXPECT_EQ(*activity, (UnitActivity{.activeState = "active",
                                     .subState = "running",
                                     .result = "success",
                                     .mainPid = 42,
                                     .restarts = 2}));
  EXPECT_TRUE(fake.watched("a.service"));
  EXPECT_TRUE(fake.calls().empty());
  EXPECT_TRUE(heard.events.empty()) << "the watcher was called inside watchUnit()";
  // setActivity() sets what unitStatus() reports too.
  EXPECT_EQ(fake.unit("a.service").activeState, "active");

  auto unknown = fake.watchUnit("nope.service", heard.callback());
  ASSERT_TRUE(unknown.isOk());
  EXPECT_EQ(unknown->activeState, "inactive");
  EXPECT_EQ(unknown->subState, "dead");
}

TEST(FakeSystemdManagerTest, SetActivityCallsTheWatcherOncePerChange) {
  FakeSystemdManager fake;
  fake.setUnit("a.service", loaded("active", "enabled"));
  Heard heard;
  ASSERT_TRUE(fake.watchUnit("a.service", heard.callback()).isOk());
  const UnitActivity crashed{.activeState = "failed", .subState = "failed", .result = "signal"};
  fake.setActivity("a.service", crashed);
  fake.setActivity("a.service", crashed);
  ASSERT_EQ(heard.activities.size(), 1u);
  EXPECT_EQ(heard.activities[0], crashed);

  fake.setActivity(
      "a.service",
      {.activeState = "failed", .subState = "failed", .result = "signal", .jobPending = true});
  EXPECT_EQ(heard.activities.size(), 2u);
  EXPECT_TRUE(heard.activities.back().jobPending);

  fake.unwatchUnit("a.service");
  EXPECT_FALSE(fake.watched("a.service"));
  fake.setActivity("a.service", {.activeState = "active", .subState = "running"});
  EXPECT_EQ(heard.activities.size(), 2u);
}

TEST(FakeSystemdManagerTest, JobsShowAsPendingAndTheirEffectReachesTheWatcherBeforeTheirCallback) {
  FakeSystemdManager fake;
  fake.setUnit("a.service", loaded("inactive", "enabled"));
  Heard heard;
  ASSERT_TRUE(fake.watchUnit("a.service", heard.callback()).isOk());
  fake.runJob(JobKind::kStart, "a.service",
              [&heard](core::Status) { heard.events.push_back("start done"); });
  EXPECT_TRUE(heard.events.empty()) << "the watcher was called inside runJob()";
  EXPECT_TRUE(fake.activity("a.service").jobPending);
  EXPECT_TRUE(fake.watchUnit("a.service", heard.callback())->jobPending);

  fake.completeJobs();
  EXPECT_THAT(heard.events, ElementsAre("a.service active/running", "start done"));
  const UnitActivity started = heard.activities.back();
  EXPECT_FALSE(started.jobPending);
  EXPECT_EQ(started.result, "success");
  EXPECT_NE(started.mainPid, 0u);

  fake.runJob(JobKind::kRestart, "a.service", [](core::Status) {});
  fake.completeJobs();
  ASSERT_EQ(heard.activities.size(), 2u);
  EXPECT_EQ(heard.activities.back().activeState, "active");
  EXPECT_NE(heard.activities.back().mainPid, started.mainPid);

  fake.runJob(JobKind::kStop, "a.service", [](core::Status) {});
  fake.completeJobs();
  ASSERT_EQ(heard.activities.size(), 3u);
  EXPECT_EQ(heard.activities.back(),
            (UnitActivity{.activeState = "inactive", .subState = "dead", .result = "success"}));
}

TEST(FakeSystemdManagerTest, AFailedJobLeavesTheWatcherSeeingTheFailure) {
  FakeSystemdManager fake;
  fake.setUnit("a.service", loaded("inactive", "enabled"));
  fake.failJobsFor("a.service", "failed", "exit-code");
  Heard heard;
  ASSERT_TRUE(fake.watchUnit("a.service", heard.callback()).isOk());
  fake.runJob(JobKind::kStart, "a.service", [](core::Status) {});
  fake.completeJobs();
  ASSERT_EQ(heard.activities.size(), 1u);
  EXPECT_EQ(heard.activities[0],
            (UnitActivity{.activeState = "failed", .subState = "failed", .result = "exit-code"}));

  ASSERT_TRUE(fake.resetFailed("a.service").isOk());
  ASSERT_EQ(heard.activities.size(), 2u);
  EXPECT_EQ(heard.activities[1].activeState, "inactive");

  fake.setUnit("a.service", loaded("active", "enabled"));
  ASSERT_EQ(heard.activities.size(), 3u);
  EXPECT_EQ(heard.activities[2].activeState, "active");
  // What only the fake keeps survives setUnit().
  EXPECT_EQ(heard.activities[2].result, "exit-code");
}

TEST(FakeSystemdManagerTest, AnotherJobKeepsThePendingJobShowing) {
  FakeSystemdManager fake;
  fake.setUnit("a.service", loaded("active", "enabled"));
  Heard heard;
  ASSERT_TRUE(fake.watchUnit("a.service", heard.callback()).isOk());
  fake.runJob(JobKind::kRestart, "a.service", [](core::Status) {});
  // The unit crashes while the restart waits.
  fake.setActivity("a.service",
                   {.activeState = "failed", .subState = "failed", .result = "signal"});
  ASSERT_EQ(heard.activities.size(), 1u);
  EXPECT_TRUE(heard.activities[0].jobPending);
  fake.completeJobs();
  ASSERT_EQ(heard.activities.size(), 2u);
  EXPECT_FALSE(heard.activities[1].jobPending);
  EXPECT_EQ(heard.activities[1].activeState, "active");
}

TEST(FakeSystemdManagerTest, AWatcherMayUnwatchAndQueueJobsFromItsCallback) {
  FakeSystemdManager fake;
  fake.setUnit("a.service", loaded("active", "enabled"));
  fake.setUnit("b.service", loaded("active", "enabled"));
  int calls = 0;
  ASSERT_TRUE(fake.watchUnit("a.service",
                             [&](const std::string& unit, const UnitActivity&) {
                               ++calls;
                               fake.unwatchUnit(unit);
                               fake.runJob(JobKind::kRestart, unit, [](core::Status) {});
                             })
                  .isOk());
  Heard heard;
  ASSERT_TRUE(fake.watchUnit("b.service", heard.callback()).isOk());
  fake.setActivity("a.service", {.activeState = "failed", .subState = "failed"});
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(fake.completeJobs(), 1u);
  EXPECT_EQ(fake.unit("a.service").activeState, "active");
  EXPECT_EQ(calls, 1);
  EXPECT_TRUE(heard.events.empty());
  EXPECT_TRUE(fake.watched("b.service"));
}

TEST(FakeSystemdManagerTest, AFailingWatchLeavesTheUnitUnwatched) {
  FakeSystemdManager fake;
  fake.setUnit("a.service", loaded("active", "enabled"));
  fake.failCall("watch a.service", core::Status::internal("watch a.service: Connection reset"));
  auto activity = fake.watchUnit("a.service", [](const std::string&, const UnitActivity&) {});
  ASSERT_FALSE(activity.isOk());
  EXPECT_EQ(activity.status().message(), "watch a.service: Connection reset");
  EXPECT_FALSE(fake.watched("a.service"));
  EXPECT_TRUE(fake.calls().empty());
}

}  // namespace
}  // namespace nodewarden::systemd
