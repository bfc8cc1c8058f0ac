// Units: daemon-reload, start and stop, restarts on changed inputs, enablement.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/unit/converge/converge_test_support.h"

namespace nodewarden::converge::test {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

systemd::UnitStatus vendorUnit(const std::string& activeState, const std::string& unitFileState) {
  return systemd::UnitStatus{
      .loadState = "loaded",
      .activeState = activeState,
      .subState = activeState == "active" ? "running" : "dead",
      .unitFileState = unitFileState,
  };
}

// A unit whose file, drop-in and config file the state manages.
std::string appState(std::string_view unitFile = "[Service]\nExecStart=/usr/bin/app\n",
                     std::string_view config = "v1") {
  return R"(
files:
  - path: /etc/app.conf
    content: )" +
         yamlQuoted(config) + R"(
    mode: "0644"
units:
  - name: app.service
    content: )" +
         yamlQuoted(unitFile) + R"(
    dropIns:
      - name: 10-env.conf
        content: "[Service]\nEnvironment=A=1\n"
    enabled: true
    state: running
    restartOn: [/etc/app.conf]
)";
}

class UnitsTest : public ConvergeTest {
 protected:
  void SetUp() override {
    ASSERT_EQ(converge(appState()).exitCode(), 2);
    ASSERT_EQ(fake_.unit("app.service").activeState, "active");
    fake_.clearCalls();
  }
};

TEST_F(UnitsTest, StoppedUnitIsStarted) {
  setActiveState("app.service", "inactive");

  Plan planned = plan(appState());
  ASSERT_THAT(actions(planned.changes), ElementsAre("start unit app.service"));
  EXPECT_EQ(planned.changes[0].detail, "was inactive");
  Report report = apply(std::move(planned));

  EXPECT_THAT(fake_.changes(), ElementsAre("start app.service"));
  EXPECT_EQ(fake_.unit("app.service").activeState, "active");
  EXPECT_EQ(report.exitCode(), 2);
}

TEST_F(UnitsTest, FailedUnitIsStarted) {
  setActiveState("app.service", "failed");

  apply(plan(appState()));

  EXPECT_THAT(fake_.changes(), ElementsAre("start app.service"));
  EXPECT_EQ(fake_.unit("app.service").activeState, "active");
}

TEST_F(UnitsTest, RunningUnitDesiredStoppedIsStopped) {
  const std::string state = R"(
units:
  - name: app.service
    state: stopped
)";
  Plan planned = plan(state);
  ASSERT_THAT(actions(planned.changes), ElementsAre("stop unit app.service"));
  apply(std::move(planned));

  EXPECT_THAT(fake_.changes(), ElementsAre("stop app.service"));
  EXPECT_EQ(fake_.unit("app.service").activeState, "inactive");
  EXPECT_TRUE(plan(state).empty());
}

TEST_F(UnitsTest, EditedUnitFileIsRewrittenReloadedAndRestarted) {
  write("/etc/systemd/system/app.service", "[Service]\nExecStart=/bin/false\n");

  Plan planned = plan(appState());
  EXPECT_THAT(actions(planned.changes),
              ElementsAre("update unit file /etc/systemd/system/app.service",
                          "daemon-reload systemd", "restart unit app.service"));
  EXPECT_EQ(planned.changes[0].detail, "content");
  EXPECT_EQ(findChange(planned.changes, "restart", "unit app.service").detail, "unit file changed");
  apply(std::move(planned));

  EXPECT_EQ(read("/etc/systemd/system/app.service"), "[Service]\nExecStart=/usr/bin/app\n");
  EXPECT_THAT(fake_.changes(), ElementsAre("daemon-reload", "restart app.service"));
  EXPECT_TRUE(plan(appState()).empty());
}

TEST_F(UnitsTest, ChangedUnitFileRestartsTheRunningUnitAfterOneReload) {
  const std::string changed = appState("[Service]\nExecStart=/usr/bin/app --v2\n");

  Plan planned = plan(changed);
  EXPECT_THAT(actions(planned.changes),
              ElementsAre("update unit file /etc/systemd/system/app.service",
                          "daemon-reload systemd", "restart unit app.service"));
  apply(std::move(planned));

  EXPECT_EQ(read("/etc/systemd/system/app.service"), "[Service]\nExecStart=/usr/bin/app --v2\n");
  EXPECT_THAT(fake_.changes(), ElementsAre("daemon-reload", "restart app.service"));
}

