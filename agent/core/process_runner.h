#pragma once

#include <cstddef>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "agent/core/clock.h"
#include "agent/core/status.h"

namespace nodewarden::core {

// A command to run as a child process: argv is executed directly, never through
// a shell.
struct ProcessRequest {
  // argv[0] without a '/' is looked up in kProcessPath.
  std::vector<std::string> argv;
  // The child starts from a clean, minimal environment (PATH=kProcessPath,
  // LC_ALL=C), not the agent's: tools' output stays parseable whatever the
  // agent inherited, and the agent's NOTIFY_SOCKET, LISTEN_FDS, ... never leak
  // into apt's maintainer scripts. These are added on top and win on a clash,
  // e.g. {"DEBIAN_FRONTEND", "noninteractive"}.
  std::map<std::string, std::string> environment;
  // Written to the child's stdin, which is then closed; empty: stdin at EOF.
  std::string stdinData;
  // Past it the child gets SIGTERM, then SIGKILL after the runner's grace period.
  Duration timeout = std::chrono::minutes(5);
  // Bytes kept of stdout and of stderr, each; the rest is read and dropped.
  size_t outputLimit = 1024 * 1024;
};

inline constexpr const char* kProcessPath =
    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

// How a child process ended. A timed-out child is a result, not an error.
struct ProcessResult {
  std::optional<int> exitCode;  // set when the process exited
  std::optional<int> signal;    // set when a signal killed it
  std::string stdoutData;
  std::string stderrData;
  bool stdoutTruncated = false;  // more than outputLimit bytes were written
  bool stderrTruncated = false;
  bool timedOut = false;
  Duration duration{};

  bool succeeded() const { return exitCode == 0 && !timedOut; }
};

// Runs child processes for the agent (apt-get, dpkg, dnf, modprobe, sysctl,
// crictl). One real implementation on the event loop, one fake for tests.
class ProcessRunner {
 public:
  using Callback = std::function<void(Result<ProcessResult>)>;

  virtual ~ProcessRunner() = default;
  // Starts the command; `done` runs later on the loop thread, never inside
  // run(), once the child has ended and its output is read. An error means it
  // could not be started: "run apt-get: No such file or directory".
  virtual void run(ProcessRequest request, Callback done) = 0;
};

}  // namespace nodewarden::core
