#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>

#include "agent/core/status.h"

namespace nodewarden::v1 {
class Facts;
class Usage;
}  // namespace nodewarden::v1

namespace nodewarden::fleet {

// A filesystem's size and what is in use, root's reserve counted as free.
struct FilesystemSize {
  uint64_t sizeBytes = 0;
  uint64_t usedBytes = 0;
};

using FilesystemStatFunction = std::function<core::Result<FilesystemSize>(const std::string&)>;

// The filesystem holding `path`, from statvfs(3).
core::Result<FilesystemSize> statFilesystem(const std::string& path);

// Where the node's facts and usage are read from.
struct FactsSources {
  // Prefixed to /proc, /etc and the mounts' paths; a fake tree in tests.
  std::string root = "/";
  // Reported as they are.
  std::map<std::string, std::string> labels;
  FilesystemStatFunction filesystemStat = statFilesystem;
};

// What the node is, for the Hello: hostname, machine id, OS, kernel, agent
// version, labels, CPUs, memory and disks. Best effort: what cannot be read
// stays empty.
//
// Disks are the mounts of block devices (a source under /dev/, so no proc,
// sysfs, tmpfs, overlay, cgroup or other pseudo filesystems), each device once
// at its shortest mount point (kubelet bind-mounts the root disk many times),
// without squashfs images (snaps, always full), and "/" whatever it is.
v1::Facts collectFacts(const FactsSources& sources);

// Samples the node's usage: CPU, memory, disks (the mounts collectFacts()
// reports) and network traffic. Keeps the CPU counters of the last sample.
class UsageSampler final {
 public:
  explicit UsageSampler(FactsSources sources);

  // CPU percent since the previous sample (the first one: since boot), memory
  // used (MemTotal - MemAvailable), disks, and bytes received and sent over
  // every interface but lo since boot. `now` stamps the sample.
  v1::Usage sample(std::chrono::system_clock::time_point now);

 private:
  struct CpuTimes {
    uint64_t busy = 0;
    uint64_t total = 0;
  };

  FactsSources sources_;
  CpuTimes previous_;
};

}  // namespace nodewarden::fleet
