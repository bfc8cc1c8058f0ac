#include "agent/packages/dnf_package_manager.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <optional>

#include "agent/core/simulated_clock.h"
#include "agent/packages/rpm_query.h"
#include "tests/fakes/fake_process_runner.h"
#include "tests/unit/packages/package_backend_test_support.h"

namespace nodewarden::packages {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

using Ensure = PackageWant::Ensure;

constexpr std::string_view kInstalled =
    "containerd\t0\t1.6.20\t3.el9\tx86_64\n"
    "kubelet\t0\t1.28.1\t150500.1.1\tx86_64\n"
    "kernel\t0\t5.14.0\t362.el9\tx86_64\n"
    "kernel\t0\t5.14.0\t427.el9\tx86_64\n"
    "tzdata\t2\t2023c\t1.el9\tnoarch\n";

constexpr std::string_view kRepoquery =
    "containerd\t0:1.6.20-3.el9\n"
    "containerd\t0:1.7.2-1.el9\n"
    "containerd\t0:1.7.2-1.el9\n"  // another architecture
    "runc\t2:1.1.9-1.el9\n"
    "kubelet\t0:1.28.2-150500.1.1\n";

std::string rpmQueryCommand() { return "rpm -qa --queryformat " + std::string(kRpmQueryFormat); }
const std::string kRepoqueryCommand =
    "dnf -q repoquery --qf %{name}\\t%{epoch}:%{version}-%{release} --showduplicates --available";

class DnfPackageManagerTest : public ::testing::Test {
 protected:
  DnfPackageManagerTest() {
    root_.write("/etc/dnf/plugins/versionlock.list",
                "# Added lock on Sun Nov 22 00:37:36 2026\n"
                "kubelet-0:1.28.1-150500.1.1.*\n\n!containerd-0:1.5.0-1.el9.*\n");
    runner_.respond({"rpm"}, 0, std::string(kInstalled));
  }

  DnfPackageManager::Options options() {
    return {.root = "", .versionlockList = root_.path() + "/etc/dnf/plugins/versionlock.list"};
  }

  template <typename Result, typename Start>
  Result finish(Start start) {
    std::optional<Result> result;
    start([&](Result r) { result = std::move(r); });
    EXPECT_FALSE(result) << "finished inside the call";
    while (!result && (runner_.complete() > 0 || clock_.armedTimers() > 0)) {
      clock_.advance(core::Duration::zero());
    }
    if (!result) return core::Status::internal("never finished");
    return std::move(*result);
  }
  core::Result<PackageSnapshot> observe(DnfPackageManager& manager,
                                        const std::vector<PackageWant>& wants) {
    return finish<core::Result<PackageSnapshot>>(
        [&](auto done) { manager.observe(wants, std::move(done)); });
  }
  core::Status apply(DnfPackageManager& manager, const PackageTransaction& transaction) {
    return finish<core::Status>([&](auto done) { manager.apply(transaction, std::move(done)); });
  }

