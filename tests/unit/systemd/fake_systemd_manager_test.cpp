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

}  // namespace
}  // namespace nodewarden::systemd
