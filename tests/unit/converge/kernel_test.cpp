// Kernel modules and parameters: persisted for the next boot, applied now, and
// reported as not applicable where the node cannot have them (a container).

#include <sys/stat.h>
#include <sys/utsname.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <optional>

#include "tests/fakes/fake_process_runner.h"
#include "tests/unit/converge/converge_test_support.h"

namespace nodewarden::converge::test {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

// What a Kubernetes node needs of its kernel.
constexpr std::string_view kNodeKernel = R"(
kernelModules: [overlay, br_netfilter]
sysctls:
  net.ipv4.ip_forward: 1
  net.bridge.bridge-nf-call-iptables: 1
)";

constexpr std::string_view kHeader =
    "# Managed by nodewarden-agent from the node's desired state; edits are overwritten.\n";

std::string kernelRelease() {
  struct utsname name;
  EXPECT_EQ(::uname(&name), 0);
  return name.release;
}

// A root with the kernel's trees faked: /lib/modules/<release> with its
// index, /sys/module with overlay loaded, /proc/sys with ip_forward off and
// no net.bridge (br_netfilter is not loaded).
class KernelTest : public ConvergeTest {
 protected:
  void SetUp() override {
    write(modulesDirectory() + "/modules.dep",
          "kernel/fs/overlayfs/overlay.ko.xz:\n"
          "kernel/net/bridge/br_netfilter.ko.xz: kernel/net/bridge/bridge.ko.xz\n"
          "kernel/net/bridge/bridge.ko.xz: kernel/net/802/stp.ko.xz\n");
    write(modulesDirectory() + "/modules.builtin", "kernel/fs/ext4/ext4.ko\n");
    makeDirectory("/sys/module/overlay");
    write("/proc/sys/net/ipv4/ip_forward", "0\n");
    write("/proc/sys/net/ipv4/ip_local_port_range", "32768\t60999\n");
  }

  static std::string modulesDirectory() { return "/lib/modules/" + kernelRelease(); }

  Plan plan(std::string_view body) { return ConvergeTest::plan(body, providers_); }

  // Applies `plan`; `kernel` runs once the steps that wait on modprobe have
  // started and before modprobe answers, as the kernel would act while it runs.
  Report apply(Plan plan, const std::function<void()>& kernel = {}) {
    std::optional<Report> report;
    executor_.apply(std::move(plan), [&report](Report done) { report = std::move(done); });
    if (kernel) kernel();
    runner_.complete();
    fake_.completeJobs();
    if (!report) {
      ADD_FAILURE() << "the executor did not report";
      return Report();
    }
    return std::move(*report);
  }

  // What loading br_netfilter does to /sys and /proc/sys.
  void loadBrNetfilter() {
    makeDirectory("/sys/module/br_netfilter");
    write("/proc/sys/net/bridge/bridge-nf-call-iptables", "0\n");
  }

  core::FakeProcessRunner runner_;
  const Providers providers_{.processes = &runner_};
};

TEST_F(KernelTest, PersistsModulesAndParametersAndAppliesThem) {
  loadBrNetfilter();

  Plan planned = plan(kNodeKernel);
  EXPECT_THAT(actions(planned.changes),
              ElementsAre("create file /etc/modules-load.d/nodewarden.conf",
                          "create file /etc/sysctl.d/90-nodewarden.conf",
                          "set sysctl net.bridge.bridge-nf-call-iptables",
                          "set sysctl net.ipv4.ip_forward"));
  EXPECT_EQ(planned.changes[3].detail, "0 -> 1");
  EXPECT_EQ(apply(std::move(planned)).exitCode(), 2);

  EXPECT_EQ(read("/etc/modules-load.d/nodewarden.conf"),
            std::string(kHeader) + "br_netfilter\noverlay\n");
  EXPECT_EQ(
      read("/etc/sysctl.d/90-nodewarden.conf"),
      std::string(kHeader) + "net.bridge.bridge-nf-call-iptables = 1\nnet.ipv4.ip_forward = 1\n");
  EXPECT_EQ(modeOf("/etc/sysctl.d/90-nodewarden.conf"), 0644u);
  EXPECT_EQ(read("/proc/sys/net/ipv4/ip_forward"), "1\n");
  EXPECT_EQ(read("/proc/sys/net/bridge/bridge-nf-call-iptables"), "1\n");
  EXPECT_THAT(runner_.commands(), IsEmpty());

  const auto before = snapshot();
  Plan again = plan(kNodeKernel);
  EXPECT_TRUE(again.empty()) << ::testing::PrintToString(actions(again.changes));
  EXPECT_EQ(apply(std::move(again)).exitCode(), 0);
  EXPECT_EQ(snapshot(), before);
}