TEST_F(UnitsTest, EditedDropInIsRewrittenReloadedAndRestarted) {
  write("/etc/systemd/system/app.service.d/10-env.conf", "[Service]\nEnvironment=A=2\n");

  Plan planned = plan(appState());
  EXPECT_THAT(actions(planned.changes),
              ElementsAre("update drop-in /etc/systemd/system/app.service.d/10-env.conf",
                          "daemon-reload systemd", "restart unit app.service"));
  apply(std::move(planned));

  EXPECT_EQ(read("/etc/systemd/system/app.service.d/10-env.conf"), "[Service]\nEnvironment=A=1\n");
  EXPECT_THAT(fake_.changes(), ElementsAre("daemon-reload", "restart app.service"));
}

TEST_F(UnitsTest, UnitFileModeDriftIsFixedWithoutReloadOrRestart) {
  // systemd does not read a unit file's mode: fixing it is no reason to
  // reload, let alone to restart the service.
  ASSERT_EQ(::chmod(hostPath("/etc/systemd/system/app.service").c_str(), 0600), 0);

  Plan planned = plan(appState());
  ASSERT_THAT(actions(planned.changes),
              ElementsAre("update unit file /etc/systemd/system/app.service"));
  EXPECT_EQ(planned.changes[0].detail, "mode 0600 -> 0644");
  apply(std::move(planned));

  EXPECT_EQ(modeOf("/etc/systemd/system/app.service"), 0644u);
  EXPECT_THAT(fake_.changes(), IsEmpty());
}

TEST_F(UnitsTest, UnitFileChangedBehindSystemdsBackGetsOneReloadOnly) {
  systemd::UnitStatus status = fake_.unit("app.service");
  status.needDaemonReload = true;
  fake_.setUnit("app.service", status);

  Plan planned = plan(appState());
  ASSERT_THAT(actions(planned.changes), ElementsAre("daemon-reload systemd"));
  EXPECT_EQ(planned.changes[0].detail, "app.service changed on disk");
  Report report = apply(std::move(planned));

  EXPECT_THAT(fake_.changes(), ElementsAre("daemon-reload"));
  EXPECT_FALSE(fake_.unit("app.service").needDaemonReload);
  EXPECT_EQ(report.exitCode(), 2);
  EXPECT_TRUE(plan(appState()).empty());
}

TEST_F(UnitsTest, DropInManagedAsAFileIsFollowedByAReload) {
  const std::string state = R"(
files:
  - path: /etc/systemd/system/app.service.d/20-limits.conf
    content: "[Service]\nLimitNOFILE=65536\n"
)";

  Plan planned = plan(state);
  ASSERT_THAT(actions(planned.changes),
              ElementsAre("create file /etc/systemd/system/app.service.d/20-limits.conf",
                          "daemon-reload systemd"));
  apply(std::move(planned));

  EXPECT_THAT(fake_.changes(), ElementsAre("daemon-reload"));
}

TEST_F(UnitsTest, DropInRemovedAsAFileIsFollowedByAReload) {
  write("/etc/systemd/system/app.service.d/99-old.conf", "[Service]\nEnvironment=OLD=1\n");
  const std::string state = R"(
files:
  - path: /etc/systemd/system/app.service.d/99-old.conf
    ensure: absent
)";

  Plan planned = plan(state);
  ASSERT_THAT(actions(planned.changes),
              ElementsAre("delete file /etc/systemd/system/app.service.d/99-old.conf",
                          "daemon-reload systemd"));
  apply(std::move(planned));

  EXPECT_FALSE(exists("/etc/systemd/system/app.service.d/99-old.conf"));
  EXPECT_THAT(fake_.changes(), ElementsAre("daemon-reload"));
}

