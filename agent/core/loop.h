#pragma once

#include <signal.h>
#include <sys/types.h>
#include <systemd/sd-event.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <utility>
#include <vector>

#include "agent/core/clock.h"
#include "agent/core/status.h"
#include "agent/core/unique_fd.h"

namespace nodewarden::core {

// An event source registered with the loop. Destroying it removes it.
class EventSource final {
 public:
  EventSource() = default;
  explicit EventSource(sd_event_source* source) : source_(source) {}
  EventSource(EventSource&& other) noexcept : source_(std::exchange(other.source_, nullptr)) {}
  EventSource& operator=(EventSource&& other) noexcept {
    if (this != &other) {
      reset();
      source_ = std::exchange(other.source_, nullptr);
    }
    return *this;
  }
  EventSource(const EventSource&) = delete;
  EventSource& operator=(const EventSource&) = delete;
  ~EventSource() { reset(); }

  void reset() { source_ = sd_event_source_disable_unref(source_); }
  sd_event_source* get() const { return source_; }
  explicit operator bool() const { return source_ != nullptr; }

 private:
  sd_event_source* source_ = nullptr;
};

// The agent's single event loop on sd-event. Every piece of agent state is owned
// by the thread that runs it; other threads reach it only through post().
class Loop final {
 public:
  using IoCallback = std::function<void(uint32_t revents)>;
  using ChildCallback = std::function<void(const siginfo_t& info)>;
  using InotifyCallback = std::function<void(const struct inotify_event& event)>;

  static Result<std::unique_ptr<Loop>> create();

  Loop(const Loop&) = delete;
  Loop& operator=(const Loop&) = delete;

  // Runs `callback` on the loop thread. Safe to call from any thread.
  void post(std::function<void()> callback);

  Result<EventSource> addIo(int fd, uint32_t events, IoCallback callback);
  // Blocks `signal` for the process and delivers it through the loop. Call
  // before starting other threads, so none of them receives it instead.
  Result<EventSource> addSignal(int signal, std::function<void()> callback);
  // Notified once when `pid` exits; the child is reaped.
  Result<EventSource> addChild(pid_t pid, ChildCallback callback);
  Result<EventSource> addInotify(const std::string& path, uint32_t mask, InotifyCallback callback);
  // A one-shot timer on CLOCK_MONOTONIC, disarmed until armIn().
  Result<EventSource> addTimer(std::function<void()> callback);
  // A source that runs `callback` once, on the next iteration, each time it is
  // enabled with sd_event_source_set_enabled(SD_EVENT_ONESHOT); created disabled.
  // For work that must not run inside the caller's callback.
  Result<EventSource> addDefer(std::function<void()> callback);

  // SIGTERM and SIGINT end run() with exit code 0.
  Status exitOnTerminationSignals();
  // Pings the service manager's watchdog from the loop when WatchdogSec= is
  // set: a stuck loop stops the pings and systemd restarts the agent.
  Status enableWatchdog();

  // Dispatches events until exit(); returns its code.
  int run();
  void exit(int code);
  // Dispatches events until `done` returns true or the loop is asked to exit.
  // For one-shot commands that wait for asynchronous work to finish.
  Status runUntil(const std::function<bool()>& done);

  // CLOCK_MONOTONIC read now, not sd_event_now(): that is the time the
  // iteration started, and stands still while callbacks run.
  MonotonicTime now() const;
  sd_event* event() const { return event_.get(); }

 private:
  struct EventUnref {
    void operator()(sd_event* event) const { sd_event_unref(event); }
  };
  using EventPtr = std::unique_ptr<sd_event, EventUnref>;

  explicit Loop(EventPtr event);
  Status setUpPost();
  void drainPosted();

  // Declared first, so that the sources below are released before the event.
  EventPtr event_;
  UniqueFd postFd_;
  EventSource postSource_;
  std::mutex postMutex_;
  std::vector<std::function<void()>> posted_;
  std::vector<EventSource> ownSources_;
};

// The real clock: monotonic time now, timers on the loop.
class LoopClock final : public Clock {
 public:
  explicit LoopClock(Loop& loop) : loop_(loop) {}
  MonotonicTime now() const override { return loop_.now(); }
  WallTime wallNow() const override { return std::chrono::system_clock::now(); }
  std::unique_ptr<Timer> createTimer(std::function<void()> callback) override;

 private:
  Loop& loop_;
};

}  // namespace nodewarden::core