TEST_F(KernelTest, LoadsAMissingModuleAndSetsWhatItBringsAfterIt) {
  runner_.respond({"modprobe"}, 0);

  Plan planned = plan(kNodeKernel);
  EXPECT_THAT(
      actions(planned.changes),
      ElementsAre("create file /etc/modules-load.d/nodewarden.conf",
                  "load kernel module br_netfilter", "create file /etc/sysctl.d/90-nodewarden.conf",
                  "set sysctl net.bridge.bridge-nf-call-iptables",
                  "set sysctl net.ipv4.ip_forward"));
  EXPECT_EQ(planned.changes[3].detail, "-> 1, once modules are loaded");

  bool setBeforeLoad = false;
  Report report = apply(std::move(planned), [&] {
    EXPECT_THAT(runner_.commands(), ElementsAre("modprobe -- br_netfilter"));
    setBeforeLoad = exists("/etc/sysctl.d/90-nodewarden.conf");
    loadBrNetfilter();
  });

  EXPECT_FALSE(setBeforeLoad) << "the steps after the load ran before modprobe answered";
  EXPECT_EQ(report.exitCode(), 2);
  EXPECT_EQ(report.changed(), 5u);
  EXPECT_EQ(read("/proc/sys/net/bridge/bridge-nf-call-iptables"), "1\n");
  runner_.clearRequests();
  EXPECT_TRUE(plan(kNodeKernel).empty());
  EXPECT_THAT(runner_.commands(), IsEmpty());
}

TEST_F(KernelTest, FailedLoadFailsAndSkipsOnlyTheParametersThatWaitForIt) {
  runner_.respond({"modprobe"}, 1, "",
                  "modprobe: ERROR: could not insert 'br_netfilter': Operation not permitted\n");

  Report report = apply(plan(kNodeKernel));

  const Change& load = findChange(report.changes, "load", "kernel module br_netfilter");
  EXPECT_EQ(load.outcome, Change::Outcome::kFailed);
  EXPECT_EQ(load.error,
            "modprobe br_netfilter: modprobe: ERROR: could not insert 'br_netfilter': Operation "
            "not permitted");
  const Change& bridge =
      findChange(report.changes, "set", "sysctl net.bridge.bridge-nf-call-iptables");
  EXPECT_EQ(bridge.outcome, Change::Outcome::kSkipped);
  EXPECT_EQ(bridge.error, "skipped: kernel module br_netfilter was not changed");
  EXPECT_EQ(findChange(report.changes, "set", "sysctl net.ipv4.ip_forward").outcome,
            Change::Outcome::kApplied);
  EXPECT_EQ(read("/proc/sys/net/ipv4/ip_forward"), "1\n");
  EXPECT_EQ(report.exitCode(), 6);
}

TEST_F(KernelTest, ModprobeThatCannotStartFailsTheLoad) {
  Report report = apply(plan("kernelModules: [br_netfilter]\n"));

  const Change& load = findChange(report.changes, "load", "kernel module br_netfilter");
  EXPECT_EQ(load.outcome, Change::Outcome::kFailed);
  EXPECT_EQ(load.error, "modprobe br_netfilter: run modprobe: No such file or directory");
}

