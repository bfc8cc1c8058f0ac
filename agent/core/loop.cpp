#include "agent/core/loop.h"

#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/wait.h>
#include <time.h>

#include <cassert>
#include <cerrno>
#include <utility>

namespace nodewarden::core {

namespace {

// Each source owns its callback through sd-event's destroy callback, so a
// callback lives exactly as long as its source.
template <typename Callback>
void destroyCallback(void* userdata) {
  delete static_cast<Callback*>(userdata);
}

template <typename Callback>
Result<EventSource> adopt(int r, sd_event_source* source, Callback* callback,
                          const std::string& what) {
  if (r < 0) {
    sd_event_source_disable_unref(source);  // created, then failed to configure
    delete callback;
    return Status::fromErrno(r, what);
  }
  sd_event_source_set_destroy_callback(source, destroyCallback<Callback>);
  return EventSource(source);
}

// CLOCK_MONOTONIC, which cannot fail to be read.
std::chrono::nanoseconds monotonicNow() {
  timespec now{};
  clock_gettime(CLOCK_MONOTONIC, &now);
  return std::chrono::seconds(now.tv_sec) + std::chrono::nanoseconds(now.tv_nsec);
}

}  // namespace

Result<std::unique_ptr<Loop>> Loop::create() {
  sd_event* event = nullptr;
  int r = sd_event_new(&event);
  if (r < 0) return Status::fromErrno(r, "create event loop");
  std::unique_ptr<Loop> loop(new Loop(EventPtr(event)));
  if (Status s = loop->setUpPost(); !s) return s;
  return loop;
}

Loop::Loop(EventPtr event) : event_(std::move(event)) {}

Status Loop::setUpPost() {
  postFd_.reset(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!postFd_.isValid()) return Status::fromErrno(errno, "create eventfd");
  auto source = addIo(postFd_.get(), EPOLLIN, [this](uint32_t) {
    uint64_t count;
    (void)!::read(postFd_.get(), &count, sizeof(count));
    drainPosted();
  });
  if (!source) return source.status();
  postSource_ = std::move(*source);
  return Status::ok();
}

void Loop::post(std::function<void()> callback) {
  {
    std::lock_guard lock(postMutex_);
    posted_.push_back(std::move(callback));
  }
  const uint64_t one = 1;
  (void)!::write(postFd_.get(), &one, sizeof(one));
}

void Loop::drainPosted() {
  std::vector<std::function<void()>> batch;
  {
    std::lock_guard lock(postMutex_);
    batch.swap(posted_);
  }
  for (auto& callback : batch) callback();
}

Result<EventSource> Loop::addIo(int fd, uint32_t events, IoCallback callback) {
  auto* owned = new IoCallback(std::move(callback));
  sd_event_source* source = nullptr;
  int r = sd_event_add_io(
      event_.get(), &source, fd, events,
      [](sd_event_source*, int, uint32_t revents, void* userdata) {
        (*static_cast<IoCallback*>(userdata))(revents);
        return 0;
      },
      owned);
  return adopt(r, source, owned, "watch fd " + std::to_string(fd));
}

Result<EventSource> Loop::addSignal(int signal, std::function<void()> callback) {
  sigset_t mask, previous;
  sigemptyset(&mask);
  sigaddset(&mask, signal);
  if (sigprocmask(SIG_BLOCK, &mask, &previous) < 0) {
    return Status::fromErrno(errno, "block signal " + std::to_string(signal));
  }
  using Callback = std::function<void()>;
  auto* owned = new Callback(std::move(callback));
  sd_event_source* source = nullptr;
  int r = sd_event_add_signal(
      event_.get(), &source, signal,
      [](sd_event_source*, const signalfd_siginfo*, void* userdata) {
        (*static_cast<Callback*>(userdata))();
        return 0;
      },
      owned);
  // Unwatched, the signal would stay blocked and never be delivered.
  if (r < 0 && !sigismember(&previous, signal)) sigprocmask(SIG_UNBLOCK, &mask, nullptr);
  return adopt(r, source, owned, "watch signal " + std::to_string(signal));
}

Result<EventSource> Loop::addChild(pid_t pid, ChildCallback callback) {
  auto* owned = new ChildCallback(std::move(callback));
  sd_event_source* source = nullptr;
  int r = sd_event_add_child(
      event_.get(), &source, pid, WEXITED,
      [](sd_event_source*, const siginfo_t* info, void* userdata) {
        (*static_cast<ChildCallback*>(userdata))(*info);
        return 0;
      },
      owned);
  return adopt(r, source, owned, "watch child " + std::to_string(pid));
}

Result<EventSource> Loop::addInotify(const std::string& path, uint32_t mask,
                                     InotifyCallback callback) {
  auto* owned = new InotifyCallback(std::move(callback));
  sd_event_source* source = nullptr;
  int r = sd_event_add_inotify(
      event_.get(), &source, path.c_str(), mask,
      [](sd_event_source*, const struct inotify_event* event, void* userdata) {
        (*static_cast<InotifyCallback*>(userdata))(*event);
        return 0;
      },
      owned);
  return adopt(r, source, owned, "watch " + path);
}

Result<EventSource> Loop::addTimer(std::function<void()> callback) {
  using Callback = std::function<void()>;
  auto* owned = new Callback(std::move(callback));
  sd_event_source* source = nullptr;
  int r = sd_event_add_time(
      event_.get(), &source, CLOCK_MONOTONIC, UINT64_MAX, /*accuracy=*/1000,
      [](sd_event_source*, uint64_t, void* userdata) {
        (*static_cast<Callback*>(userdata))();
        return 0;
      },
      owned);
  if (r >= 0) r = sd_event_source_set_enabled(source, SD_EVENT_OFF);
  return adopt(r, source, owned, "create timer");
}

Result<EventSource> Loop::addDefer(std::function<void()> callback) {
  using Callback = std::function<void()>;
  auto* owned = new Callback(std::move(callback));
  sd_event_source* source = nullptr;
  int r = sd_event_add_defer(
      event_.get(), &source,
      [](sd_event_source*, void* userdata) {
        (*static_cast<Callback*>(userdata))();
        return 0;
      },
      owned);
  if (r >= 0) r = sd_event_source_set_enabled(source, SD_EVENT_OFF);
  return adopt(r, source, owned, "create deferred event");
}

Status Loop::exitOnTerminationSignals() {
  for (int signal : {SIGTERM, SIGINT}) {
    auto source = addSignal(signal, [this] { exit(0); });
    if (!source) return source.status();
    ownSources_.push_back(std::move(*source));
  }
  return Status::ok();
}

Status Loop::enableWatchdog() {
  int r = sd_event_set_watchdog(event_.get(), true);
  if (r < 0) return Status::fromErrno(r, "enable watchdog");
  return Status::ok();
}

int Loop::run() {
  int r = sd_event_loop(event_.get());
  return r < 0 ? 1 : r;
}

void Loop::exit(int code) { sd_event_exit(event_.get(), code); }

Status Loop::runUntil(const std::function<bool()>& done) {
  while (!done()) {
    int r = sd_event_run(event_.get(), UINT64_MAX);
    if (r < 0) return Status::fromErrno(r, "run event loop");
    if (sd_event_get_state(event_.get()) == SD_EVENT_FINISHED) {
      return Status::error(Status::Code::kCancelled, "event loop exited");
    }
  }
  return Status::ok();
}

MonotonicTime Loop::now() const { return MonotonicTime(monotonicNow()); }

namespace {

class LoopTimer final : public Timer {
 public:
  explicit LoopTimer(EventSource source) : source_(std::move(source)) {}

  // From the time now: sd_event_now() and sd_event_source_set_time_relative()
  // count from the start of the iteration, and a timer armed after long work in
  // a callback would fire early by as long as the work took.
  void armIn(Duration delay) override {
    const auto deadline = std::chrono::ceil<std::chrono::microseconds>(monotonicNow() + delay);
    sd_event_source_set_time(source_.get(), static_cast<uint64_t>(deadline.count()));
    sd_event_source_set_enabled(source_.get(), SD_EVENT_ONESHOT);
  }
  void cancel() override { sd_event_source_set_enabled(source_.get(), SD_EVENT_OFF); }
  bool armed() const override {
    int enabled = SD_EVENT_OFF;
    sd_event_source_get_enabled(source_.get(), &enabled);
    return enabled != SD_EVENT_OFF;
  }

 private:
  EventSource source_;
};

}  // namespace

std::unique_ptr<Timer> LoopClock::createTimer(std::function<void()> callback) {
  auto source = loop_.addTimer(std::move(callback));
  // Creating a disabled time source fails only on allocation failure (ENOMEM),
  // which the agent does not survive anyway.
  assert(source.isOk());
  return std::make_unique<LoopTimer>(std::move(*source));
}

}  // namespace nodewarden::core
