#include "agent/fleet/node_facts.h"

#include <sys/statvfs.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <string_view>
#include <utility>
#include <vector>

#include "agent/core/atomic_file.h"
#include "nodewarden/v1/control.pb.h"

// Everything is read from files under the root, including what uname(2) and
// gethostname(2) would tell (/proc/sys/kernel/osrelease and hostname hold the
// same), so that a fake tree stands in for the whole node in tests.

namespace nodewarden::fleet {

namespace {

// /proc/self/mounts on a Kubernetes node lists thousands of mounts.
constexpr size_t kMaxFileBytes = size_t{4} << 20;

std::string under(const FactsSources& sources, std::string_view path) {
  std::string_view root = sources.root;
  while (!root.empty() && root.back() == '/') root.remove_suffix(1);
  return std::string(root) + std::string(path);
}

std::string readText(const FactsSources& sources, std::string_view path) {
  auto text = core::readFile(under(sources, path), kMaxFileBytes);
  return text ? std::move(*text) : std::string();
}

std::string_view trimmed(std::string_view text) {
  constexpr std::string_view kSpace = " \t\r\n";
  const size_t begin = text.find_first_not_of(kSpace);
  if (begin == std::string_view::npos) return {};
  return text.substr(begin, text.find_last_not_of(kSpace) - begin + 1);
}

// Calls `each` with every line of `text`.
template <typename Function>
void forEachLine(std::string_view text, Function each) {
  while (!text.empty()) {
    const size_t end = std::min(text.find('\n'), text.size());
    each(text.substr(0, end));
    text.remove_prefix(std::min(end + 1, text.size()));
  }
}

std::vector<std::string_view> fields(std::string_view line) {
  std::vector<std::string_view> result;
  while (true) {
    const size_t begin = line.find_first_not_of(" \t");
    if (begin == std::string_view::npos) break;
    line.remove_prefix(begin);
    const size_t end = std::min(line.find_first_of(" \t"), line.size());
    result.push_back(line.substr(0, end));
    line.remove_prefix(end);
  }
  return result;
}

uint64_t number(std::string_view text) {
  uint64_t value = 0;
  std::from_chars(text.data(), text.data() + text.size(), value);
  return value;
}

// A /proc/meminfo field in bytes ("MemTotal:  16316412 kB"); unset when absent.
std::optional<uint64_t> meminfoBytes(std::string_view meminfo, std::string_view key) {
  std::optional<uint64_t> bytes;
  forEachLine(meminfo, [&](std::string_view line) {
    if (bytes || !line.starts_with(key) || line.substr(key.size(), 1) != ":") return;
    auto parts = fields(line.substr(key.size() + 1));
    if (parts.empty()) return;
    const uint64_t multiplier = parts.size() > 1 && parts[1] == "kB" ? 1024 : 1;
    bytes = number(parts[0]) * multiplier;
  });
  return bytes;
}

// A value of os-release(5), with its shell quoting taken off.
std::string osReleaseValue(std::string_view text, std::string_view key) {
  std::string value;
  bool found = false;
  forEachLine(text, [&](std::string_view line) {
    line = trimmed(line);
    if (found || !line.starts_with(key) || line.substr(key.size(), 1) != "=") return;
    found = true;
    std::string_view raw = line.substr(key.size() + 1);
    if (raw.size() >= 2 && raw.front() == '\'' && raw.back() == '\'') {
      value = raw.substr(1, raw.size() - 2);
      return;
    }
    if (raw.size() >= 2 && raw.front() == '"' && raw.back() == '"') {
      raw = raw.substr(1, raw.size() - 2);
    }
    for (size_t i = 0; i < raw.size(); ++i) {
      if (raw[i] == '\\' && i + 1 < raw.size()) ++i;
      value.push_back(raw[i]);
    }
  });
  return value;
}

// A field of /proc/self/mounts, where space, tab, newline and backslash are
// octal escapes ("\040").
std::string unescapeMountField(std::string_view field) {
  std::string result;
  for (size_t i = 0; i < field.size(); ++i) {
    const std::string_view digits = field.substr(i + 1, 3);
    if (field[i] == '\\' && digits.size() == 3 &&
        std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '7'; })) {
      result.push_back(static_cast<char>((field[i + 1] - '0') * 64 + (field[i + 2] - '0') * 8 +
                                         (field[i + 3] - '0')));
      i += 3;
      continue;
    }
    result.push_back(field[i]);
  }
  return result;
}

// The mount points collectFacts() reports as disks; see its comment.
std::vector<std::string> diskMounts(const FactsSources& sources) {
  struct Disk {
    std::string source;
    std::string mount;
  };
  std::vector<Disk> disks;
  forEachLine(readText(sources, "/proc/self/mounts"), [&](std::string_view line) {
    auto parts = fields(line);
    if (parts.size() < 3) return;
    const std::string source = unescapeMountField(parts[0]);
    const std::string mount = unescapeMountField(parts[1]);
    const std::string_view type = parts[2];
    const bool root = mount == "/";
    if (!root && (!source.starts_with("/dev/") || type == "squashfs")) return;

    auto same = std::find_if(disks.begin(), disks.end(), [&](const Disk& disk) {
      return disk.source == source || (root && disk.mount == "/");
    });
    if (same == disks.end()) {
      disks.push_back({source, mount});
      return;
    }
    if (mount.size() < same->mount.size()) same->mount = mount;
    // A root mounted over an earlier one is the device its bind mounts share.
    if (root) same->source = source;
  });
  std::vector<std::string> mounts;
  for (Disk& disk : disks) mounts.push_back(std::move(disk.mount));
  return mounts;
}

}  // namespace

