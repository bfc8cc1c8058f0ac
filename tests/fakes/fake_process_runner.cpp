#include "tests/fakes/fake_process_runner.h"

#include <algorithm>
#include <cerrno>

namespace nodewarden::core {

namespace {

bool startsWith(const std::vector<std::string>& argv, const std::vector<std::string>& prefix) {
  return prefix.size() <= argv.size() && std::equal(prefix.begin(), prefix.end(), argv.begin());
}

void truncate(std::string& data, bool& truncated, size_t limit) {
  if (data.size() <= limit) return;
  data.resize(limit);
  truncated = true;
}

}  // namespace

void FakeProcessRunner::respond(std::vector<std::string> argvPrefix, int exitCode,
                                std::string stdoutData, std::string stderrData) {
  ProcessResult result;
  result.exitCode = exitCode;
  result.stdoutData = std::move(stdoutData);
  result.stderrData = std::move(stderrData);
  respond(std::move(argvPrefix), std::move(result));
}

void FakeProcessRunner::respond(std::vector<std::string> argvPrefix,
                                Result<ProcessResult> response) {
  // A later response for the same prefix replaces the earlier one.
  std::erase_if(responses_, [&](const Response& r) { return r.argvPrefix == argvPrefix; });
  responses_.push_back(Response{std::move(argvPrefix), std::move(response)});
}

std::vector<std::string> FakeProcessRunner::commands() const {
  std::vector<std::string> commands;
  for (const ProcessRequest& request : requests_) {
    std::string line;
    for (const std::string& arg : request.argv) line += (line.empty() ? "" : " ") + arg;
    commands.push_back(std::move(line));
  }
  return commands;
}

Result<ProcessResult> FakeProcessRunner::answer(const ProcessRequest& request) const {
  const Response* best = nullptr;
  for (const Response& response : responses_) {
    if (!startsWith(request.argv, response.argvPrefix)) continue;
    if (best == nullptr || response.argvPrefix.size() > best->argvPrefix.size()) best = &response;
  }
  if (best == nullptr) {
    if (request.argv.empty()) return Status::invalidArgument("run: empty command");
    return Status::fromErrno(ENOENT, "run " + request.argv[0]);
  }
  if (!best->result.isOk()) return best->result.status();
  ProcessResult result = best->result.value();
  truncate(result.stdoutData, result.stdoutTruncated, request.outputLimit);
  truncate(result.stderrData, result.stderrTruncated, request.outputLimit);
  return result;
}

void FakeProcessRunner::run(ProcessRequest request, Callback done) {
  queued_.push_back(Queued{answer(request), std::move(done)});
  requests_.push_back(std::move(request));
}

size_t FakeProcessRunner::complete() {
  size_t completed = 0;
  while (!queued_.empty()) {
    Queued next = std::move(queued_.front());
    queued_.pop_front();
    ++completed;
    next.done(std::move(next.result));
  }
  return completed;
}

}  // namespace nodewarden::core
