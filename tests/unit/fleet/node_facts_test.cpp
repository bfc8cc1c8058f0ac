// Facts and usage from a fake /proc and /etc in a temporary directory, with a
// table of filesystem sizes, and once from the real machine.

#include "agent/fleet/node_facts.h"

#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "agent/core/atomic_file.h"
#include "nodewarden/v1/control.pb.h"

namespace nodewarden::fleet {
namespace {

using namespace std::chrono_literals;
using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::Pair;
using ::testing::UnorderedElementsAre;

constexpr char kMounts[] =
    "sysfs /sys sysfs rw,nosuid,nodev,noexec,relatime 0 0\n"
    "proc /proc proc rw,nosuid,nodev,noexec,relatime 0 0\n"
    "udev /dev devtmpfs rw,nosuid,relatime,size=8144368k,mode=755 0 0\n"
    "tmpfs /run tmpfs rw,nosuid,nodev,noexec,relatime,size=1634044k,mode=755 0 0\n"
    "/dev/sda1 / ext4 rw,relatime,errors=remount-ro 0 0\n"
    "cgroup2 /sys/fs/cgroup cgroup2 rw,nosuid,nodev,noexec,relatime 0 0\n"
    "/dev/loop0 /snap/core20/1974 squashfs ro,nodev,relatime 0 0\n"
    "/dev/sdb1 /var/lib/containerd xfs rw,relatime 0 0\n"
    "overlay /run/containerd/io.containerd.runtime.v2.task/k8s.io/abc/rootfs overlay rw 0 0\n"
    "/dev/sda1 /var/lib/kubelet/pods/1234/volume-subpaths/config/app/0 ext4 rw 0 0\n"
    "/dev/mapper/vg-data /srv/my\\040data ext4 rw,relatime 0 0\n"
    "server:/export /mnt/nfs nfs4 rw,relatime 0 0\n";

constexpr char kMeminfo[] =
    "MemTotal:       16316412 kB\n"
    "MemFree:         1024000 kB\n"
    "MemAvailable:    8158206 kB\n"
    "Buffers:          204800 kB\n";

constexpr char kNetDev[] =
    "Inter-|   Receive                                                |  Transmit\n"
    " face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs "
    "drop fifo colls carrier compressed\n"
    "    lo: 5000000   1000    0    0    0     0          0         0  5000000   1000    0    0 "
    "   0     0       0          0\n"
    "  eth0: 1000 10 0 0 0 0 0 0 2000 20 0 0 0 0 0 0\n"
    "  cali1234abcd: 300 3 0 0 0 0 0 0 400 4 0 0 0 0 0 0\n";

class NodeFactsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string templ = std::filesystem::temp_directory_path() / "nodewarden-facts-XXXXXX";
    if (::mkdtemp(templ.data()) == nullptr) {
      FAIL() << "mkdtemp " << templ << ": " << std::strerror(errno);
    }
    root_ = templ;
    sources_.root = root_;
    sources_.filesystemStat = [this](const std::string& path) -> core::Result<FilesystemSize> {
      statted_.push_back(path);
      auto size = sizes_.find(path.substr(root_.size()));
      if (size == sizes_.end()) return core::Status::notFound("no filesystem at " + path);
      return size->second;
    };
  }
  void TearDown() override { std::filesystem::remove_all(root_); }

  void write(const std::string& path, const std::string& content) {
    const std::string full = root_ + path;
    std::filesystem::create_directories(std::filesystem::path(full).parent_path());
    ASSERT_TRUE(core::writeFileAtomic(full, content, {.mode = 0644}).isOk()) << full;
  }

  void writeNode() {
    write("/proc/sys/kernel/hostname", "node-1\n");
    write("/proc/sys/kernel/osrelease", "6.1.0-18-amd64\n");
    write("/etc/machine-id", "0123456789abcdef0123456789abcdef\n");
    write("/etc/os-release",
          "NAME=\"Debian GNU/Linux\"\n"
          "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n"
          "VERSION_ID=\"12\"\n");
    write("/proc/cpuinfo",
          "processor\t: 0\nmodel name\t: Fake CPU\n\n"
          "processor\t: 1\nmodel name\t: Fake CPU\n\n"
          "processor\t: 2\nmodel name\t: Fake CPU\n\n"
          "processor\t: 3\nmodel name\t: Fake CPU\n\n");
    write("/proc/meminfo", kMeminfo);
    write("/proc/self/mounts", kMounts);
    write("/proc/net/dev", kNetDev);
    sizes_ = {
        {"/", {.sizeBytes = 100'000, .usedBytes = 40'000}},
        {"/var/lib/containerd", {.sizeBytes = 500'000, .usedBytes = 100'000}},
        {"/srv/my data", {.sizeBytes = 2'000'000, .usedBytes = 1'500'000}},
    };
  }

