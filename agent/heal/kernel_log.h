#pragma once

#include <systemd/sd-journal.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "agent/core/clock.h"
#include "agent/core/loop.h"
#include "agent/core/status.h"

namespace nodewarden::heal {

// A process killed by the kernel's OOM killer, as one kernel message tells it.
struct OomKill {
  std::string unit;    // the systemd unit it ran in: "containerd.service"
  std::string cgroup;  // its cgroup: "/system.slice/containerd.service"
  std::string task;    // its command name: "stress"; "" when the line does not say
  std::string pid;     // "" when the line does not say
  std::string cause;   // "the memory limit of /system.slice/foo.service was reached"

  // For the event: "stress (pid 1234) killed by the kernel's OOM killer: ...".
  std::string describe() const;
};

// The OOM kill a kernel message reports, or nothing when it reports none, or
// one outside a system unit (Kubernetes pods, user sessions). Reads the line
// of kernels since 4.19 ("oom-kill:constraint=...,task_memcg=...,task=...,
// pid=...") and the memory-cgroup line of older ones ("Task in /x killed as
// a result of limit of /y").
std::optional<OomKill> parseOomKill(std::string_view message);

// The system unit a cgroup path belongs to: the first component below the
// slices, when it is a service or a scope. Cgroups below it are the unit's own
// ("/system.slice/containerd.service/xyz" is containerd.service); a path under
// kubepods is a pod's, never a unit's (""), and so is anything else.
std::string unitOfCgroup(std::string_view path);

// Follows the kernel's messages in the local journal, from the moment it is
// opened, and reports each OOM kill in a system unit. Costs nothing while the
// journal is quiet: it wakes when journald writes, or when sd-journal asks for
// a timed wakeup (journals on file systems without inotify). Lives on the loop
// thread.
class KernelLog final {
 public:
  using Callback = std::function<void(const OomKill& kill)>;

  // `directory` "" reads the system journal of this machine; otherwise the
  // journal files in that directory. An error (no journal to read, as in some
  // containers) is for the caller to log once; the agent does without.
  static core::Result<std::unique_ptr<KernelLog>> open(core::Loop& loop, Callback onOomKill,
                                                       const std::string& directory = "");

  KernelLog(const KernelLog&) = delete;
  KernelLog& operator=(const KernelLog&) = delete;
  ~KernelLog();

 private:
  struct JournalClose {
    void operator()(sd_journal* journal) const { sd_journal_close(journal); }
  };

  KernelLog(core::Loop& loop, Callback onOomKill);
  core::Status start(const std::string& directory);
  // journald wrote, or the timeout passed: reads what is new.
  void wake();
  void readNew();
  void armTimeout();

  core::Loop& loop_;
  core::LoopClock clock_;
  Callback onOomKill_;
  // Declared before the sources watching its descriptor, released after them.
  std::unique_ptr<sd_journal, JournalClose> journal_;
  core::EventSource io_;
  std::unique_ptr<core::Timer> timer_;
  bool readFailureLogged_ = false;
};

}  // namespace nodewarden::heal
