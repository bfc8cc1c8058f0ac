#include "agent/packages/apt_package_manager.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <optional>

#include "agent/core/simulated_clock.h"
#include "agent/packages/archive_observation.h"
#include "tests/fakes/fake_process_runner.h"
#include "tests/unit/packages/package_backend_test_support.h"

namespace nodewarden::packages {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::Pair;

using Ensure = PackageWant::Ensure;

std::string stanza(const std::string& name, const std::string& version,
                   const std::string& status = "install ok installed") {
  return "Package: " + name + "\nStatus: " + status + "\nArchitecture: amd64\nVersion: " + version +
         "\nDescription: test\n continued\n\n";
}

constexpr std::string_view kPolicy = R"(containerd:
  Installed: (none)
  Candidate: 1.6.20~ds1-1+b1
  Version table:
     1.6.20~ds1-1+b1 500
        500 http://deb.debian.org/debian bookworm/main amd64 Packages
     1.7.0-1 100
        100 http://deb.debian.org/debian bookworm-backports/main amd64 Packages
runc:
  Installed: 1.1.5+ds1-1
  Candidate: 1.1.5+ds1-1
  Version table:
 *** 1.1.5+ds1-1 500
        500 http://deb.debian.org/debian bookworm/main amd64 Packages
        100 /var/lib/dpkg/status
     1.1.4+ds1-1 500
        500 http://deb.debian.org/debian bookworm/main amd64 Packages
kubelet:
  Installed: 1.28.1-1.1
  Candidate: 1.28.2-1.1
  Version table:
     1.28.2-1.1 500
        500 https://pkgs.k8s.io/core:/stable:/v1.28/deb  Packages
 *** 1.28.1-1.1 100
        100 /var/lib/dpkg/status
)";

class AptPackageManagerTest : public ::testing::Test {
 protected:
  AptPackageManagerTest() {
    root_.write("/var/lib/dpkg/status", stanza("runc", "1.1.4+ds1-1") +
                                            stanza("kubelet", "1.28.1-1.1", "hold ok installed") +
                                            stanza("nano", "7.2-1", "deinstall ok config-files") +
                                            stanza("curl", "7.88.1-10"));
  }

  // observe(), delivering processes and deferred results until it reports.
  core::Result<PackageSnapshot> observe(const std::vector<PackageWant>& wants) {
    std::optional<core::Result<PackageSnapshot>> result;
    manager_.observe(wants, [&](core::Result<PackageSnapshot> r) { result = std::move(r); });
    EXPECT_FALSE(result) << "observe() finished inside the call";
    while (!result && (runner_.complete() > 0 || clock_.armedTimers() > 0)) {
      clock_.advance(core::Duration::zero());
    }
    if (!result) return core::Status::internal("observe() never finished");
    return std::move(*result);
  }

  core::Status apply(const PackageTransaction& transaction) {
    std::optional<core::Status> result;
    manager_.apply(transaction, [&](core::Status s) { result = std::move(s); });
    EXPECT_FALSE(result) << "apply() finished inside the call";
    while (!result && (runner_.complete() > 0 || clock_.armedTimers() > 0)) {
      clock_.advance(core::Duration::zero());
    }
    if (!result) return core::Status::internal("apply() never finished");
    return std::move(*result);
  }

  test::TemporaryRoot root_;
  core::FakeProcessRunner runner_;
  core::SimulatedClock clock_;
  AptPackageManager manager_{runner_, clock_, {.root = root_.path()}};
};

TEST_F(AptPackageManagerTest, SatisfiedWantsRunNoProcessAndFinishLater) {
  std::string status;
  std::vector<PackageWant> wants;
  for (int i = 0; i < 300; ++i) {
    const std::string name = "pkg" + std::to_string(i);
    status += stanza(name, "1.0-" + std::to_string(i));
    wants.push_back({.name = name, .version = i % 2 ? "1.0-" + std::to_string(i) : ""});
  }
  wants.push_back({.name = "gone", .ensure = Ensure::kAbsent});
  root_.write("/var/lib/dpkg/status", status);

  core::Result<PackageSnapshot> snapshot = observe(wants);

  ASSERT_TRUE(snapshot) << snapshot.status().message();
  EXPECT_THAT(runner_.requests(), IsEmpty());
  EXPECT_EQ(snapshot->packages.size(), 301u);
  EXPECT_EQ(snapshot->packages["pkg7"].installed, "1.0-7");
  EXPECT_FALSE(snapshot->packages["pkg7"].queried);
  EXPECT_FALSE(snapshot->packages["gone"].installed);
}

