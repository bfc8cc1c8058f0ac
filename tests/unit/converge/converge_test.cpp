// Converging a whole state: the first run on an empty node, the no-op run
// after it, dry runs, and states that cannot be applied at all.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <optional>

#include "tests/unit/converge/converge_test_support.h"

namespace nodewarden::converge::test {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

// Directories out of order on purpose: parents must still come first.
constexpr std::string_view kAppState = R"(
directories:
  - path: /srv/app/data
    mode: "0700"
  - path: /srv/app
    mode: "0750"
files:
  - path: /srv/app/app.conf
    content: |
      listen = 8080
    mode: "0640"
  - path: /srv/app/data/seed.bin
    contentBase64: AAEC/w==
    mode: "0600"
units:
  - name: app.service
    content: |
      [Service]
      ExecStart=/usr/bin/app
    dropIns:
      - name: 10-env.conf
        content: "[Service]\nEnvironment=MODE=prod\n"
    enabled: true
    state: running
    restartOn: [/srv/app/app.conf]
)";

constexpr std::string_view kUnitFile = "[Service]\nExecStart=/usr/bin/app\n";
constexpr std::string_view kDropIn = "[Service]\nEnvironment=MODE=prod\n";

TEST_F(ConvergeTest, EmptyNodePlansEverythingInPhaseOrder) {
  Plan planned = plan(kAppState);

  EXPECT_THAT(
      actions(planned.changes),
      ElementsAre("create directory /srv/app", "create directory /srv/app/data",
                  "create file /srv/app/app.conf", "create file /srv/app/data/seed.bin",
                  "create unit file /etc/systemd/system/app.service",
                  "create drop-in /etc/systemd/system/app.service.d/10-env.conf",
                  "enable unit app.service", "daemon-reload systemd", "start unit app.service"));
  EXPECT_EQ(findChange(planned.changes, "create", "directory /srv/app").detail, "mode 0750");
  EXPECT_EQ(findChange(planned.changes, "create", "file /srv/app/data/seed.bin").detail,
            "mode 0600, 4 bytes");
  // One reload, and only jobs for what the node lacks: a unit not yet
  // running is started, not restarted.
  ASSERT_EQ(planned.jobs.size(), 1u);
  EXPECT_EQ(planned.jobs[0].kind, systemd::JobKind::kStart);
  EXPECT_EQ(planned.jobs[0].unit, "app.service");
}

TEST_F(ConvergeTest, FirstApplyMakesTheNodeMatchTheState) {
  Report report = converge(kAppState);

  EXPECT_EQ(modeOf("/srv/app"), 0750u);
  EXPECT_EQ(modeOf("/srv/app/data"), 0700u);
  EXPECT_EQ(read("/srv/app/app.conf"), "listen = 8080\n");
  EXPECT_EQ(modeOf("/srv/app/app.conf"), 0640u);
  EXPECT_EQ(read("/srv/app/data/seed.bin"), std::string("\x00\x01\x02\xff", 4));
  EXPECT_EQ(modeOf("/srv/app/data/seed.bin"), 0600u);
  EXPECT_EQ(read("/etc/systemd/system/app.service"), kUnitFile);
  EXPECT_EQ(modeOf("/etc/systemd/system/app.service"), 0644u);
  EXPECT_EQ(read("/etc/systemd/system/app.service.d/10-env.conf"), kDropIn);

  // Enabled before the one reload, so that systemd reports the unit enabled
  // after it (as `systemctl enable` reloads after enabling); started last.
  EXPECT_THAT(fake_.changes(),
              ElementsAre("enable app.service", "daemon-reload", "start app.service"));
  const systemd::UnitStatus unit = fake_.unit("app.service");
  EXPECT_EQ(unit.activeState, "active");
  EXPECT_EQ(unit.unitFileState, "enabled");

  EXPECT_EQ(report.changes.size(), 9u);
  for (const Change& change : report.changes) {
    EXPECT_EQ(change.outcome, Change::Outcome::kApplied)
        << change.action << " " << change.resource << ": " << change.error;
  }
  EXPECT_EQ(report.changed(), 9u);
  EXPECT_EQ(report.failed(), 0u);
  EXPECT_EQ(report.jobsQueued, 1u);
  EXPECT_FALSE(report.dryRun);
  EXPECT_EQ(report.exitCode(), 2);
}

TEST_F(ConvergeTest, JobsStartOnlyOnceEveryFileIsInPlace) {
  std::vector<std::string> missingAtStart;
  systemd_.onJob([&](const std::string&) {
    for (const char* path :
         {"/srv/app/app.conf", "/srv/app/data/seed.bin", "/etc/systemd/system/app.service",
          "/etc/systemd/system/app.service.d/10-env.conf"}) {
      if (!exists(path)) missingAtStart.push_back(path);
    }
    EXPECT_THAT(fake_.changes(), ElementsAre("enable app.service", "daemon-reload"));
  });

  converge(kAppState);

  EXPECT_THAT(missingAtStart, IsEmpty());
  EXPECT_THAT(fake_.changes(),
              ElementsAre("enable app.service", "daemon-reload", "start app.service"));
}

