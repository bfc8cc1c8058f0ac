#pragma once

#include <sys/types.h>

#include <cstdint>
#include <deque>
#include <map>
#include <memory>

#include "agent/core/loop.h"
#include "agent/core/process_runner.h"

namespace nodewarden::core {

// Runs child processes on the event loop: posix_spawn with pipes, output read
// through the loop, exit seen through sd_event_add_child, timeouts on the Clock.
// Each child leads its own process group, and a timeout or the runner's
// destruction signals the whole group, so that what apt-get started goes too.
// Destroying the runner kills and reaps the children still running; their
// callbacks never run.
class LoopProcessRunner final : public ProcessRunner {
 public:
  // Blocks SIGCHLD on the calling thread, as sd-event requires to watch
  // children: call it on the loop thread before other threads start.
  static Result<std::unique_ptr<LoopProcessRunner>> create(
      Loop& loop, Clock& clock, Duration killGrace = std::chrono::seconds(5));

  LoopProcessRunner(const LoopProcessRunner&) = delete;
  LoopProcessRunner& operator=(const LoopProcessRunner&) = delete;
  ~LoopProcessRunner() override;

  void run(ProcessRequest request, Callback done) override;

  // Children started and not yet reported.
  size_t running() const { return children_.size(); }

 private:
  class Child;  // one process, its pipes, its timer and its result

  LoopProcessRunner(Loop& loop, Clock& clock, Duration killGrace);
  // Queues `id`'s callback for the next loop iteration.
  void finish(uint64_t id);
  void deliverOne();

  Loop& loop_;
  Clock& clock_;
  const Duration killGrace_;
  // Callbacks run from here, outside the child's own event sources.
  EventSource deliver_;
  uint64_t nextId_ = 0;
  std::map<uint64_t, std::unique_ptr<Child>> children_;
  std::deque<uint64_t> finished_;
};

}  // namespace nodewarden::core