TEST_F(AptPackageManagerTest, ReadsHoldsAndTreatsConfigFilesAsNotInstalled) {
  runner_.respond({"apt-cache", "policy"}, 0, "");
  runner_.respond({"apt-get", "update"}, 0);

  core::Result<PackageSnapshot> snapshot = observe({{.name = "kubelet"}, {.name = "nano"}});

  ASSERT_TRUE(snapshot) << snapshot.status().message();
  EXPECT_TRUE(snapshot->packages["kubelet"].held);
  EXPECT_EQ(snapshot->packages["kubelet"].installed, "1.28.1-1.1");
  EXPECT_FALSE(snapshot->packages["nano"].installed);
  EXPECT_TRUE(snapshot->packages["nano"].queried);
}

TEST_F(AptPackageManagerTest, AsksTheArchiveOnceAboutEveryPackageThatNeedsIt) {
  runner_.respond({"apt-cache", "policy"}, 0, std::string(kPolicy));

  core::Result<PackageSnapshot> snapshot = observe({{.name = "containerd"},
                                                    {.name = "runc", .version = "1.1.5+ds1-1"},
                                                    {.name = "kubelet", .ensure = Ensure::kLatest},
                                                    {.name = "curl"},
                                                    {.name = "vim", .ensure = Ensure::kAbsent}});

  ASSERT_TRUE(snapshot) << snapshot.status().message();
  EXPECT_THAT(runner_.commands(), ElementsAre("apt-cache policy containerd runc kubelet"));
  EXPECT_EQ(runner_.requests()[0].environment.at("DEBIAN_FRONTEND"), "noninteractive");
  EXPECT_EQ(runner_.requests()[0].timeout, std::chrono::minutes(2));
  const PackageInfo& containerd = snapshot->packages["containerd"];
  EXPECT_TRUE(containerd.queried);
  EXPECT_EQ(containerd.candidate, "1.6.20~ds1-1+b1");
  EXPECT_THAT(containerd.available, ElementsAre("1.7.0-1", "1.6.20~ds1-1+b1"));
  EXPECT_THAT(snapshot->packages["runc"].available, ElementsAre("1.1.5+ds1-1", "1.1.4+ds1-1"));
  // The installed version only dpkg knows is not something the archive offers.
  EXPECT_THAT(snapshot->packages["kubelet"].available, ElementsAre("1.28.2-1.1"));
  EXPECT_EQ(snapshot->packages["kubelet"].candidate, "1.28.2-1.1");
  EXPECT_FALSE(snapshot->packages["curl"].queried);
  EXPECT_THAT(snapshot->notes, IsEmpty());
}

TEST_F(AptPackageManagerTest, RefreshesThePackageListsOnceWhenSomethingIsMissing) {
  runner_.respond({"apt-cache", "policy"}, 0, std::string(kPolicy));
  runner_.respond({"apt-get", "update"}, 0,
                  "Hit:1 http://deb.debian.org/debian bookworm InRelease\n");

  core::Result<PackageSnapshot> snapshot =
      observe({{.name = "containerd", .version = "1.9.9-1"}, {.name = "ghost"}});

  ASSERT_TRUE(snapshot) << snapshot.status().message();
  EXPECT_THAT(runner_.commands(), ElementsAre("apt-cache policy containerd ghost",
                                              "apt-get update -q -o DPkg::Lock::Timeout=300",
                                              "apt-cache policy containerd ghost"));
  EXPECT_EQ(runner_.requests()[1].environment.at("DEBIAN_FRONTEND"), "noninteractive");
  EXPECT_THAT(snapshot->notes,
              ElementsAre("package lists refreshed: containerd 1.9.9-1, ghost were not in them"));
  EXPECT_TRUE(snapshot->packages["ghost"].queried);
  EXPECT_FALSE(snapshot->packages["ghost"].candidate);
  EXPECT_THAT(snapshot->packages["containerd"].available,
              ElementsAre("1.7.0-1", "1.6.20~ds1-1+b1"));
}