  std::string root_;
  FactsSources sources_;
  std::map<std::string, FilesystemSize> sizes_;
  std::vector<std::string> statted_;
};

std::vector<std::pair<std::string, uint64_t>> disksOf(const v1::Facts& facts) {
  std::vector<std::pair<std::string, uint64_t>> disks;
  for (const auto& disk : facts.disks()) disks.emplace_back(disk.mount(), disk.size_bytes());
  return disks;
}

TEST_F(NodeFactsTest, ReadsTheNodesFacts) {
  writeNode();
  sources_.labels = {{"zone", "eu-1a"}, {"pool", "gpu"}};
  v1::Facts facts = collectFacts(sources_);
  EXPECT_EQ(facts.hostname(), "node-1");
  EXPECT_EQ(facts.machine_id(), "0123456789abcdef0123456789abcdef");
  EXPECT_EQ(facts.os(), "Debian GNU/Linux 12 (bookworm)");
  EXPECT_EQ(facts.kernel(), "6.1.0-18-amd64");
  EXPECT_EQ(facts.agent_version(), NODEWARDEN_VERSION);
  EXPECT_THAT(facts.labels(), UnorderedElementsAre(Pair("zone", "eu-1a"), Pair("pool", "gpu")));
  EXPECT_EQ(facts.cpus(), 4u);
  EXPECT_EQ(facts.memory_bytes(), 16316412ull * 1024);
}

TEST_F(NodeFactsTest, ReportsBlockDeviceMountsOnceAndTheRoot) {
  writeNode();
  v1::Facts facts = collectFacts(sources_);
  // No pseudo filesystems, snaps, overlays or network shares; the root disk's
  // bind mount under kubelet counts as "/".
  EXPECT_THAT(disksOf(facts), ElementsAre(Pair("/", 100'000), Pair("/var/lib/containerd", 500'000),
                                          Pair("/srv/my data", 2'000'000)));
  EXPECT_THAT(statted_,
              ElementsAre(root_ + "/", root_ + "/var/lib/containerd", root_ + "/srv/my data"));
}