  test::TemporaryRoot root_;
  core::FakeProcessRunner runner_;
  core::SimulatedClock clock_;
};

TEST_F(DnfPackageManagerTest, ReadsInstalledAndLocksThenAsksTheArchiveOnce) {
  runner_.respond({"dnf", "-q", "repoquery"}, 0, std::string(kRepoquery));
  DnfPackageManager manager(runner_, clock_, options());

  core::Result<PackageSnapshot> snapshot =
      observe(manager, {{.name = "containerd", .ensure = Ensure::kLatest},
                        {.name = "runc"},
                        {.name = "kubelet", .version = "1.28.2"},
                        {.name = "kernel"},
                        {.name = "tzdata", .version = "2023c"}});

  ASSERT_TRUE(snapshot) << snapshot.status().message();
  EXPECT_THAT(runner_.commands(),
              ElementsAre(rpmQueryCommand(), kRepoqueryCommand + " containerd runc kubelet"));
  const PackageInfo& containerd = snapshot->packages["containerd"];
  EXPECT_EQ(containerd.installed, "1.6.20-3.el9");
  EXPECT_FALSE(containerd.held);  // an exclusion is not a lock
  EXPECT_EQ(containerd.candidate, "1.7.2-1.el9");
  EXPECT_THAT(containerd.available, ElementsAre("1.7.2-1.el9", "1.6.20-3.el9"));
  EXPECT_THAT(snapshot->packages["runc"].available, ElementsAre("2:1.1.9-1.el9"));
  EXPECT_TRUE(snapshot->packages["kubelet"].held);
  EXPECT_EQ(snapshot->packages["kernel"].installed, "5.14.0-427.el9");
  EXPECT_EQ(snapshot->packages["tzdata"].installed, "2:2023c-1.el9");
  EXPECT_FALSE(snapshot->packages["tzdata"].queried);
  EXPECT_THAT(snapshot->notes, IsEmpty());
}

TEST_F(DnfPackageManagerTest, SatisfiedWantsRunOnlyRpm) {
  DnfPackageManager manager(runner_, clock_, options());
  core::Result<PackageSnapshot> snapshot = observe(
      manager,
      {{.name = "containerd", .version = "1.6.20"}, {.name = "gone", .ensure = Ensure::kAbsent}});
  ASSERT_TRUE(snapshot) << snapshot.status().message();
  EXPECT_THAT(runner_.commands(), ElementsAre(rpmQueryCommand()));
}

TEST_F(DnfPackageManagerTest, UsesTheRootAndExtraArguments) {
  root_.write("/etc/dnf/plugins/versionlock.list", "containerd-0:1.6.20-3.el9.*\n");
  runner_.respond({"dnf"}, 0, "");
  DnfPackageManager manager(runner_, clock_,
                            {.root = root_.path(), .dnfArguments = {"--config=/t/dnf.conf"}});

  core::Result<PackageSnapshot> snapshot =
      observe(manager, {{.name = "containerd"}, {.name = "x"}});

  ASSERT_TRUE(snapshot) << snapshot.status().message();
  EXPECT_TRUE(snapshot->packages["containerd"].held);
  const std::string dnf = "dnf --config=/t/dnf.conf --installroot=" + root_.path();
  EXPECT_THAT(
      runner_.commands(),
      ElementsAre(
          "rpm --root " + root_.path() + " -qa --queryformat " + std::string(kRpmQueryFormat),
          dnf + " -q repoquery --qf %{name}\\t%{epoch}:%{version}-%{release} --showduplicates "
                "--available x",
          dnf + " -q --refresh repoquery --qf %{name}\\t%{epoch}:%{version}-%{release} "
                "--showduplicates --available x"));
  EXPECT_THAT(snapshot->notes, ElementsAre("package lists refreshed: x was not in them"));
  EXPECT_TRUE(snapshot->packages["x"].queried);
  EXPECT_FALSE(snapshot->packages["x"].candidate);
}

TEST_F(DnfPackageManagerTest, RefreshesOnceForAMissingVersion) {
  runner_.respond({"dnf", "-q", "repoquery"}, 0, std::string(kRepoquery));
  runner_.respond({"dnf", "-q", "--refresh"}, 0,
                  std::string(kRepoquery) + "containerd\t0:1.7.3-1.el9\n");
  DnfPackageManager manager(runner_, clock_, options());

  core::Result<PackageSnapshot> snapshot =
      observe(manager, {{.name = "containerd", .version = "1.7.3"}});

  ASSERT_TRUE(snapshot) << snapshot.status().message();
  EXPECT_EQ(runner_.requests().size(), 3u);
  EXPECT_THAT(snapshot->notes,
              ElementsAre("package lists refreshed: containerd 1.7.3 was not in them"));
  EXPECT_EQ(snapshot->packages["containerd"].available.front(), "1.7.3-1.el9");
}

TEST_F(DnfPackageManagerTest, RepoqueryErrorsAreReported) {
  runner_.respond({"dnf", "-q", "repoquery"}, 1, "",
                  "Error: Failed to download metadata for repo 'baseos'\n");
  DnfPackageManager manager(runner_, clock_, options());
  core::Result<PackageSnapshot> snapshot = observe(manager, {{.name = "runc"}});
  ASSERT_FALSE(snapshot);
  EXPECT_EQ(snapshot.status().message(),
            "dnf repoquery exited with status 1: Error: Failed to download metadata for repo "
            "'baseos'");
}

TEST_F(DnfPackageManagerTest, VersionsMatchAsDnfSelectsThem) {
  DnfPackageManager manager(runner_, clock_, options());
  EXPECT_TRUE(manager.versionMatches("1.6.20", "1.6.20-3.el9"));
  EXPECT_TRUE(manager.versionMatches("1.6.20-3.el9", "1.6.20-3.el9"));
  EXPECT_FALSE(manager.versionMatches("1.6.20-3.el9", "1.6.20-4.el9"));
  EXPECT_FALSE(manager.versionMatches("1.6.2", "1.6.20-3.el9"));
  EXPECT_TRUE(manager.versionMatches("2:1.6.20-3", "2:1.6.20-3"));
  EXPECT_FALSE(manager.versionMatches("2:1.6.20-3", "1.6.20-3"));
  EXPECT_FALSE(manager.versionMatches("1:1.6.20", "2:1.6.20-3"));
  EXPECT_TRUE(manager.versionMatches("0:1.6.20-3", "1.6.20-3"));
  EXPECT_TRUE(manager.versionMatches("1.6.20-3", "0:1.6.20-3"));
  EXPECT_TRUE(manager.versionMatches("1.6.20", "2:1.6.20-3"));  // no epoch in the pin: any
}

TEST_F(DnfPackageManagerTest, OneShellTransactionThenVersionlock) {
  runner_.respond({"dnf", "-y", "shell"}, 0, "Installed:\n  runc\n\nComplete!\n");
  runner_.respond({"dnf", "-q", "-y", "versionlock"}, 0, "");
  DnfPackageManager manager(runner_, clock_, options());

  core::Status applied = apply(manager, {.install = {{"containerd", "1.7.2-1.el9"}, {"runc", ""}},
                                         .remove = {"podman", "buildah"},
                                         .hold = {"containerd"},
                                         .unhold = {"cri-tools"}});

  ASSERT_TRUE(applied) << applied.message();
  EXPECT_THAT(runner_.commands(),
              ElementsAre("dnf -y shell", "dnf -q -y versionlock delete cri-tools",
                          "dnf -q -y versionlock add containerd"));
  EXPECT_EQ(runner_.requests()[0].stdinData,
            "install containerd-1.7.2-1.el9 runc\nremove podman buildah\nrun\n");
  EXPECT_EQ(runner_.requests()[0].timeout, std::chrono::minutes(35));
}

TEST_F(DnfPackageManagerTest, ALockedPackageIsUnlockedForTheTransactionAndLockedAgain) {
  runner_.respond({"dnf", "-y", "--disableplugin=versionlock", "shell"}, 0, "Complete!\n");
  runner_.respond({"dnf", "-q", "-y", "versionlock"}, 0, "");
  DnfPackageManager manager(runner_, clock_, options());

  core::Status applied = apply(manager, {.install = {{"kubelet", "1.28.2-150500.1.1"}}});

  ASSERT_TRUE(applied) << applied.message();
  EXPECT_THAT(runner_.commands(), ElementsAre("dnf -y --disableplugin=versionlock shell",
                                              "dnf -q -y versionlock delete kubelet",
                                              "dnf -q -y versionlock add kubelet"));
}

TEST_F(DnfPackageManagerTest, ShellErrorsFailTheTransactionThoughDnfExitsZero) {
  runner_.respond({"dnf", "-y", "shell"}, 0, "> > Complete!\n",
                  "Error: Unable to find a match: containerd-9.9\n");
  DnfPackageManager manager(runner_, clock_, options());
  core::Status applied =
      apply(manager, {.install = {{"containerd", "9.9"}}, .hold = {"containerd"}});
  ASSERT_FALSE(applied);
  EXPECT_EQ(applied.message(), "dnf shell failed: Error: Unable to find a match: containerd-9.9");
  EXPECT_EQ(runner_.requests().size(), 1u);
}

TEST_F(DnfPackageManagerTest, DependencyProblemsFailTheTransaction) {
  runner_.respond(
      {"dnf", "-y", "shell"}, 0, "Skipping packages with broken dependencies:\nComplete!\n",
      "\n Problem: conflicting requests\n  - nothing provides libfoo needed by x-1-1\n");
  DnfPackageManager manager(runner_, clock_, options());
  core::Status applied = apply(manager, {.install = {{"x", ""}}});
  EXPECT_EQ(applied.message(),
            "dnf shell failed: Problem: conflicting requests; - nothing provides libfoo needed by "
            "x-1-1");
}

TEST_F(DnfPackageManagerTest, VersionlockOfAMissingPackageFails) {
  runner_.respond({"dnf", "-q", "-y", "versionlock"}, 0, "No package found for: ghost\n");
  DnfPackageManager manager(runner_, clock_, options());
  core::Status applied = apply(manager, {.hold = {"ghost"}});
  EXPECT_EQ(applied.message(), "dnf versionlock add failed: No package found for: ghost");
}

TEST_F(DnfPackageManagerTest, ATimeoutNamesWhoHoldsTheDnfLock) {
  core::ProcessResult timedOut;
  timedOut.timedOut = true;
  timedOut.signal = 9;
  timedOut.stdoutData =
      "Waiting for process with pid " + std::to_string(::getpid()) + " to finish.\n";
  runner_.respond({"dnf", "-y", "shell"}, timedOut);
  DnfPackageManager manager(runner_, clock_, options());
  core::Status applied = apply(manager, {.remove = {"x"}});
  EXPECT_EQ(applied.message(), "dnf shell timed out after 2100s waiting for the dnf lock held by " +
                                   std::to_string(::getpid()) + " (" + processName(::getpid()) +
                                   ")");
}

TEST_F(DnfPackageManagerTest, NamesWhoHoldsRpmsTransactionLock) {
  DnfPackageManager manager(runner_, clock_, {.root = root_.path()});
  EXPECT_FALSE(manager.lockHolder());  // no lock file yet
  root_.write("/var/lib/rpm/.rpm.lock", "");
  EXPECT_FALSE(manager.lockHolder());
  test::LockingChild rpm(root_.path() + "/var/lib/rpm/.rpm.lock");
  ASSERT_TRUE(rpm.locked());
  EXPECT_EQ(manager.lockHolder(), std::to_string(rpm.pid()) + " (" + processName(::getpid()) + ")");
}

TEST(VersionlockListTest, TakesTheNameOfEachLock) {
  EXPECT_THAT(parseVersionlockList("# comment\n\nkubelet-0:1.28.1-150500.1.1.*\n"
                                   "  cri-tools-1.28.0-1.1.x86_64  \n!runc-1.1-1.*\ngarbage\n"),
              ElementsAre("cri-tools", "kubelet"));
}

}  // namespace
}  // namespace nodewarden::packages