TEST_F(ConvergeTest, ReportArrivesWhenTheLastJobHasFinished) {
  std::optional<Report> report;
  executor_.apply(plan(kAppState), [&report](Report done) { report = std::move(done); });
  EXPECT_TRUE(executor_.busy());
  EXPECT_FALSE(report.has_value());
  EXPECT_EQ(fake_.pendingJobs(), 1u);

  clock_.advance(std::chrono::seconds(3));
  fake_.completeJobs();

  ASSERT_TRUE(report.has_value());
  EXPECT_FALSE(executor_.busy());
  EXPECT_EQ(report->duration, std::chrono::seconds(3));
  EXPECT_EQ(findChange(report->changes, "start", "unit app.service").outcome,
            Change::Outcome::kApplied);
}

TEST_F(ConvergeTest, SecondRunIsANoOpThatWritesNothing) {
  ASSERT_EQ(converge(kAppState).exitCode(), 2);
  fake_.clearCalls();
  const auto before = snapshot();

  Plan again = plan(kAppState);
  EXPECT_THAT(actions(again.changes), IsEmpty());
  EXPECT_TRUE(again.empty());
  EXPECT_THAT(again.jobs, IsEmpty());
  Report report = apply(std::move(again));

  EXPECT_EQ(report.exitCode(), 0);
  EXPECT_EQ(report.jobsQueued, 0u);
  EXPECT_THAT(fake_.changes(), IsEmpty());
  EXPECT_THAT(fake_.calls(), ElementsAre("status app.service"));
  EXPECT_EQ(snapshot(), before);
}

TEST_F(ConvergeTest, PlanningAloneChangesNothing) {
  // A node that is partly there: one file drifted, one missing, unit stopped.
  ASSERT_EQ(converge(kAppState).exitCode(), 2);
  write("/srv/app/app.conf", "listen = 9090\n", 0640);
  std::filesystem::remove(hostPath("/srv/app/data/seed.bin"));
  setActiveState("app.service", "inactive");
  fake_.clearCalls();
  const auto before = snapshot();

  Plan planned = plan(kAppState);
  Report report = dryRunReport(planned);

  EXPECT_THAT(actions(planned.changes),
              ElementsAre("update file /srv/app/app.conf", "create file /srv/app/data/seed.bin",
                          "start unit app.service"));
  EXPECT_TRUE(report.dryRun);
  EXPECT_EQ(actions(report.changes), actions(planned.changes));
  for (const Change& change : report.changes) {
    EXPECT_EQ(change.outcome, Change::Outcome::kPlanned);
  }
  EXPECT_EQ(snapshot(), before);
  EXPECT_THAT(fake_.changes(), IsEmpty());
  EXPECT_EQ(fake_.unit("app.service").activeState, "inactive");
  // Planning again sees the same node.
  EXPECT_EQ(actions(plan(kAppState).changes), actions(planned.changes));
}

TEST_F(ConvergeTest, EmptyNodeDryRunCreatesNothing) {
  const auto before = snapshot();
  Plan planned = plan(kAppState);
  EXPECT_FALSE(planned.empty());
  EXPECT_EQ(snapshot(), before);
  EXPECT_THAT(fake_.changes(), IsEmpty());
}

TEST_F(ConvergeTest, UnknownOwnerFailsThePlanAsAWholeAndChangesNothing) {
  const auto before = snapshot();
  core::Result<Plan> planned = planner_.plan(load(R"(
directories:
  - path: /srv/app
files:
  - path: /srv/app/good.conf
    content: fine
  - path: /srv/app/secret.conf
    content: hush
    owner: nodewarden-no-such-user
units:
  - name: app.service
    content: "[Service]\nExecStart=/usr/bin/app\n"
    enabled: true
    state: running
)"));

  ASSERT_FALSE(planned.isOk());
  EXPECT_THAT(planned.status().message(),
              HasSubstr("file /srv/app/secret.conf: user nodewarden-no-such-user does not exist"));
  EXPECT_EQ(snapshot(), before);
  EXPECT_THAT(fake_.changes(), IsEmpty());
}

TEST_F(ConvergeTest, UnknownGroupFailsThePlanAsAWhole) {
  core::Result<Plan> planned = planner_.plan(load(R"(
directories:
  - path: /srv/app
    group: nodewarden-no-such-group
files:
  - path: /srv/other.conf
    content: fine
)"));

  ASSERT_FALSE(planned.isOk());
  EXPECT_THAT(planned.status().message(),
              HasSubstr("directory /srv/app: group nodewarden-no-such-group does not exist"));
  EXPECT_FALSE(exists("/srv"));
}

}  // namespace
}  // namespace nodewarden::converge::test