TEST_F(AptPackageManagerTest, AFailedRefreshSaysWhyAndWhatWasMissing) {
  runner_.respond({"apt-cache", "policy"}, 0, "");
  runner_.respond({"apt-get", "update"}, 100, "",
                  "W: Some index files failed to download.\n"
                  "E: Failed to fetch http://deb.debian.org/debian/dists/bookworm/InRelease  "
                  "Temporary failure resolving 'deb.debian.org'\n");

  core::Result<PackageSnapshot> snapshot = observe({{.name = "ghost"}});

  ASSERT_FALSE(snapshot);
  EXPECT_EQ(snapshot.status().message(),
            "refresh the package lists (ghost not in them): apt-get update exited with status "
            "100: E: Failed to fetch http://deb.debian.org/debian/dists/bookworm/InRelease  "
            "Temporary failure resolving 'deb.debian.org'");
}

TEST_F(AptPackageManagerTest, AnUnreadableStatusFileIsAnError) {
  root_.write("/var/lib/dpkg/status", "Package: x\nbroken line\n");
  core::Result<PackageSnapshot> snapshot = observe({{.name = "x"}});
  ASSERT_FALSE(snapshot);
  EXPECT_THAT(snapshot.status().message(), HasSubstr("/var/lib/dpkg/status: status line 2"));
  EXPECT_THAT(runner_.requests(), IsEmpty());
}

TEST_F(AptPackageManagerTest, InstallsAndRemovesInOneCommandThenSetsHolds) {
  runner_.respond({"apt-get", "install"}, 0);
  runner_.respond({"apt-mark"}, 0);

  core::Status applied = apply({.install = {{"containerd", "1.6.20~ds1-1+b1"}, {"runc", ""}},
                                .remove = {"nano", "vim"},
                                .hold = {"containerd"},
                                .unhold = {"runc"}});

  ASSERT_TRUE(applied) << applied.message();
  EXPECT_THAT(
      runner_.commands(),
      ElementsAre("apt-get install -y -q -o Dpkg::Options::=--force-confdef -o "
                  "Dpkg::Options::=--force-confold -o DPkg::Lock::Timeout=300 --allow-downgrades "
                  "--allow-change-held-packages containerd=1.6.20~ds1-1+b1 runc nano- vim-",
                  "apt-mark hold -o DPkg::Lock::Timeout=300 containerd",
                  "apt-mark unhold -o DPkg::Lock::Timeout=300 runc"));
  EXPECT_EQ(runner_.requests()[0].environment.at("DEBIAN_FRONTEND"), "noninteractive");
  EXPECT_EQ(runner_.requests()[0].timeout, std::chrono::minutes(35));
}

TEST_F(AptPackageManagerTest, AllowsChangingHeldPackagesOnlyForAHeldOne) {
  runner_.respond({"apt-get", "install"}, 0);

  ASSERT_TRUE(apply({.install = {{"containerd", ""}}, .remove = {"curl"}}));
  ASSERT_TRUE(apply({.install = {{"kubelet", "1.28.2-1.1"}}}));  // held in dpkg's status

  EXPECT_THAT(runner_.commands(),
              ElementsAre("apt-get install -y -q -o Dpkg::Options::=--force-confdef -o "
                          "Dpkg::Options::=--force-confold -o DPkg::Lock::Timeout=300 "
                          "containerd curl-",
                          "apt-get install -y -q -o Dpkg::Options::=--force-confdef -o "
                          "Dpkg::Options::=--force-confold -o DPkg::Lock::Timeout=300 "
                          "--allow-downgrades --allow-change-held-packages kubelet=1.28.2-1.1"));
}