TEST_F(KernelTest, ModulesCannotBeLoadedInAContainer) {
  std::filesystem::remove_all(hostPath(modulesDirectory()));

  Plan planned = plan(kNodeKernel);
  const Change& load = findChange(planned.changes, "load", "kernel module br_netfilter");
  EXPECT_EQ(load.outcome, Change::Outcome::kNotApplicable);
  EXPECT_EQ(load.error, "cannot load kernel modules here: " + modulesDirectory() +
                            " is missing (a container?)");
  const Change& bridge =
      findChange(planned.changes, "set", "sysctl net.bridge.bridge-nf-call-iptables");
  EXPECT_EQ(bridge.outcome, Change::Outcome::kNotApplicable);
  EXPECT_EQ(bridge.error,
            "this kernel has no parameter net.bridge.bridge-nf-call-iptables (kernel modules "
            "that cannot be loaded here: br_netfilter)");

  Report report = apply(std::move(planned));
  EXPECT_EQ(report.exitCode(), 2);  // the files and ip_forward
  EXPECT_EQ(findChange(report.changes, "load", "kernel module br_netfilter").outcome,
            Change::Outcome::kNotApplicable);
  EXPECT_THAT(runner_.commands(), IsEmpty());

  // Still reported on every run, and still nothing to do.
  Plan again = plan(kNodeKernel);
  EXPECT_TRUE(again.empty());
  EXPECT_THAT(actions(again.changes), ElementsAre("load kernel module br_netfilter",
                                                  "set sysctl net.bridge.bridge-nf-call-iptables"));
  EXPECT_EQ(apply(std::move(again)).exitCode(), 0);
}

TEST_F(KernelTest, ModuleTheKernelDoesNotHaveIsNotApplicable) {
  Plan planned = plan("kernelModules: [nf_conntrack_ipv4]\n");

  const Change& load = findChange(planned.changes, "load", "kernel module nf_conntrack_ipv4");
  EXPECT_EQ(load.outcome, Change::Outcome::kNotApplicable);
  EXPECT_EQ(load.error, "kernel " + kernelRelease() + " has no module nf_conntrack_ipv4");
}

TEST_F(KernelTest, AliasesAreLeftToModprobe) {
  write(modulesDirectory() + "/modules.alias", "alias fs-overlay overlay\n");

  Plan planned = plan("kernelModules: [fs-overlay]\n");

  EXPECT_EQ(findChange(planned.changes, "load", "kernel module fs-overlay").outcome,
            Change::Outcome::kPlanned);
}

TEST_F(KernelTest, BuiltInModulesAndDashedNamesCountAsLoaded) {
  makeDirectory("/sys/module/br_netfilter");

  Plan planned = plan("kernelModules: [ext4, br-netfilter, overlay]\n");

  EXPECT_THAT(actions(planned.changes),
              ElementsAre("create file /etc/modules-load.d/nodewarden.conf"));
}

TEST_F(KernelTest, ValuesCompareWithoutRegardToWhitespace) {
  Plan planned = plan("sysctls:\n  net.ipv4.ip_local_port_range: \"32768 60999\"\n");

  EXPECT_THAT(actions(planned.changes),
              ElementsAre("create file /etc/sysctl.d/90-nodewarden.conf"));
}

TEST_F(KernelTest, DriftedValueIsSetAgainAlone) {
  loadBrNetfilter();
  ASSERT_EQ(apply(plan(kNodeKernel)).exitCode(), 2);
  write("/proc/sys/net/ipv4/ip_forward", "0\n");

  Plan planned = plan(kNodeKernel);
  EXPECT_THAT(actions(planned.changes), ElementsAre("set sysctl net.ipv4.ip_forward"));
  apply(std::move(planned));
  EXPECT_EQ(read("/proc/sys/net/ipv4/ip_forward"), "1\n");
}

