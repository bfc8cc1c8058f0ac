#include "agent/systemd/job_result.h"

#include <array>
#include <string>

#include "agent/core/duration.h"

namespace nodewarden::systemd {

namespace {

using Code = core::Status::Code;

struct Explanation {
  std::string_view key;
  std::string_view text;
};

// Why a unit failed, by its Result property; the wording is systemctl's.
constexpr std::array kUnitResults = {
    Explanation{"resources", "of unavailable resources or another system error"},
    Explanation{"protocol",
                "the service did not take the steps required by its unit configuration"},
    Explanation{"timeout", "a timeout was exceeded"},
    Explanation{"exit-code", "the control process exited with error code"},
    Explanation{"signal", "a fatal signal was delivered to the control process"},
    Explanation{"core-dump",
                "a fatal signal was delivered causing the control process to dump core"},
    Explanation{"watchdog", "the service failed to send watchdog ping"},
    Explanation{"start-limit-hit", "start of the service was attempted too often"},
    Explanation{"oom-kill", "the control process was killed by the OOM killer"},
};

struct JobOutcome {
  std::string_view result;
  Code code;
  std::string_view text;
};

constexpr std::array kJobResults = {
    JobOutcome{"canceled", Code::kCancelled, "job canceled by a conflicting job or request"},
    JobOutcome{"timeout", Code::kTimeout, "job timed out (the unit's JobTimeoutSec=)"},
    JobOutcome{"dependency", Code::kFailedPrecondition, "a dependency of the unit failed"},
    JobOutcome{"skipped", Code::kFailedPrecondition,
               "job skipped: it does not apply to the unit's current state"},
    JobOutcome{"invalid", Code::kFailedPrecondition, "job invalid for the unit's current state"},
    JobOutcome{"assert", Code::kFailedPrecondition, "an assertion (Assert*=) of the unit failed"},
    JobOutcome{"unsupported", Code::kFailedPrecondition,
               "the operation or the unit type is not supported on this system"},
    JobOutcome{"collected", Code::kCancelled, "queued job was garbage-collected"},
    JobOutcome{"once", Code::kFailedPrecondition,
               "the unit was started once already and cannot be started again"},
};

}  // namespace

std::string_view jobVerb(JobKind kind) {
  switch (kind) {
    case JobKind::kStart:
      return "start";
    case JobKind::kStop:
      return "stop";
    case JobKind::kRestart:
      return "restart";
  }
  return "job";
}

core::Status jobResultStatus(JobKind kind, std::string_view unit, std::string_view result,
                             std::string_view unitResult) {
  if (result == "done") return core::Status::ok();
  std::string prefix = std::string(jobVerb(kind)) + " " + std::string(unit) + ": ";
  for (const JobOutcome& outcome : kJobResults) {
    if (outcome.result == result) {
      return core::Status::error(outcome.code, prefix + std::string(outcome.text));
    }
  }
  if (result != "failed") {
    return core::Status::internal(prefix + "job ended with result \"" + std::string(result) + "\"");
  }
  if (unitResult.empty()) return core::Status::internal(prefix + "job failed");
  for (const Explanation& explanation : kUnitResults) {
    if (explanation.key == unitResult) {
      return core::Status::internal(prefix + "job failed because " + std::string(explanation.text) +
                                    " (result: " + std::string(unitResult) + ")");
    }
  }
  return core::Status::internal(prefix + "job failed (result: " + std::string(unitResult) + ")");
}

core::Status jobTimeoutStatus(JobKind kind, std::string_view unit, core::Duration timeout) {
  return core::Status::timeout(std::string(jobVerb(kind)) + " " + std::string(unit) +
                               ": job did not finish within " + core::formatDuration(timeout) +
                               "; systemd keeps running it");
}

}  // namespace nodewarden::systemd