TEST_F(AptPackageManagerTest, HoldsAloneRunOnlyAptMark) {
  runner_.respond({"apt-mark"}, 0);
  ASSERT_TRUE(apply({.hold = {"kubelet", "kubeadm"}}));
  EXPECT_THAT(runner_.commands(),
              ElementsAre("apt-mark hold -o DPkg::Lock::Timeout=300 kubelet kubeadm"));
}

TEST_F(AptPackageManagerTest, AnEmptyTransactionRunsNothingAndFinishesLater) {
  ASSERT_TRUE(apply({}));
  EXPECT_THAT(runner_.requests(), IsEmpty());
}

TEST_F(AptPackageManagerTest, ReportsAptsErrorsAndStops) {
  runner_.respond({"apt-get", "install"}, 100, "Reading package lists...\n",
                  "E: Version '9.9' for 'containerd' was not found\n"
                  "  E: Unable to locate package ghost  \n");
  runner_.respond({"apt-mark"}, 0);

  core::Status applied = apply({.install = {{"containerd", "9.9"}, {"ghost", ""}}, .hold = {"x"}});

  ASSERT_FALSE(applied);
  EXPECT_EQ(applied.message(),
            "apt-get install exited with status 100: E: Version '9.9' for 'containerd' was not "
            "found; E: Unable to locate package ghost");
  EXPECT_EQ(runner_.requests().size(), 1u);
}

TEST_F(AptPackageManagerTest, ATimeoutSaysHowLongItWaited) {
  core::ProcessResult timedOut;
  timedOut.timedOut = true;
  timedOut.signal = 9;
  runner_.respond({"apt-get", "install"}, timedOut);
  core::Status applied = apply({.install = {{"containerd", ""}}});
  EXPECT_EQ(applied.message(), "apt-get install timed out after 2100s");
}

TEST_F(AptPackageManagerTest, NamesWhoHoldsTheDpkgLockWhenAptGivesUp) {
  root_.write("/var/lib/dpkg/lock-frontend", "");
  EXPECT_FALSE(manager_.dpkgLockHolder());
  test::LockingChild holder(root_.path() + "/var/lib/dpkg/lock-frontend");
  ASSERT_TRUE(holder.locked());
  std::optional<AptPackageManager::LockHolder> seen = manager_.dpkgLockHolder();
  ASSERT_TRUE(seen);
  EXPECT_EQ(seen->pid, holder.pid());
  EXPECT_EQ(seen->name, processName(::getpid()));  // a fork keeps its parent's name
  EXPECT_EQ(manager_.lockHolder(),
            std::to_string(holder.pid()) + " (" + processName(::getpid()) + ")");
  runner_.respond({"apt-get", "install"}, 100, "",
                  "E: Could not get lock /var/lib/dpkg/lock-frontend. It is held by process " +
                      std::to_string(holder.pid()) + " (packages_test)\n");

  core::Status applied = apply({.install = {{"containerd", ""}}});

  ASSERT_FALSE(applied);
  EXPECT_THAT(applied.message(),
              HasSubstr("apt-get install timed out after 300s waiting for the dpkg lock held by " +
                        std::to_string(holder.pid()) + " (" + seen->name + ")"));
  EXPECT_THAT(applied.message(), HasSubstr("E: Could not get lock"));
}

// apt failing for its own reasons while someone else happens to hold the lock
// is not blamed on the lock.
TEST_F(AptPackageManagerTest, AnotherFailureWhileTheLockIsHeldIsNotBlamedOnTheLock) {
  root_.write("/var/lib/dpkg/lock-frontend", "");
  test::LockingChild holder(root_.path() + "/var/lib/dpkg/lock-frontend");
  ASSERT_TRUE(holder.locked());
  runner_.respond({"apt-get", "install"}, 100, "",
                  "E: Unable to correct problems, you have held broken packages.\n");

  core::Status applied = apply({.install = {{"containerd", ""}}});

  ASSERT_FALSE(applied);
  EXPECT_THAT(applied.message(), Not(HasSubstr("waiting for the dpkg lock")));
  EXPECT_THAT(applied.message(), HasSubstr("held broken packages"));
}

}  // namespace
}  // namespace nodewarden::packages