TEST_F(NodeFactsTest, ReportsTheRootWhateverItsFilesystem) {
  writeNode();
  write("/proc/self/mounts",
        "overlay / overlay rw,relatime,lowerdir=/a,upperdir=/b,workdir=/c 0 0\n"
        "proc /proc proc rw 0 0\n"
        "/dev/nvme0n1p1 /etc/hosts ext4 rw 0 0\n"
        "/dev/nvme0n1p1 /etc/hostname ext4 rw 0 0\n");
  sizes_["/etc/hosts"] = {.sizeBytes = 7, .usedBytes = 1};
  EXPECT_THAT(disksOf(collectFacts(sources_)),
              ElementsAre(Pair("/", 100'000), Pair("/etc/hosts", 7)));
}

TEST_F(NodeFactsTest, SkipsAMountThatCannotBeMeasured) {
  writeNode();
  sizes_.erase("/var/lib/containerd");
  EXPECT_THAT(disksOf(collectFacts(sources_)),
              ElementsAre(Pair("/", 100'000), Pair("/srv/my data", 2'000'000)));
}

TEST_F(NodeFactsTest, FallsBackToTheVendorOsRelease) {
  writeNode();
  std::filesystem::remove(root_ + "/etc/os-release");
  write("/usr/lib/os-release", "ID=fedora\nPRETTY_NAME='Fedora Linux 40 (Server Edition)'\n");
  EXPECT_EQ(collectFacts(sources_).os(), "Fedora Linux 40 (Server Edition)");
}

TEST_F(NodeFactsTest, LeavesWhatCannotBeReadEmpty) {
  v1::Facts facts = collectFacts(sources_);
  EXPECT_EQ(facts.hostname(), "");
  EXPECT_EQ(facts.machine_id(), "");
  EXPECT_EQ(facts.os(), "");
  EXPECT_EQ(facts.cpus(), 0u);
  EXPECT_EQ(facts.memory_bytes(), 0u);
  EXPECT_THAT(facts.disks(), IsEmpty());
  EXPECT_EQ(facts.agent_version(), NODEWARDEN_VERSION);
}

TEST_F(NodeFactsTest, SamplesUsage) {
  writeNode();
  // user nice system idle iowait irq softirq steal guest guest_nice
  write("/proc/stat",
        "cpu  600 0 200 1000 100 50 50 0 30 0\n"
        "cpu0 300 0 100 500 50 25 25 0 15 0\n"
        "intr 12345\n");
  UsageSampler sampler(sources_);
  const auto now = std::chrono::system_clock::time_point(1'700'000'000s);
  v1::Usage first = sampler.sample(now);

  EXPECT_EQ(first.time_us(), 1'700'000'000'000'000);
  // Since boot: 900 busy of 2000 ticks.
  EXPECT_DOUBLE_EQ(first.cpu_percent(), 45.0);
  EXPECT_EQ(first.memory_total_bytes(), 16316412ull * 1024);
  EXPECT_EQ(first.memory_used_bytes(), (16316412ull - 8158206ull) * 1024);
  ASSERT_EQ(first.disks_size(), 3);
  EXPECT_EQ(first.disks(0).mount(), "/");
  EXPECT_EQ(first.disks(0).used_bytes(), 40'000u);
  EXPECT_EQ(first.disks(0).size_bytes(), 100'000u);
  EXPECT_EQ(first.disks(2).mount(), "/srv/my data");
  EXPECT_EQ(first.disks(2).used_bytes(), 1'500'000u);
  // Every interface but lo.
  EXPECT_EQ(first.network_rx_bytes(), 1300u);
  EXPECT_EQ(first.network_tx_bytes(), 2400u);

  // 100 busy and 300 idle ticks later.
  write("/proc/stat", "cpu  700 0 200 1250 150 50 50 0 0 0\n");
  v1::Usage second = sampler.sample(now + 10s);
  EXPECT_EQ(second.time_us(), 1'700'000'010'000'000);
  EXPECT_DOUBLE_EQ(second.cpu_percent(), 25.0);

  // Nothing happened since.
  EXPECT_DOUBLE_EQ(sampler.sample(now + 20s).cpu_percent(), 0.0);
}

TEST_F(NodeFactsTest, TakesMemFreeWithoutMemAvailable) {
  writeNode();
  write("/proc/meminfo", "MemTotal: 1000 kB\nMemFree: 400 kB\n");
  v1::Usage usage = UsageSampler(sources_).sample(std::chrono::system_clock::now());
  EXPECT_EQ(usage.memory_used_bytes(), 600u * 1024);
}

TEST(NodeFactsSmokeTest, ReadsThisMachine) {
  v1::Facts facts = collectFacts(FactsSources{});
  EXPECT_NE(facts.hostname(), "");
  EXPECT_NE(facts.kernel(), "");
  EXPECT_GT(facts.cpus(), 0u);
  EXPECT_GT(facts.memory_bytes(), 0u);
  ASSERT_GT(facts.disks_size(), 0);
  EXPECT_EQ(facts.disks(0).mount(), "/");
  EXPECT_GT(facts.disks(0).size_bytes(), 0u);

  UsageSampler sampler{FactsSources{}};
  v1::Usage usage = sampler.sample(std::chrono::system_clock::now());
  EXPECT_GT(usage.cpu_percent(), 0.0);
  EXPECT_LE(usage.cpu_percent(), 100.0);
  EXPECT_GT(usage.memory_used_bytes(), 0u);
  EXPECT_GE(usage.memory_total_bytes(), usage.memory_used_bytes());
  ASSERT_GT(usage.disks_size(), 0);
  EXPECT_GT(usage.disks(0).used_bytes(), 0u);
}

}  // namespace
}  // namespace nodewarden::fleet
