// What applying a plan does when part of it fails: the failure is reported,
// what depends on it is skipped with the reason, everything else still runs.

#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/unit/converge/converge_test_support.h"

namespace nodewarden::converge::test {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr std::string_view kAppState = R"(
files:
  - path: /etc/app/app.conf
    content: "listen = 8080\n"
units:
  - name: app.service
    content: "[Service]\nExecStart=/usr/bin/app\n"
    dropIns:
      - name: 10-env.conf
        content: "[Service]\nEnvironment=MODE=prod\n"
    enabled: true
    state: running
    restartOn: [/etc/app/app.conf]
)";

systemd::UnitStatus runningVendorUnit() {
  return systemd::UnitStatus{.loadState = "loaded",
                             .activeState = "active",
                             .subState = "running",
                             .unitFileState = "enabled"};
}

TEST_F(ConvergeTest, FailedJobIsReportedAndTheRestStillApplied) {
  fake_.failJobsFor("app.service");

  Report report = converge(kAppState);

  const Change& start = findChange(report.changes, "start", "unit app.service");
  EXPECT_EQ(start.outcome, Change::Outcome::kFailed);
  EXPECT_THAT(start.error, HasSubstr("start app.service"));
  EXPECT_EQ(fake_.unit("app.service").activeState, "failed");
  EXPECT_EQ(report.failed(), 1u);
  EXPECT_EQ(report.changed(), report.changes.size() - 1);
  EXPECT_EQ(read("/etc/app/app.conf"), "listen = 8080\n");
  EXPECT_EQ(report.exitCode(), 6);
}

TEST_F(ConvergeTest, FailedJobAloneExitsWithFour) {
  ASSERT_EQ(converge(kAppState).exitCode(), 2);
  setActiveState("app.service", "inactive");
  fake_.failJobsFor("app.service", "timeout");

  Report report = converge(kAppState);

  ASSERT_THAT(actions(report.changes), ElementsAre("start unit app.service"));
  EXPECT_EQ(report.changes[0].outcome, Change::Outcome::kFailed);
  EXPECT_FALSE(report.changes[0].error.empty());
  EXPECT_EQ(report.exitCode(), 4);
}

TEST_F(ConvergeTest, FailedRestartIsReported) {
  ASSERT_EQ(converge(kAppState).exitCode(), 2);
  fake_.failJobsFor("app.service");

  Report report = converge(R"(
files:
  - path: /etc/app/app.conf
    content: "listen = 9090\n"
units:
  - name: app.service
    restartOn: [/etc/app/app.conf]
)");

  EXPECT_EQ(findChange(report.changes, "update", "file /etc/app/app.conf").outcome,
            Change::Outcome::kApplied);
  EXPECT_EQ(findChange(report.changes, "restart", "unit app.service").outcome,
            Change::Outcome::kFailed);
  EXPECT_EQ(report.exitCode(), 6);
}

TEST_F(ConvergeTest, DirectoryThatCannotBeMadeSkipsWhatDependsOnIt) {
  write("/srv/data", "a regular file where the directory should be\n");
  fake_.setUnit("data.service", runningVendorUnit());
  fake_.setUnit("other.service", runningVendorUnit());

  // Its parent is a regular file: nothing at the path itself says so, the
  // mkdir fails.
  Report report = converge(R"(
directories:
  - path: /srv/data/sub
files:
  - path: /srv/data/sub/data.conf
    content: "a\n"
  - path: /etc/other.conf
    content: "b\n"
units:
  - name: data.service
    restartOn: [/srv/data/sub/data.conf]
  - name: other.service
    restartOn: [/etc/other.conf]
)");

  const Change& directory = findChange(report.changes, "create", "directory /srv/data/sub");
  EXPECT_EQ(directory.outcome, Change::Outcome::kFailed);
  EXPECT_THAT(directory.error, HasSubstr("/srv/data exists and is not a directory"));
  const Change& file = findChange(report.changes, "create", "file /srv/data/sub/data.conf");
  EXPECT_EQ(file.outcome, Change::Outcome::kSkipped);
  EXPECT_EQ(file.error, "skipped: directory /srv/data/sub was not changed");
  const Change& restart = findChange(report.changes, "restart", "unit data.service");
  EXPECT_EQ(restart.outcome, Change::Outcome::kSkipped);
  EXPECT_EQ(restart.error, "skipped: file /srv/data/sub/data.conf was not changed");

  // Independent of the failure: applied.
  EXPECT_EQ(findChange(report.changes, "create", "file /etc/other.conf").outcome,
            Change::Outcome::kApplied);
  EXPECT_EQ(read("/etc/other.conf"), "b\n");
  EXPECT_THAT(fake_.changes(), ElementsAre("restart other.service"));

  EXPECT_EQ(read("/srv/data"), "a regular file where the directory should be\n");
  EXPECT_EQ(report.exitCode(), 6);
}