TEST_F(KernelTest, SlashedNamesArePathsAndKeepTheirDots) {
  write("/proc/sys/net/ipv4/conf/eth0.100/rp_filter", "1\n");

  Plan planned =
      plan("sysctls:\n  net.ipv4.conf.eth0/100.rp_filter: 2\n  net/ipv4/ip_forward: 1\n");
  EXPECT_THAT(actions(planned.changes), ElementsAre("create file /etc/sysctl.d/90-nodewarden.conf",
                                                    "set sysctl net.ipv4.conf.eth0/100.rp_filter",
                                                    "set sysctl net/ipv4/ip_forward"));
  apply(std::move(planned));

  EXPECT_EQ(read("/proc/sys/net/ipv4/conf/eth0.100/rp_filter"), "2\n");
  EXPECT_EQ(read("/proc/sys/net/ipv4/ip_forward"), "1\n");
}

TEST_F(KernelTest, UnknownParameterIsNotApplicable) {
  Plan planned = plan("sysctls:\n  net.ipv4.no_such_thing: 1\n");

  const Change& set = findChange(planned.changes, "set", "sysctl net.ipv4.no_such_thing");
  EXPECT_EQ(set.outcome, Change::Outcome::kNotApplicable);
  EXPECT_EQ(set.error, "this kernel has no parameter net.ipv4.no_such_thing");
}

// Read-only mounts of /proc/sys (systemd-nspawn) cannot be made in a unit
// test; a parameter the kernel itself makes read-only takes the same path.
TEST_F(KernelTest, ReadOnlyParameterIsNotApplicable) {
  ASSERT_EQ(::chmod(hostPath("/proc/sys/net/ipv4/ip_forward").c_str(), 0444), 0);

  Plan planned = plan("sysctls:\n  net.ipv4.ip_forward: 1\n");

  const Change& set = findChange(planned.changes, "set", "sysctl net.ipv4.ip_forward");
  EXPECT_EQ(set.outcome, Change::Outcome::kNotApplicable);
  EXPECT_EQ(set.error, "/proc/sys/net/ipv4/ip_forward is read-only in this kernel");
  EXPECT_EQ(apply(std::move(planned)).exitCode(), 2);  // only the file
  EXPECT_EQ(read("/proc/sys/net/ipv4/ip_forward"), "0\n");
}

TEST_F(KernelTest, FilesGoWhenTheirListsBecomeEmpty) {
  loadBrNetfilter();
  ASSERT_EQ(apply(plan(kNodeKernel)).exitCode(), 2);

  Plan planned = plan("sysctls: {}\n");
  EXPECT_THAT(actions(planned.changes),
              ElementsAre("delete file /etc/modules-load.d/nodewarden.conf",
                          "delete file /etc/sysctl.d/90-nodewarden.conf"));
  apply(std::move(planned));

  EXPECT_FALSE(exists("/etc/modules-load.d/nodewarden.conf"));
  EXPECT_FALSE(exists("/etc/sysctl.d/90-nodewarden.conf"));
  EXPECT_EQ(read("/proc/sys/net/ipv4/ip_forward"), "1\n") << "values stay until the next boot";
  EXPECT_TRUE(plan("").empty());
}

TEST_F(KernelTest, FilesTheAgentDidNotWriteStay) {
  write("/etc/sysctl.d/90-nodewarden.conf", "vm.swappiness = 1\n");
  EXPECT_TRUE(plan("").empty());

  // Declared by `files` (a state without kernelModules may): left to planFiles.
  write("/etc/modules-load.d/nodewarden.conf", std::string(kHeader) + "overlay\n");
  EXPECT_THAT(
      actions(
          plan("files:\n  - path: /etc/modules-load.d/nodewarden.conf\n    content: x\n").changes),
      ElementsAre("update file /etc/modules-load.d/nodewarden.conf"));
}

TEST_F(KernelTest, ModulesNeedAProcessRunner) {
  core::Result<Plan> planned = planner_.plan(load("kernelModules: [overlay]\n"));

  ASSERT_FALSE(planned);
  EXPECT_EQ(planned.status().message(), "kernelModules: this agent has no way to run modprobe");
}

}  // namespace
}  // namespace nodewarden::converge::test