core::Result<FilesystemSize> statFilesystem(const std::string& path) {
  struct statvfs s {};
  if (::statvfs(path.c_str(), &s) != 0) return core::Status::fromErrno(errno, "statvfs " + path);
  return FilesystemSize{.sizeBytes = static_cast<uint64_t>(s.f_blocks) * s.f_frsize,
                        .usedBytes = static_cast<uint64_t>(s.f_blocks - s.f_bfree) * s.f_frsize};
}

v1::Facts collectFacts(const FactsSources& sources) {
  v1::Facts facts;
  facts.set_hostname(std::string(trimmed(readText(sources, "/proc/sys/kernel/hostname"))));
  facts.set_machine_id(std::string(trimmed(readText(sources, "/etc/machine-id"))));
  std::string osRelease = readText(sources, "/etc/os-release");
  if (osRelease.empty()) osRelease = readText(sources, "/usr/lib/os-release");
  facts.set_os(osReleaseValue(osRelease, "PRETTY_NAME"));
  facts.set_kernel(std::string(trimmed(readText(sources, "/proc/sys/kernel/osrelease"))));
  facts.set_agent_version(NODEWARDEN_VERSION);
  for (const auto& [key, value] : sources.labels) (*facts.mutable_labels())[key] = value;

  uint32_t cpus = 0;
  forEachLine(readText(sources, "/proc/cpuinfo"), [&](std::string_view line) {
    auto parts = fields(line);
    if (!parts.empty() && (parts[0] == "processor" || parts[0] == "processor:")) ++cpus;
  });
  facts.set_cpus(cpus);
  facts.set_memory_bytes(meminfoBytes(readText(sources, "/proc/meminfo"), "MemTotal").value_or(0));

  for (const std::string& mount : diskMounts(sources)) {
    auto size = sources.filesystemStat(under(sources, mount));
    if (!size) continue;
    v1::Disk* disk = facts.add_disks();
    disk->set_mount(mount);
    disk->set_size_bytes(size->sizeBytes);
  }
  return facts;
}

UsageSampler::UsageSampler(FactsSources sources) : sources_(std::move(sources)) {}

v1::Usage UsageSampler::sample(std::chrono::system_clock::time_point now) {
  v1::Usage usage;
  usage.set_time_us(
      std::chrono::duration_cast<std::chrono::microseconds>(now.time_since_epoch()).count());

  // The first line adds up every CPU: user nice system idle iowait irq softirq
  // steal, in ticks since boot (guest time is already in user).
  std::optional<CpuTimes> cpu;
  forEachLine(readText(sources_, "/proc/stat"), [&](std::string_view line) {
    auto parts = fields(line);
    if (cpu || parts.size() < 9 || parts[0] != "cpu") return;
    CpuTimes times;
    for (size_t i = 1; i <= 8; ++i) {
      const uint64_t ticks = number(parts[i]);
      times.total += ticks;
      if (i != 4 && i != 5) times.busy += ticks;
    }
    cpu = times;
  });
  if (cpu) {
    // iowait may run backwards; a counter that did is taken as no time.
    const uint64_t total = cpu->total > previous_.total ? cpu->total - previous_.total : 0;
    const uint64_t busy = cpu->busy > previous_.busy ? cpu->busy - previous_.busy : 0;
    if (total > 0) {
      usage.set_cpu_percent(
          std::min(100.0, 100.0 * static_cast<double>(busy) / static_cast<double>(total)));
    }
    previous_ = *cpu;
  }

  const std::string meminfo = readText(sources_, "/proc/meminfo");
  const uint64_t memoryTotal = meminfoBytes(meminfo, "MemTotal").value_or(0);
  // Kernels before 3.14 have no MemAvailable; MemFree is the nearest.
  const uint64_t available =
      meminfoBytes(meminfo, "MemAvailable").value_or(meminfoBytes(meminfo, "MemFree").value_or(0));
  usage.set_memory_total_bytes(memoryTotal);
  usage.set_memory_used_bytes(memoryTotal > available ? memoryTotal - available : 0);

  for (const std::string& mount : diskMounts(sources_)) {
    auto size = sources_.filesystemStat(under(sources_, mount));
    if (!size) continue;
    v1::DiskUsage* disk = usage.add_disks();
    disk->set_mount(mount);
    disk->set_used_bytes(size->usedBytes);
    disk->set_size_bytes(size->sizeBytes);
  }

  // "  eth0: rx_bytes packets errs drop fifo frame compressed multicast tx_bytes ..."
  uint64_t received = 0;
  uint64_t sent = 0;
  forEachLine(readText(sources_, "/proc/net/dev"), [&](std::string_view line) {
    const size_t colon = line.find(':');
    if (colon == std::string_view::npos) return;
    if (trimmed(line.substr(0, colon)) == "lo") return;
    auto counters = fields(line.substr(colon + 1));
    if (counters.size() < 9) return;
    received += number(counters[0]);
    sent += number(counters[8]);
  });
  usage.set_network_rx_bytes(received);
  usage.set_network_tx_bytes(sent);
  return usage;
}

}  // namespace nodewarden::fleet