TEST_F(ConvergeTest, DirectoryWhereAFileIsRefusesTheStateWhole) {
  write("/srv/data", "a regular file where the directory should be\n");
  const auto before = snapshot();

  core::Result<Plan> planned = planner_.plan(load(R"(
directories:
  - path: /srv/data
files:
  - path: /etc/other.conf
    content: "b\n"
)"));

  ASSERT_FALSE(planned.isOk());
  EXPECT_THAT(planned.status().message(),
              HasSubstr("directory /srv/data: /srv/data exists and is not a directory"));
  EXPECT_EQ(snapshot(), before);
}

TEST_F(ConvergeTest, ContentlessFileWhereALinkIsRefusesTheStateWhole) {
  makeDirectory("/etc");
  write("/etc/resolv.target", "nameserver 10.0.0.1\n");
  ASSERT_EQ(::symlink("resolv.target", hostPath("/etc/resolv.conf").c_str()), 0);

  core::Result<Plan> planned = planner_.plan(load(R"(
files:
  - path: /etc/resolv.conf
    mode: "0644"
)"));

  ASSERT_FALSE(planned.isOk());
  EXPECT_THAT(planned.status().message(), HasSubstr("/etc/resolv.conf is not a regular file"));
  EXPECT_EQ(read("/etc/resolv.target"), "nameserver 10.0.0.1\n");
}

TEST_F(ConvergeTest, LinkReplacedByAFileGetsTheDefaultModeNotTheLinks) {
  makeDirectory("/etc");
  write("/etc/resolv.target", "nameserver 10.0.0.1\n");
  ASSERT_EQ(::symlink("resolv.target", hostPath("/etc/resolv.conf").c_str()), 0);

  Report report = converge(R"(
files:
  - path: /etc/resolv.conf
    content: "nameserver 10.0.0.2\n"
)");

  EXPECT_EQ(report.exitCode(), 2);
  EXPECT_TRUE(S_ISREG(statOf("/etc/resolv.conf").st_mode));
  EXPECT_EQ(modeOf("/etc/resolv.conf"), 0644u);
  EXPECT_EQ(read("/etc/resolv.conf"), "nameserver 10.0.0.2\n");
  EXPECT_EQ(read("/etc/resolv.target"), "nameserver 10.0.0.1\n");
}

TEST_F(ConvergeTest, FileThatCannotBeWrittenKeepsItsUnitFromStarting) {
  // The file's parent is a regular file: the write fails.
  write("/opt/tool", "a binary\n");
  fake_.setUnit("tool.service", systemd::UnitStatus{.loadState = "loaded",
                                                    .activeState = "inactive",
                                                    .subState = "dead",
                                                    .unitFileState = "enabled"});
  fake_.setUnit("other.service", systemd::UnitStatus{.loadState = "loaded",
                                                     .activeState = "inactive",
                                                     .subState = "dead",
                                                     .unitFileState = "enabled"});

  Report report = converge(R"(
files:
  - path: /opt/tool/tool.conf
    content: "x\n"
units:
  - name: tool.service
    state: running
    restartOn: [/opt/tool/tool.conf]
  - name: other.service
    state: running
)");

  const Change& file = findChange(report.changes, "create", "file /opt/tool/tool.conf");
  EXPECT_EQ(file.outcome, Change::Outcome::kFailed);
  EXPECT_THAT(file.error, HasSubstr("/opt/tool exists and is not a directory"));
  // Started without its configuration it would run on the wrong one.
  const Change& start = findChange(report.changes, "start", "unit tool.service");
  EXPECT_EQ(start.outcome, Change::Outcome::kSkipped);
  EXPECT_EQ(start.error, "skipped: file /opt/tool/tool.conf was not changed");
  EXPECT_THAT(fake_.changes(), ElementsAre("start other.service"));
  EXPECT_EQ(report.exitCode(), 6);
}

TEST_F(ConvergeTest, DropInThatCannotBeWrittenKeepsOnlyItsUnitBack) {
  write("/etc/systemd/system/app.service.d", "not a directory\n");

  Report report = converge(R"(
units:
  - name: app.service
    content: "[Service]\nExecStart=/usr/bin/app\n"
    dropIns:
      - name: 10-env.conf
        content: "[Service]\nEnvironment=MODE=prod\n"
    enabled: true
    state: running
  - name: web.service
    content: "[Service]\nExecStart=/usr/bin/web\n"
    enabled: true
    state: running
)");

  const Change& dropIn =
      findChange(report.changes, "create", "drop-in /etc/systemd/system/app.service.d/10-env.conf");
  EXPECT_EQ(dropIn.outcome, Change::Outcome::kFailed);
  for (const char* action : {"enable", "start"}) {
    const Change& change = findChange(report.changes, action, "unit app.service");
    EXPECT_EQ(change.outcome, Change::Outcome::kSkipped) << action;
    EXPECT_EQ(change.error,
              "skipped: drop-in /etc/systemd/system/app.service.d/10-env.conf was not changed")
        << action;
  }
  EXPECT_THAT(fake_.changes(),
              ElementsAre("enable web.service", "daemon-reload", "start web.service"));
  EXPECT_EQ(fake_.unit("web.service").activeState, "active");
  EXPECT_EQ(fake_.unit("app.service").activeState, "inactive");
  EXPECT_EQ(report.exitCode(), 6);
}

TEST_F(ConvergeTest, FailedDaemonReloadSkipsTheJobsThatNeedIt) {
  fake_.failCall("daemon-reload", core::Status::internal("daemon-reload: Access denied"));

  Report report = converge(kAppState);

  const Change& reload = findChange(report.changes, "daemon-reload", "systemd");
  EXPECT_EQ(reload.outcome, Change::Outcome::kFailed);
  EXPECT_EQ(reload.error, "daemon-reload: Access denied");
  const Change& start = findChange(report.changes, "start", "unit app.service");
  EXPECT_EQ(start.outcome, Change::Outcome::kSkipped);
  EXPECT_EQ(start.error, "skipped: systemd was not changed");
  EXPECT_EQ(report.jobsQueued, 0u);
  EXPECT_EQ(fake_.pendingJobs(), 0u);
  // The files are in place for the next run.
  EXPECT_EQ(read("/etc/systemd/system/app.service"), "[Service]\nExecStart=/usr/bin/app\n");
  EXPECT_EQ(report.exitCode(), 6);
}

TEST_F(ConvergeTest, FailedDaemonReloadKeepsARunningUnitOnItsOldDefinition) {
  ASSERT_EQ(converge(kAppState).exitCode(), 2);
  fake_.clearCalls();
  fake_.failCall("daemon-reload", core::Status::internal("daemon-reload: Access denied"));

  Report report = converge(R"(
files:
  - path: /etc/app/app.conf
    content: "listen = 8080\n"
units:
  - name: app.service
    content: "[Service]\nExecStart=/usr/bin/app --v2\n"
    dropIns:
      - name: 10-env.conf
        content: "[Service]\nEnvironment=MODE=prod\n"
    enabled: true
    state: running
    restartOn: [/etc/app/app.conf]
)");

  EXPECT_EQ(findChange(report.changes, "restart", "unit app.service").outcome,
            Change::Outcome::kSkipped);
  EXPECT_THAT(fake_.changes(), ElementsAre("daemon-reload"));
  EXPECT_EQ(report.exitCode(), 6);
}

TEST_F(ConvergeTest, FailedEnableIsReportedAndTheUnitStillStarts) {
  fake_.setUnit("vendor.service", systemd::UnitStatus{.loadState = "loaded",
                                                      .activeState = "inactive",
                                                      .subState = "dead",
                                                      .unitFileState = "disabled"});
  fake_.failCall("enable vendor.service", core::Status::internal("enable: Access denied"));

  Report report = converge(R"(
units:
  - name: vendor.service
    enabled: true
    state: running
)");

  EXPECT_EQ(findChange(report.changes, "enable", "unit vendor.service").outcome,
            Change::Outcome::kFailed);
  EXPECT_EQ(findChange(report.changes, "start", "unit vendor.service").outcome,
            Change::Outcome::kApplied);
  EXPECT_EQ(fake_.unit("vendor.service").activeState, "active");
  EXPECT_EQ(report.exitCode(), 6);
}

}  // namespace
}  // namespace nodewarden::converge::test
