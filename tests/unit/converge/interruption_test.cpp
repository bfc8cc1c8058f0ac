// What a run finds after an earlier run was killed half-way: restarts it owed
// and temporary files it left. The next run finishes the job.

#include <sys/stat.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "agent/converge/restart_ledger.h"
#include "tests/unit/converge/converge_test_support.h"

namespace nodewarden::converge::test {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

constexpr std::string_view kState = R"(
files:
  - path: /etc/app/app.conf
    content: "listen = 8080\n"
units:
  - name: app.service
    state: running
    restartOn: [/etc/app/app.conf]
  - name: other.service
    state: running
)";

systemd::UnitStatus running() {
  return {.loadState = "loaded",
          .activeState = "active",
          .subState = "running",
          .unitFileState = "enabled"};
}

class InterruptionTest : public ConvergeTest {
 protected:
  InterruptionTest() : ledger_(root_ + "/restarts-owed"), executor_(systemd_, clock_, &ledger_) {
    fake_.setUnit("app.service", running());
    fake_.setUnit("other.service", running());
  }

  Report applyWithLedger(Plan plan) {
    std::optional<Report> report;
    executor_.apply(std::move(plan), [&](Report done) { report = std::move(done); });
    fake_.completeJobs();
    EXPECT_TRUE(report.has_value());
    return report.value_or(Report{});
  }

  RestartLedger ledger_;
  Executor executor_;
};

TEST_F(InterruptionTest, RestartIsOnRecordWhileItsFilesChangeAndSettledAfter) {
  std::vector<std::string> onRecordAtJob;
  systemd_.onJob([&](const std::string&) {
    const auto owed = ledger_.owed();
    ASSERT_TRUE(owed.isOk());
    onRecordAtJob.assign(owed->begin(), owed->end());
  });
  auto plan = planner_.plan(load(kState));
  ASSERT_TRUE(plan.isOk());

  Report report = applyWithLedger(std::move(*plan));

  EXPECT_EQ(report.failed(), 0u);
  EXPECT_THAT(onRecordAtJob, ElementsAre("app.service"));
  EXPECT_THAT(*ledger_.owed(), IsEmpty());
  EXPECT_FALSE(exists("/restarts-owed"));
}

TEST_F(InterruptionTest, RestartOwedByAKilledRunIsDoneEvenThoughTheFilesMatch) {
  write("/etc/app/app.conf", "listen = 8080\n");  // the killed run wrote it
  ASSERT_TRUE(ledger_.record({"app.service"}).isOk());

  auto plan = planner_.plan(load(kState), *ledger_.owed());
  ASSERT_TRUE(plan.isOk());
  EXPECT_THAT(actions(plan->changes), ElementsAre("restart unit app.service"));
  EXPECT_EQ(plan->changes[0].detail, "owed by an interrupted run");
  fake_.clearCalls();

  Report report = applyWithLedger(std::move(*plan));
  EXPECT_EQ(report.exitCode(), 2);
  EXPECT_THAT(fake_.changes(), ElementsAre("restart app.service"));
  EXPECT_FALSE(exists("/restarts-owed"));

  auto next = planner_.plan(load(kState), *ledger_.owed());
  ASSERT_TRUE(next.isOk());
  EXPECT_TRUE(next->empty());
}

TEST_F(InterruptionTest, RestartThatFailedStaysOwed) {
  fake_.failJobsFor("app.service");
  auto plan = planner_.plan(load(kState));
  ASSERT_TRUE(plan.isOk());

  Report report = applyWithLedger(std::move(*plan));

  EXPECT_EQ(report.exitCode(), 6);
  EXPECT_THAT(*ledger_.owed(), ElementsAre("app.service"));
}

TEST_F(InterruptionTest, OwedRestartOfAUnitNoLongerRunningIsDropped) {
  write("/etc/app/app.conf", "listen = 8080\n");
  ASSERT_TRUE(ledger_.record({"app.service"}).isOk());
  setActiveState("app.service", "failed");

  auto plan = planner_.plan(load(kState), *ledger_.owed());
  ASSERT_TRUE(plan.isOk());
  EXPECT_THAT(actions(plan->changes), ElementsAre("start unit app.service"));
  applyWithLedger(std::move(*plan));
  EXPECT_FALSE(exists("/restarts-owed"));
}

TEST_F(InterruptionTest, LedgerThatCannotBeReadIsAnErrorNotANothingOwed) {
  ASSERT_EQ(::mkdir(hostPath("/restarts-owed").c_str(), 0700), 0);  // read() fails: EISDIR
  auto owed = ledger_.owed();
  ASSERT_FALSE(owed.isOk());
  EXPECT_THAT(owed.status().message(), ::testing::HasSubstr("read owed restarts"));
}

TEST_F(InterruptionTest, TemporaryFileLeftByAKilledWriteIsRemoved) {
  write("/etc/app/app.conf", "listen = 8080\n");
  write("/etc/app/.nodewarden-123456.app.conf", "listen = 80");  // killed before its rename

  auto plan = planner_.plan(load(kState));
  ASSERT_TRUE(plan.isOk());
  EXPECT_THAT(actions(plan->changes),
              ElementsAre("delete file /etc/app/.nodewarden-123456.app.conf"));
  applyWithLedger(std::move(*plan));

  EXPECT_FALSE(exists("/etc/app/.nodewarden-123456.app.conf"));
  EXPECT_EQ(read("/etc/app/app.conf"), "listen = 8080\n");
  // Removing it is not a content change: nothing restarted.
  EXPECT_THAT(fake_.changes(), IsEmpty());
}

}  // namespace
}  // namespace nodewarden::converge::test
