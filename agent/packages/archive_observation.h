#pragma once

#include <sys/types.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "agent/core/process_runner.h"
#include "agent/core/status.h"
#include "agent/packages/package_manager.h"

namespace nodewarden::core {
class Clock;
class Timer;
}  // namespace nodewarden::core

namespace nodewarden::packages {

// What the apt and dnf backends share: when to ask the archive, what counts
// as missing from it, how a failed tool is described, running a transaction's
// commands in order, and a "later" for results that take no process.

// Runs `commands` (each with a `request`) one after another on `runner`,
// stopping at the first for which `verdict(command, result)` is an error;
// `done` gets that error, or ok once every command passed.
template <typename Command, typename Verdict>
void runInOrder(core::ProcessRunner& runner, std::vector<Command> commands, Verdict verdict,
                std::function<void(core::Status)> done, size_t next = 0) {
  if (next == commands.size()) return done(core::Status::ok());
  core::ProcessRequest request = commands[next].request;
  runner.run(
      std::move(request), [&runner, commands = std::move(commands), verdict, done = std::move(done),
                           next](core::Result<core::ProcessResult> result) mutable {
        if (core::Status s = verdict(commands[next], result); !s) return done(s);
        runInOrder(runner, std::move(commands), std::move(verdict), std::move(done), next + 1);
      });
}

// Runs callbacks on the loop thread soon, never inside post(): a zero-delay
// timer on the Clock (the loop's timers on a node, advance() in tests).
class DeferredCalls final {
 public:
  explicit DeferredCalls(core::Clock& clock);
  ~DeferredCalls();
  DeferredCalls(const DeferredCalls&) = delete;
  DeferredCalls& operator=(const DeferredCalls&) = delete;

  void post(std::function<void()> call);

 private:
  void runAll();

  std::unique_ptr<core::Timer> timer_;
  std::vector<std::function<void()>> calls_;
};

// The snapshot entry for `name`, made if there is none.
PackageInfo& entryFor(PackageSnapshot& snapshot, const std::string& name);

// The wanted packages a transaction would fetch from the archive: not
// installed, installed at another version than pinned, or `latest`. Each
// name once, in the order of `wants`. `snapshot` holds the installed state.
std::vector<std::string> namesNeedingArchive(const std::vector<PackageWant>& wants,
                                             const PackageSnapshot& snapshot,
                                             const PackageManager& manager);

// Of those, what the archive as queried into `snapshot` lacks: "containerd"
// for an unknown package, "containerd 1.7.0" for a pinned version it lacks.
std::vector<std::string> missingFromArchive(const std::vector<PackageWant>& wants,
                                            const PackageSnapshot& snapshot,
                                            const PackageManager& manager);

// "package lists refreshed: containerd, runc 1.1.7 were not in them".
std::string refreshNote(const std::vector<std::string>& missing);

// Lines of `text` that start with one of `prefixes` after leading blanks,
// trimmed ("E: Unable to locate package x").
std::vector<std::string> linesStartingWith(std::string_view text,
                                           const std::vector<std::string_view>& prefixes);

// "a, b, c".
std::string joined(const std::vector<std::string>& items, std::string_view separator = ", ");

// Why a tool did not succeed, for an error: "apt-get install exited with
// status 100: E: ...; E: ..." / "timed out after 120s" (its `timeout`) /
// "was killed by signal 9" / could not start. `details` are the lines worth showing; when
// empty the last lines of stderr are shown.
std::string describeFailure(std::string_view command,
                            const core::Result<core::ProcessResult>& result, core::Duration timeout,
                            const std::vector<std::string>& details);

// The command name of a process (/proc/PID/comm), or "unknown" when it is gone.
std::string processName(pid_t pid);

// A process holding a package database's lock file.
struct LockHolder {
  pid_t pid = 0;     // 0: a process outside this node's PID namespace
  std::string name;  // its /proc/PID/comm
};

// Who holds `path` write-locked with fcntl, as dpkg and rpm lock their
// databases; nothing when it is free or missing.
std::optional<LockHolder> lockFileHolder(const std::string& path);

// "1234 (unattended-upgr)", or who it may be when its PID is not visible here.
std::string describe(const LockHolder& holder);

// Whole seconds, for messages ("300s").
std::string seconds(core::Duration duration);

}  // namespace nodewarden::packages
