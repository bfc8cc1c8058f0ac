// OOM kills of managed units: counting within the window on simulated time,
// one kill told by two sources counted once, the Degraded condition raised and
// cleared; and the kernel log lines the kills are read from.

#include "agent/heal/oom_monitor.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>

#include "agent/core/loop.h"
#include "agent/core/simulated_clock.h"
#include "agent/heal/health.h"
#include "agent/heal/kernel_log.h"
#include "nodewarden/v1/state.pb.h"

namespace nodewarden::heal {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

constexpr char kUnit[] = "app.service";

class OomMonitorTest : public ::testing::Test {
 protected:
  OomMonitorTest() {
    monitor_.configure(v1::OomKills());
    monitor_.setUnits({kUnit, "containerd.service"});
  }

  const Condition* degraded(const std::string& unit = kUnit) const {
    return board_.get(unit, condition::kDegraded);
  }
  size_t oomEvents() const {
    size_t count = 0;
    for (const Event& e : board_.events()) count += e.reason == "OOMKilled";
    return count;
  }

  core::SimulatedClock clock_;
  HealthBoard board_{clock_, ""};
  OomMonitor monitor_{clock_, board_};
};

TEST_F(OomMonitorTest, EveryKillIsAWarningEventOnTheUnit) {
  monitor_.oomKilled(kUnit, "stress (pid 1234) killed by the kernel's OOM killer");

  ASSERT_EQ(board_.events().size(), 1u);
  const Event& event = board_.events().back();
  EXPECT_EQ(event.subject, kUnit);
  EXPECT_EQ(event.reason, "OOMKilled");
  EXPECT_TRUE(event.warning);
  EXPECT_THAT(event.message, HasSubstr("stress (pid 1234)"));
  EXPECT_THAT(event.message, HasSubstr("1 OOM kill within 1h"));
  EXPECT_EQ(degraded(), nullptr);
}

TEST_F(OomMonitorTest, TheThirdKillWithinTheWindowDegradesTheUnitUntilTheWindowPasses) {
  monitor_.oomKilled(kUnit, "first");
  clock_.advance(10min);
  monitor_.oomKilled(kUnit, "second");
  EXPECT_EQ(degraded(), nullptr);
  clock_.advance(10min);
  monitor_.oomKilled(kUnit, "third");

  ASSERT_NE(degraded(), nullptr);
  EXPECT_TRUE(degraded()->status);
  EXPECT_EQ(degraded()->reason, "OOMKilled");
  EXPECT_THAT(degraded()->message, HasSubstr("3 times within 1h"));
  EXPECT_THAT(degraded()->message, HasSubstr("third"));
  EXPECT_EQ(oomEvents(), 3u);
  EXPECT_EQ(monitor_.recentKills(kUnit), 3u);

  // The first kill leaves the window 1h after it: two are left.
  clock_.advance(40min - 1s);
  EXPECT_TRUE(degraded()->status);
  clock_.advance(1s);
  EXPECT_FALSE(degraded()->status);
  EXPECT_EQ(degraded()->reason, "NoRecentOOMKills");
  EXPECT_EQ(monitor_.recentKills(kUnit), 2u);
  EXPECT_EQ(clock_.armedTimers(), 0u);
}

TEST_F(OomMonitorTest, KillsFurtherApartThanTheWindowNeverDegrade) {
  for (int i = 0; i < 5; ++i) {
    monitor_.oomKilled(kUnit, "kill");
    clock_.advance(31min);
  }
  EXPECT_EQ(degraded(), nullptr);
  EXPECT_EQ(oomEvents(), 5u);
}

TEST_F(OomMonitorTest, OneKillToldByTheKernelAndBySystemdCountsOnce) {
  monitor_.oomKilled(kUnit, "stress (pid 1234) killed by the kernel's OOM killer");
  clock_.advance(800ms);
  monitor_.oomKilled(kUnit, "systemd: the service ended with result oom-kill");
  EXPECT_EQ(oomEvents(), 1u);
  EXPECT_EQ(monitor_.recentKills(kUnit), 1u);
  EXPECT_THAT(board_.events().back().message, HasSubstr("stress"));

  clock_.advance(3s);
  monitor_.oomKilled(kUnit, "again");
  EXPECT_EQ(oomEvents(), 2u);
  EXPECT_EQ(monitor_.recentKills(kUnit), 2u);
}

TEST_F(OomMonitorTest, KillsOfUnitsNotManagedAreIgnored) {
  monitor_.oomKilled("docker-abc.scope", "somebody else's");
  monitor_.oomKilled("user@1000.service", "a user's");
  EXPECT_THAT(board_.events(), IsEmpty());
  EXPECT_EQ(monitor_.recentKills("docker-abc.scope"), 0u);
}

TEST_F(OomMonitorTest, TheSettingsChooseCountAndWindow) {
  v1::OomKills config;
  config.set_kills(2);
  config.set_window("10m");
  monitor_.configure(config);

  monitor_.oomKilled(kUnit, "one");
  clock_.advance(9min);
  monitor_.oomKilled(kUnit, "two");
  ASSERT_NE(degraded(), nullptr);
  EXPECT_TRUE(degraded()->status);
  EXPECT_THAT(degraded()->message, HasSubstr("2 times within 10m"));
  clock_.advance(1min);
  EXPECT_FALSE(degraded()->status);
}

TEST_F(OomMonitorTest, LoweringTheCountAppliesToTheKillsAlreadySeen) {
  monitor_.oomKilled(kUnit, "one");
  clock_.advance(5s);
  monitor_.oomKilled(kUnit, "two");
  EXPECT_EQ(degraded(), nullptr);

  v1::OomKills config;
  config.set_kills(2);
  monitor_.configure(config);
  ASSERT_NE(degraded(), nullptr);
  EXPECT_TRUE(degraded()->status);
}

TEST_F(OomMonitorTest, ADegradedConditionOfAnotherCauseIsLeftAlone) {
  board_.set(kUnit, condition::kDegraded, true, "SomethingElse", "not ours");
  for (int i = 0; i < 3; ++i) {
    monitor_.oomKilled(kUnit, "kill");
    clock_.advance(1min);
  }
  EXPECT_EQ(degraded()->reason, "OOMKilled");
  clock_.advance(2h);
  EXPECT_FALSE(degraded()->status);

  board_.set("containerd.service", condition::kDegraded, true, "SomethingElse", "not ours");
  monitor_.oomKilled("containerd.service", "one kill");
  clock_.advance(2h);
  EXPECT_TRUE(degraded("containerd.service")->status);
  EXPECT_EQ(degraded("containerd.service")->reason, "SomethingElse");
}

TEST_F(OomMonitorTest, AConditionFromTheLastRunClearsOneWindowAfterItWasRaised) {
  HealthBoard board(clock_, "");
  board.set("kubelet.service", condition::kDegraded, true, "OOMKilled", "from before");
  clock_.advance(20min);
  OomMonitor monitor(clock_, board);
  monitor.configure(v1::OomKills());
  monitor.setUnits({"kubelet.service"});

  EXPECT_TRUE(board.holds("kubelet.service", condition::kDegraded));
  clock_.advance(40min - 1s);
  EXPECT_TRUE(board.holds("kubelet.service", condition::kDegraded));
  clock_.advance(1s);
  EXPECT_FALSE(board.holds("kubelet.service", condition::kDegraded));
  EXPECT_EQ(board.get("kubelet.service", condition::kDegraded)->reason, "NoRecentOOMKills");
}

TEST_F(OomMonitorTest, AUnitNoLongerManagedIsForgotten) {
  monitor_.oomKilled(kUnit, "one");
  monitor_.oomKilled("containerd.service", "one");
  monitor_.setUnits({"containerd.service"});
  EXPECT_EQ(monitor_.recentKills(kUnit), 0u);
  EXPECT_EQ(monitor_.recentKills("containerd.service"), 1u);
  monitor_.oomKilled(kUnit, "two");
  EXPECT_EQ(oomEvents(), 2u);
}

// Kernel messages as the journal holds them (no dmesg time stamp).

constexpr char kMemcgKill[] =
    "oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,"
    "oom_memcg=/system.slice/app.service,task_memcg=/system.slice/app.service,task=stress,"
    "pid=1234,uid=0";

TEST(ParseOomKillTest, ReadsTheUnitProcessAndCauseOfACgroupV2Kill) {
  auto kill = parseOomKill(kMemcgKill);
  ASSERT_TRUE(kill.has_value());
  EXPECT_EQ(kill->unit, "app.service");
  EXPECT_EQ(kill->cgroup, "/system.slice/app.service");
  EXPECT_EQ(kill->task, "stress");
  EXPECT_EQ(kill->pid, "1234");
  EXPECT_EQ(kill->describe(),
            "stress (pid 1234) killed by the kernel's OOM killer: the memory limit of "
            "/system.slice/app.service was reached");
}

TEST(ParseOomKillTest, ReadsACgroupV1KillOfANewerKernel) {
  // On the v1 hierarchy cpuset names the cpuset cgroup, and the memory
  // controller's path is the unit's.
  auto kill = parseOomKill(
      "oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=kubelet.service,"
      "mems_allowed=0,oom_memcg=/system.slice/kubelet.service,"
      "task_memcg=/system.slice/kubelet.service,task=kubelet,pid=812,uid=0");
  ASSERT_TRUE(kill.has_value());
  EXPECT_EQ(kill->unit, "kubelet.service");
  EXPECT_EQ(kill->task, "kubelet");
  EXPECT_EQ(kill->pid, "812");
}

TEST(ParseOomKillTest, ReadsTheTaskInLineOfKernelsBefore419) {
  auto kill = parseOomKill(
      "Task in /system.slice/app.service killed as a result of limit of "
      "/system.slice/app.service");
  ASSERT_TRUE(kill.has_value());
  EXPECT_EQ(kill->unit, "app.service");
  EXPECT_EQ(kill->task, "");
  EXPECT_EQ(kill->describe(),
            "a process killed by the kernel's OOM killer: the memory limit of "
            "/system.slice/app.service was reached");
}

TEST(ParseOomKillTest, NamesANodeWideOutOfMemory) {
  auto kill = parseOomKill(
      "oom-kill:constraint=CONSTRAINT_NONE,nodemask=(null),cpuset=/,mems_allowed=0,global_oom,"
      "task_memcg=/system.slice/containerd.service,task=containerd,pid=655,uid=0");
  ASSERT_TRUE(kill.has_value());
  EXPECT_EQ(kill->unit, "containerd.service");
  EXPECT_THAT(kill->describe(), HasSubstr("the node ran out of memory"));
}

TEST(ParseOomKillTest, AProcessInANestedCgroupBelongsToTheUnitAboveIt) {
  auto kill = parseOomKill(
      "oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,"
      "oom_memcg=/system.slice/containerd.service,"
      "task_memcg=/system.slice/containerd.service/xyz,task=containerd-shim,pid=77,uid=0");
  ASSERT_TRUE(kill.has_value());
  EXPECT_EQ(kill->unit, "containerd.service");
  EXPECT_EQ(kill->cgroup, "/system.slice/containerd.service/xyz");
}

TEST(ParseOomKillTest, PodsAreNotUnits) {
  // systemd cgroup driver, cgroup v2
  EXPECT_FALSE(parseOomKill("oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,"
                            "mems_allowed=0,oom_memcg=/kubepods.slice/kubepods-burstable.slice/"
                            "kubepods-burstable-pod5f1e.slice/cri-containerd-9a2b.scope,"
                            "task_memcg=/kubepods.slice/kubepods-burstable.slice/"
                            "kubepods-burstable-pod5f1e.slice/cri-containerd-9a2b.scope,"
                            "task=java,pid=4242,uid=1000")
                   .has_value());
  // cgroupfs driver, cgroup v1
  EXPECT_FALSE(parseOomKill("oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=9a2b,"
                            "mems_allowed=0,oom_memcg=/kubepods/burstable/pod5f1e/9a2b,"
                            "task_memcg=/kubepods/burstable/pod5f1e/9a2b,task=java,pid=4242,uid=0")
                   .has_value());
  EXPECT_FALSE(parseOomKill("Task in /kubepods/besteffort/pod5f1e/9a2b killed as a result of "
                            "limit of /kubepods/besteffort/pod5f1e")
                   .has_value());
}

TEST(ParseOomKillTest, OtherKernelLinesAreNotKills) {
  for (const char* line : {
           "stress invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=0",
           "Memory cgroup out of memory: Killed process 1234 (stress) total-vm:1056716kB, "
           "anon-rss:1047552kB, file-rss:1024kB, shmem-rss:0kB, UID:0 pgtables:2104kB "
           "oom_score_adj:0",
           "oom_reaper: reaped process 1234 (stress), now anon-rss:0kB, file-rss:0kB",
           "memory: usage 1048576kB, limit 1048576kB, failcnt 42",
           "",
       }) {
    EXPECT_FALSE(parseOomKill(line).has_value()) << line;
  }
}

TEST(ParseOomKillTest, ToleratesADmesgStampACommaInTheCommandAndAnEscapedUnit) {
  auto kill = parseOomKill(
      "[ 4711.123456] oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,"
      "mems_allowed=0,oom_memcg=/system.slice/_cpu.service,task_memcg=/system.slice/_cpu.service,"
      "task=a,b,pid=99,uid=0\n");
  ASSERT_TRUE(kill.has_value());
  EXPECT_EQ(kill->unit, "cpu.service");
  EXPECT_EQ(kill->task, "a,b");
  EXPECT_EQ(kill->pid, "99");
}

TEST(UnitOfCgroupTest, IsTheFirstServiceOrScopeBelowTheSlices) {
  EXPECT_EQ(unitOfCgroup("/system.slice/app.service"), "app.service");
  EXPECT_EQ(unitOfCgroup("/runtime.slice/kubelet.service"), "kubelet.service");
  EXPECT_EQ(unitOfCgroup("/system.slice/containerd.service/xyz/deeper"), "containerd.service");
  EXPECT_EQ(unitOfCgroup("/system.slice/docker-1f2e.scope"), "docker-1f2e.scope");
  // A user's own app.service is not the system's app.service.
  EXPECT_EQ(unitOfCgroup("/user.slice/user-1000.slice/user@1000.service/app.slice/app.service"),
            "user@1000.service");
  EXPECT_EQ(unitOfCgroup("/"), "");
  EXPECT_EQ(unitOfCgroup(""), "");
  EXPECT_EQ(unitOfCgroup("/system.slice"), "");
  EXPECT_EQ(unitOfCgroup("/default/9a2b"), "");
  EXPECT_EQ(unitOfCgroup("/kubepods.slice/kubepods-pod1.slice/cri-containerd-1.scope"), "");
}

TEST(KernelLogTest, AJournalWithoutFilesIsAnErrorForTheCallerToLog) {
  auto loop = core::Loop::create();
  ASSERT_TRUE(loop.isOk()) << loop.status().message();
  std::string dir = std::filesystem::temp_directory_path() / "nodewarden-journal-XXXXXX";
  ASSERT_NE(::mkdtemp(dir.data()), nullptr);

  size_t kills = 0;
  auto log = KernelLog::open(
      **loop, [&](const OomKill&) { ++kills; }, dir);
  std::filesystem::remove_all(dir);

  ASSERT_FALSE(log.isOk());
  EXPECT_EQ(log.status().code(), core::Status::Code::kNotFound);
  EXPECT_THAT(log.status().message(), HasSubstr(dir));
  EXPECT_EQ(kills, 0u);
}

}  // namespace
}  // namespace nodewarden::heal