TEST_F(UnitsTest, ChangedConfigRestartsTheRunningUnitListingIt) {
  Plan planned = plan(appState("[Service]\nExecStart=/usr/bin/app\n", "v2"));
  ASSERT_THAT(actions(planned.changes),
              ElementsAre("update file /etc/app.conf", "restart unit app.service"));
  EXPECT_EQ(planned.changes[1].detail, "/etc/app.conf changed");
  apply(std::move(planned));

  EXPECT_EQ(read("/etc/app.conf"), "v2");
  EXPECT_THAT(fake_.changes(), ElementsAre("restart app.service"));
}

TEST_F(UnitsTest, ConfigModeChangeDoesNotRestart) {
  ASSERT_EQ(::chmod(hostPath("/etc/app.conf").c_str(), 0600), 0);

  Plan planned = plan(appState());
  ASSERT_THAT(actions(planned.changes), ElementsAre("update file /etc/app.conf"));
  apply(std::move(planned));

  EXPECT_THAT(fake_.changes(), IsEmpty());
}

// Five units on two config files, each in its own situation.
std::string restartState(std::string_view a, std::string_view b) {
  return R"(
files:
  - path: /etc/a.conf
    content: )" +
         yamlQuoted(a) + R"(
  - path: /etc/b.conf
    content: )" +
         yamlQuoted(b) + R"(
units:
  - name: on-a.service
    restartOn: [/etc/a.conf]
  - name: on-b.service
    restartOn: [/etc/b.conf]
  - name: on-both.service
    restartOn: [/etc/b.conf, /etc/a.conf]
  - name: stopped-on-a.service
    restartOn: [/etc/a.conf]
  - name: wanted-on-a.service
    state: running
    restartOn: [/etc/a.conf]
)";
}

class RestartOnTest : public ConvergeTest {
 protected:
  void SetUp() override {
    write("/etc/a.conf", "a1");
    write("/etc/b.conf", "b1");
    for (const char* unit : {"on-a.service", "on-b.service", "on-both.service"}) {
      fake_.setUnit(unit, vendorUnit("active", "enabled"));
    }
    fake_.setUnit("stopped-on-a.service", vendorUnit("inactive", "enabled"));
    fake_.setUnit("wanted-on-a.service", vendorUnit("inactive", "enabled"));
  }
};

TEST_F(RestartOnTest, ChangedFileRestartsOnlyTheRunningUnitsListingIt) {
  Plan planned = plan(restartState("a2", "b1"));

  EXPECT_THAT(actions(planned.changes),
              ElementsAre("update file /etc/a.conf", "restart unit on-a.service",
                          "restart unit on-both.service", "start unit wanted-on-a.service"));
  EXPECT_EQ(findChange(planned.changes, "restart", "unit on-both.service").detail,
            "/etc/a.conf changed");
  apply(std::move(planned));

  // The inactive unit that should run is started, not restarted; the one
  // left as it is stays stopped.
  EXPECT_THAT(fake_.changes(), ElementsAre("restart on-a.service", "restart on-both.service",
                                           "start wanted-on-a.service"));
  EXPECT_EQ(fake_.unit("stopped-on-a.service").activeState, "inactive");
}

TEST_F(RestartOnTest, UnitRestartsOnceHoweverManyOfItsFilesChanged) {
  setActiveState("wanted-on-a.service", "active");

  Plan planned = plan(restartState("a2", "b2"));

  EXPECT_THAT(actions(planned.changes),
              ElementsAre("update file /etc/a.conf", "update file /etc/b.conf",
                          "restart unit on-a.service", "restart unit on-b.service",
                          "restart unit on-both.service", "restart unit wanted-on-a.service"));
  EXPECT_EQ(findChange(planned.changes, "restart", "unit on-both.service").detail,
            "/etc/b.conf changed, /etc/a.conf changed");
  ASSERT_EQ(planned.jobs.size(), 4u);
}

TEST_F(RestartOnTest, DeletedFileRestartsTheUnitsListingIt) {
  Plan planned = plan(R"(
files:
  - path: /etc/a.conf
    ensure: absent
units:
  - name: on-a.service
    restartOn: [/etc/a.conf]
  - name: on-b.service
)");

  EXPECT_THAT(actions(planned.changes),
              ElementsAre("delete file /etc/a.conf", "restart unit on-a.service"));
  apply(std::move(planned));

  EXPECT_FALSE(exists("/etc/a.conf"));
  EXPECT_THAT(fake_.changes(), ElementsAre("restart on-a.service"));
}

