#pragma once

#include <deque>
#include <string>
#include <utility>
#include <vector>

#include "agent/core/process_runner.h"

namespace nodewarden::core {

// A ProcessRunner for unit tests. It records every request in order and answers
// from a script: the response whose argv prefix is the longest match for the
// request. A command nothing matches fails to start, as a missing tool would
// ("run apt-get: No such file or directory"), so no test passes by accident.
//
// Nothing runs by itself: run() queues the request and the test delivers the
// results with complete(), in order. So a callback never runs inside run(), as
// with the real runner.
//
//   FakeProcessRunner runner;
//   runner.respond({"dpkg-query", "-W"}, 0, "containerd\t1.6.20\n");
//   runner.respond({"apt-get", "install"}, 100, "", "E: Unable to locate package\n");
//   ... run the code under test ...
//   runner.complete();
//   EXPECT_THAT(runner.commands(), ElementsAre("dpkg-query -W ...", "apt-get install ..."));
class FakeProcessRunner final : public ProcessRunner {
 public:
  // Commands starting with `argvPrefix` exit with `exitCode` and this output,
  // truncated and flagged as the real runner would at the request's outputLimit.
  void respond(std::vector<std::string> argvPrefix, int exitCode, std::string stdoutData = "",
               std::string stderrData = "");
  // Commands starting with `argvPrefix` get `response` as it is: a result with
  // a signal or timedOut, or an error for a command that fails to start.
  void respond(std::vector<std::string> argvPrefix, Result<ProcessResult> response);
  void clearResponses() { responses_.clear(); }

  // Every request so far, in order.
  const std::vector<ProcessRequest>& requests() const { return requests_; }
  // requests() as command lines: argv joined with spaces.
  std::vector<std::string> commands() const;
  void clearRequests() { requests_.clear(); }

  size_t pending() const { return queued_.size(); }
  // Delivers queued results in order, including those of commands their
  // callbacks run, until none is left; returns how many were delivered.
  size_t complete();

  void run(ProcessRequest request, Callback done) override;

 private:
  struct Response {
    std::vector<std::string> argvPrefix;
    Result<ProcessResult> result;
  };
  struct Queued {
    Result<ProcessResult> result;
    Callback done;
  };

  Result<ProcessResult> answer(const ProcessRequest& request) const;

  std::vector<Response> responses_;
  std::vector<ProcessRequest> requests_;
  std::deque<Queued> queued_;
};

}  // namespace nodewarden::core
