// Packages: one transaction for every change, errors that say what the
// archive offers, and units restarting on the packages they name.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <optional>

#include "tests/fakes/fake_package_manager.h"
#include "tests/unit/converge/converge_test_support.h"

namespace nodewarden::converge::test {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

class PackagesTest : public ConvergeTest {
 protected:
  // Observes through the fake package manager, then plans.
  core::Result<Plan> planPackages(std::string_view body) {
    const v1::NodeState state = load(body);
    std::optional<core::Result<Observation>> observed;
    planner_.observe(state, [&](core::Result<Observation> o) { observed = std::move(o); });
    packages_.complete();
    if (!observed) return core::Status::internal("observe() did not finish");
    if (!*observed) return observed->status();
    return planner_.plan(state, {}, **observed);
  }

  Report applyPackages(Plan plan) {
    std::optional<Report> report;
    executor_.apply(std::move(plan), [&](Report done) { report = std::move(done); });
    while (!report && packages_.complete() + fake_.completeJobs() > 0) {
    }
    EXPECT_TRUE(report) << "the executor did not report";
    return report.value_or(Report());
  }

  packages::FakePackageManager packages_;
  Planner planner_{systemd_, root_, {.packages = &packages_}};
};

TEST_F(PackagesTest, EveryChangeIsOneTransaction) {
  packages_.setInstalled("containerd", "1.6.20-1");
  packages_.setAvailable("containerd", {"1.7.0-1", "1.6.20-1"});
  packages_.setAvailable("conntrack", {"1.4.7-1"});
  packages_.setInstalled("zram", "1.0");
  packages_.setInstalled("kubelet", "1.28.1");

  core::Result<Plan> planned = planPackages(R"(
packages:
  - name: containerd
    version: 1.7.0-1
  - name: conntrack
  - name: zram
    ensure: absent
  - name: kubelet
    hold: true
)");

  ASSERT_TRUE(planned) << planned.status().message();
  EXPECT_THAT(actions(planned->changes),
              ElementsAre("upgrade package containerd", "install package conntrack",
                          "remove package zram", "hold package kubelet"));
  EXPECT_EQ(planned->changes[0].detail, "1.6.20-1 -> 1.7.0-1");
  EXPECT_EQ(planned->steps.size(), 1u);
  Report report = applyPackages(std::move(*planned));
  EXPECT_EQ(report.exitCode(), 2);
  ASSERT_EQ(packages_.transactions().size(), 1u);
  const packages::PackageTransaction& transaction = packages_.transactions()[0];
  ASSERT_EQ(transaction.install.size(), 2u);
  EXPECT_EQ(transaction.install[0].name, "containerd");
  EXPECT_EQ(transaction.install[0].version, "1.7.0-1");
  EXPECT_EQ(transaction.install[1].name, "conntrack");
  EXPECT_EQ(transaction.install[1].version, "");
  EXPECT_THAT(transaction.remove, ElementsAre("zram"));
  EXPECT_THAT(transaction.hold, ElementsAre("kubelet"));

  // Converged: the same state plans nothing.
  core::Result<Plan> again = planPackages(R"(
packages:
  - name: containerd
    version: 1.7.0-1
  - name: conntrack
  - name: zram
    ensure: absent
  - name: kubelet
    hold: true
)");
  ASSERT_TRUE(again) << again.status().message();
  EXPECT_THAT(again->changes, IsEmpty());
  EXPECT_THAT(again->steps, IsEmpty());
}

TEST_F(PackagesTest, AMissingVersionNamesThePackageAndWhatTheArchiveOffers) {
  packages_.setAvailable("containerd", {"1.7.0-1", "1.6.20-1"});
  core::Result<Plan> planned = planPackages(R"(
packages:
  - name: containerd
    version: 1.9.9-1
)");
  ASSERT_FALSE(planned);
  EXPECT_EQ(planned.status().message(),
            "package containerd: version 1.9.9-1 is not in the archive; the archive offers "
            "1.7.0-1, 1.6.20-1");
  EXPECT_THAT(packages_.transactions(), IsEmpty());
}

constexpr std::string_view kRuntime = R"(
packages:
  - name: containerd
    ensure: latest
units:
  - name: kubelet.service
    content: "[Service]\nExecStart=/usr/bin/kubelet\n"
    state: running
    restartOn: [containerd]
)";

TEST_F(PackagesTest, AUnitRestartsWhenAPackageItNamesUpgrades) {
  packages_.setInstalled("containerd", "1.6.20-1");
  packages_.setAvailable("containerd", {"1.6.20-1"});
  core::Result<Plan> first = planPackages(kRuntime);
  ASSERT_TRUE(first) << first.status().message();
  ASSERT_EQ(applyPackages(std::move(*first)).failed(), 0u);
  ASSERT_EQ(fake_.unit("kubelet.service").activeState, "active");
  EXPECT_THAT(packages_.transactions(), IsEmpty());

  // Nothing to upgrade: no restart.
  core::Result<Plan> unchanged = planPackages(kRuntime);
  ASSERT_TRUE(unchanged) << unchanged.status().message();
  EXPECT_THAT(unchanged->changes, IsEmpty());
  fake_.clearCalls();
  applyPackages(std::move(*unchanged));
  EXPECT_THAT(fake_.changes(), IsEmpty());

  packages_.setAvailable("containerd", {"1.7.0-1", "1.6.20-1"});
  core::Result<Plan> upgrade = planPackages(kRuntime);
  ASSERT_TRUE(upgrade) << upgrade.status().message();
  EXPECT_THAT(actions(upgrade->changes),
              ElementsAre("upgrade package containerd", "restart unit kubelet.service"));
  fake_.clearCalls();
  Report report = applyPackages(std::move(*upgrade));
  EXPECT_EQ(report.failed(), 0u);
  EXPECT_EQ(packages_.package("containerd").installed, "1.7.0-1");
  EXPECT_THAT(fake_.changes(), ElementsAre("restart kubelet.service"));
}

// containerd's package starts containerd as it installs, on its own default
// configuration, before the file step writes the state's: starting it would
// change nothing, so it is restarted.
TEST_F(PackagesTest, AUnitItsPackageBringsIsRestartedOnceItsFilesAreWritten) {
  packages_.setAvailable("containerd", {"1.6.20-1"});
  core::Result<Plan> plan = planPackages(R"(
packages:
  - name: containerd
files:
  - path: /etc/containerd/config.toml
    content: "version = 2\n"
units:
  - name: containerd.service
    state: running
    restartOn: [/etc/containerd/config.toml]
)");
  ASSERT_TRUE(plan) << plan.status().message();
  EXPECT_THAT(actions(plan->changes),
              ElementsAre("install package containerd", "create file /etc/containerd/config.toml",
                          "restart unit containerd.service"));
  ASSERT_EQ(plan->jobs.size(), 1u);
  EXPECT_EQ(plan->jobs[0].kind, systemd::JobKind::kRestart);
  // After the transaction and the file, not before.
  EXPECT_THAT(plan->jobs[0].after, ::testing::IsSupersetOf({size_t{0}, size_t{1}}));
}

}  // namespace
}  // namespace nodewarden::converge::test