TEST_F(RestartOnTest, NothingRestartsWhenNothingChanged) {
  setActiveState("wanted-on-a.service", "active");

  Plan planned = plan(restartState("a1", "b1"));

  EXPECT_TRUE(planned.empty());
  apply(std::move(planned));
  EXPECT_THAT(fake_.changes(), IsEmpty());
}

TEST_F(ConvergeTest, StaticUnitIsNotEnabledAgain) {
  fake_.setUnit("static.service", vendorUnit("inactive", "static"));
  const std::string state = R"(
units:
  - name: static.service
    enabled: true
)";

  EXPECT_TRUE(plan(state).empty());
  apply(plan(state));
  EXPECT_THAT(fake_.changes(), IsEmpty());
}

TEST_F(ConvergeTest, EnabledAliasesAndGeneratedUnitsAreLeftAlone) {
  fake_.setUnit("indirect.service", vendorUnit("inactive", "indirect"));
  fake_.setUnit("generated.service", vendorUnit("inactive", "generated"));
  fake_.setUnit("runtime.service", vendorUnit("inactive", "enabled-runtime"));

  EXPECT_TRUE(plan(R"(
units:
  - name: indirect.service
    enabled: true
  - name: generated.service
    enabled: true
  - name: runtime.service
    enabled: true
)")
                  .empty());
}

TEST_F(ConvergeTest, DisabledUnitIsEnabledAndStaysEnabled) {
  fake_.setUnit("vendor.service", vendorUnit("active", "disabled"));
  const std::string state = R"(
units:
  - name: vendor.service
    enabled: true
)";

  Plan planned = plan(state);
  ASSERT_THAT(actions(planned.changes),
              ElementsAre("enable unit vendor.service", "daemon-reload systemd"));
  EXPECT_EQ(planned.changes[0].detail, "was disabled");
  EXPECT_EQ(apply(std::move(planned)).exitCode(), 2);

  EXPECT_THAT(fake_.changes(), ElementsAre("enable vendor.service", "daemon-reload"));
  EXPECT_EQ(fake_.unit("vendor.service").unitFileState, "enabled");
  // Enabling is not a reason to restart a running unit.
  EXPECT_EQ(fake_.unit("vendor.service").activeState, "active");
  fake_.clearCalls();
  EXPECT_TRUE(plan(state).empty());
}

TEST_F(ConvergeTest, EnabledUnitDesiredDisabledIsDisabled) {
  fake_.setUnit("vendor.service", vendorUnit("active", "enabled"));
  const std::string state = R"(
units:
  - name: vendor.service
    enabled: false
)";

  Plan planned = plan(state);
  ASSERT_THAT(actions(planned.changes),
              ElementsAre("disable unit vendor.service", "daemon-reload systemd"));
  EXPECT_EQ(planned.changes[0].detail, "was enabled");
  apply(std::move(planned));

  EXPECT_THAT(fake_.changes(), ElementsAre("disable vendor.service", "daemon-reload"));
  EXPECT_EQ(fake_.unit("vendor.service").unitFileState, "disabled");
  EXPECT_EQ(fake_.unit("vendor.service").activeState, "active");
  EXPECT_TRUE(plan(state).empty());
}

TEST_F(ConvergeTest, DisabledAndStaticUnitsAreNotDisabledAgain) {
  fake_.setUnit("disabled.service", vendorUnit("inactive", "disabled"));
  fake_.setUnit("static.service", vendorUnit("inactive", "static"));

  EXPECT_TRUE(plan(R"(
units:
  - name: disabled.service
    enabled: false
  - name: static.service
    enabled: false
)")
                  .empty());
}

TEST_F(ConvergeTest, UnitLeftAsItIsIsNeitherStartedNorStopped) {
  fake_.setUnit("up.service", vendorUnit("active", "enabled"));
  fake_.setUnit("down.service", vendorUnit("inactive", "disabled"));

  EXPECT_TRUE(plan(R"(
units:
  - name: up.service
  - name: down.service
)")
                  .empty());
}

}  // namespace
}  // namespace nodewarden::converge::test
