#include "agent/core/loop_process_runner.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <string_view>
#include <tuple>
#include <utility>

namespace nodewarden::core {

namespace {

// argv[0] as posix_spawn needs it: a path, looked up in kProcessPath when it
// has no '/', as the child's own PATH would.
Result<std::string> executablePath(const std::string& name) {
  if (name.find('/') != std::string::npos) return name;
  std::string_view dirs = kProcessPath;
  while (!dirs.empty()) {
    const size_t colon = dirs.find(':');
    std::string candidate(dirs.substr(0, colon));
    candidate += "/" + name;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
    dirs = colon == std::string_view::npos ? std::string_view() : dirs.substr(colon + 1);
  }
  return Status::fromErrno(ENOENT, "run " + name);
}

std::vector<std::string> childEnvironment(const std::map<std::string, std::string>& additions) {
  std::map<std::string, std::string> variables = {{"PATH", kProcessPath}, {"LC_ALL", "C"}};
  for (const auto& [name, value] : additions) variables[name] = value;
  std::vector<std::string> environment;
  for (const auto& [name, value] : variables) environment.push_back(name + "=" + value);
  return environment;
}

std::vector<char*> pointers(std::vector<std::string>& strings) {
  std::vector<char*> result;
  for (std::string& s : strings) result.push_back(s.data());
  result.push_back(nullptr);
  return result;
}

Status setNonBlocking(const UniqueFd& fd) {
  const int flags = ::fcntl(fd.get(), F_GETFL);
  if (flags < 0 || ::fcntl(fd.get(), F_SETFL, flags | O_NONBLOCK) < 0) {
    return Status::fromErrno(errno, "set pipe non-blocking");
  }
  return Status::ok();
}

// posix_spawn's attribute and file-action objects, destroyed on every path.
class SpawnSetup final {
 public:
  SpawnSetup() {
    posix_spawnattr_init(&attr_);
    posix_spawn_file_actions_init(&actions_);
  }
  SpawnSetup(const SpawnSetup&) = delete;
  SpawnSetup& operator=(const SpawnSetup&) = delete;
  ~SpawnSetup() {
    posix_spawn_file_actions_destroy(&actions_);
    posix_spawnattr_destroy(&attr_);
  }
  posix_spawnattr_t* attr() { return &attr_; }
  posix_spawn_file_actions_t* actions() { return &actions_; }

 private:
  posix_spawnattr_t attr_;
  posix_spawn_file_actions_t actions_;
};

}  // namespace

class LoopProcessRunner::Child final {
 public:
  Child(LoopProcessRunner& runner, uint64_t id, ProcessRequest request, Callback done)
      : done_(std::move(done)), runner_(runner), id_(id), request_(std::move(request)) {}
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  ~Child() {
    // Once reaped, its pid, and so its group's id, may belong to another.
    if (pid_ <= 0 || exited_) return;
    ::kill(-pid_, SIGKILL);  // the group: what it started goes too
    childSource_.reset();
    while (::waitpid(pid_, nullptr, 0) < 0 && errno == EINTR) {
    }
  }

  // Starts the process; on error there is nothing left to clean up.
  Status start() {
    if (request_.argv.empty()) return Status::invalidArgument("run: empty command");
    auto path = executablePath(request_.argv[0]);
    if (!path) return path.status();

    int out[2], err[2], in[2];
    if (::pipe2(out, O_CLOEXEC) < 0) return Status::fromErrno(errno, "create pipe");
    UniqueFd outRead(out[0]), outWrite(out[1]);
    if (::pipe2(err, O_CLOEXEC) < 0) return Status::fromErrno(errno, "create pipe");
    UniqueFd errRead(err[0]), errWrite(err[1]);
    // A socket, not a pipe, for stdin: send(MSG_NOSIGNAL) to a child that
    // exited without reading fails with EPIPE instead of raising SIGPIPE.
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, in) < 0) {
      return Status::fromErrno(errno, "create socket pair");
    }
    UniqueFd inWrite(in[0]), inRead(in[1]);
    for (const UniqueFd* fd : {&outRead, &errRead, &inWrite}) {
      if (Status s = setNonBlocking(*fd); !s) return s;
    }

    SpawnSetup setup;
    posix_spawn_file_actions_adddup2(setup.actions(), inRead.get(), STDIN_FILENO);
    posix_spawn_file_actions_adddup2(setup.actions(), outWrite.get(), STDOUT_FILENO);
    posix_spawn_file_actions_adddup2(setup.actions(), errWrite.get(), STDERR_FILENO);
    // Only stdin, stdout and stderr, even if some fd lacks O_CLOEXEC.
    posix_spawn_file_actions_addclosefrom_np(setup.actions(), STDERR_FILENO + 1);
    // The agent blocks SIGCHLD, SIGTERM, SIGHUP... for the loop, and may ignore
    // others; the tool must start with the defaults. Its own process group lets
    // a timeout kill what it started too.
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawnattr_setsigmask(setup.attr(), &none);
    posix_spawnattr_setsigdefault(setup.attr(), &all);
    posix_spawnattr_setpgroup(setup.attr(), 0);
    posix_spawnattr_setflags(
        setup.attr(), POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP);

    std::vector<std::string> argv = request_.argv;
    std::vector<std::string> environment = childEnvironment(request_.environment);
    std::vector<char*> argvPointers = pointers(argv);
    std::vector<char*> environmentPointers = pointers(environment);
    pid_t pid = 0;
    const int r = ::posix_spawn(&pid, path->c_str(), setup.actions(), setup.attr(),
                                argvPointers.data(), environmentPointers.data());
    if (r != 0) return Status::fromErrno(r, "run " + request_.argv[0]);
    pid_ = pid;
    start_ = runner_.clock_.now();

    if (Status s = watch(std::move(outRead), std::move(errRead), std::move(inWrite)); !s) {
      // Unwatched first: sd-event must not wait for the child reaped here.
      childSource_.reset();
      stdout_.source.reset();
      stderr_.source.reset();
      stdinSource_.reset();
      ::kill(-pid_, SIGKILL);
      while (::waitpid(pid_, nullptr, 0) < 0 && errno == EINTR) {
      }
      pid_ = 0;
      return s.withContext("run " + request_.argv[0]);
    }
    return Status::ok();
  }

  Result<ProcessResult> takeResult() {
    if (!startError_.isOk()) return startError_;
    return std::move(result_);
  }
  void setStartError(Status error) { startError_ = std::move(error); }
  Callback takeDone() { return std::move(done_); }

 private:
  struct Output {
    UniqueFd fd;
    EventSource source;
    bool open = true;
  };

  Status watch(UniqueFd outRead, UniqueFd errRead, UniqueFd inWrite) {
    auto child = runner_.loop_.addChild(pid_, [this](const siginfo_t& info) { onExit(info); });
    if (!child) return child.status();
    childSource_ = std::move(*child);

    stdout_.fd = std::move(outRead);
    stderr_.fd = std::move(errRead);
    for (auto [output, data, truncated] :
         {std::tuple(&stdout_, &result_.stdoutData, &result_.stdoutTruncated),
          std::tuple(&stderr_, &result_.stderrData, &result_.stderrTruncated)}) {
      auto source = runner_.loop_.addIo(
          output->fd.get(), EPOLLIN,
          [this, output, data, truncated](uint32_t) { readOutput(*output, *data, *truncated); });
      if (!source) return source.status();
      output->source = std::move(*source);
    }

    // Empty stdin: closing our end now gives the child EOF at once.
    if (!request_.stdinData.empty()) {
      stdin_ = std::move(inWrite);
      auto source = runner_.loop_.addIo(stdin_.get(), EPOLLOUT, [this](uint32_t) { writeInput(); });
      if (!source) return source.status();
      stdinSource_ = std::move(*source);
    }

    timer_ = runner_.clock_.createTimer([this] { onTimeout(); });
    timer_->armIn(request_.timeout);
    return Status::ok();
  }

  // Sources are disabled, never destroyed, inside their own callbacks: that
  // would destroy the running callback. They go with the Child.
  static void stop(EventSource& source) { sd_event_source_set_enabled(source.get(), SD_EVENT_OFF); }

  void readOutput(Output& output, std::string& data, bool& truncated) {
    char buffer[65536];
    for (;;) {
      const ssize_t n = ::read(output.fd.get(), buffer, sizeof(buffer));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && errno == EAGAIN) return;
      if (n <= 0) break;  // EOF, or an error that no read will cure
      const size_t room = request_.outputLimit - std::min(request_.outputLimit, data.size());
      const size_t keep = std::min(room, static_cast<size_t>(n));
      data.append(buffer, keep);
      if (keep < static_cast<size_t>(n)) truncated = true;
    }
    output.open = false;
    stop(output.source);
    output.fd.reset();
    finishIfDone();
  }

  void writeInput() {
    const std::string& data = request_.stdinData;
    while (written_ < data.size()) {
      const ssize_t n = ::send(stdin_.get(), data.data() + written_, data.size() - written_,
                               MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && errno == EAGAIN) return;
      if (n < 0) break;  // EPIPE: the child does not want the rest
      written_ += static_cast<size_t>(n);
    }
    stop(stdinSource_);
    stdin_.reset();
  }

  void onExit(const siginfo_t& info) {
    exited_ = true;
    if (info.si_code == CLD_EXITED) {
      result_.exitCode = info.si_status;
    } else {
      result_.signal = info.si_status;
    }
    finishIfDone();
  }

  void onTimeout() {
    result_.timedOut = true;
    if (!terminated_) {
      terminated_ = true;
      ::kill(-pid_, SIGTERM);
      timer_->armIn(runner_.killGrace_);
      return;
    }
    killed_ = true;
    ::kill(-pid_, SIGKILL);
    finishIfDone();
  }

  // Done once the child has exited and both outputs reached EOF; after SIGKILL,
  // at exit, even if something that escaped the group still holds a pipe.
  void finishIfDone() {
    if (finished_ || !exited_) return;
    if (!killed_ && (stdout_.open || stderr_.open)) return;
    if (stdout_.open) readOutput(stdout_, result_.stdoutData, result_.stdoutTruncated);
    if (stderr_.open) readOutput(stderr_, result_.stderrData, result_.stderrTruncated);
    if (finished_) return;  // readOutput got there first
    finished_ = true;
    timer_->cancel();
    result_.duration = runner_.clock_.now() - start_;
    runner_.finish(id_);
  }

  Callback done_;
  LoopProcessRunner& runner_;
  const uint64_t id_;
  const ProcessRequest request_;
  Status startError_;
  ProcessResult result_;
  pid_t pid_ = 0;
  MonotonicTime start_{};
  Output stdout_;
  Output stderr_;
  UniqueFd stdin_;
  EventSource stdinSource_;
  size_t written_ = 0;
  EventSource childSource_;
  std::unique_ptr<Timer> timer_;
  bool exited_ = false;
  bool terminated_ = false;  // SIGTERM sent
  bool killed_ = false;      // SIGKILL sent
  bool finished_ = false;
};

Result<std::unique_ptr<LoopProcessRunner>> LoopProcessRunner::create(Loop& loop, Clock& clock,
                                                                     Duration killGrace) {
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGCHLD);
  if (int r = ::pthread_sigmask(SIG_BLOCK, &mask, nullptr); r != 0) {
    return Status::fromErrno(r, "block SIGCHLD");
  }
  std::unique_ptr<LoopProcessRunner> runner(new LoopProcessRunner(loop, clock, killGrace));
  auto deliver = loop.addDefer([runner = runner.get()] { runner->deliverOne(); });
  if (!deliver) return deliver.status();
  runner->deliver_ = std::move(*deliver);
  return runner;
}

LoopProcessRunner::LoopProcessRunner(Loop& loop, Clock& clock, Duration killGrace)
    : loop_(loop), clock_(clock), killGrace_(killGrace) {}

LoopProcessRunner::~LoopProcessRunner() = default;

void LoopProcessRunner::run(ProcessRequest request, Callback done) {
  const uint64_t id = nextId_++;
  auto child = std::make_unique<Child>(*this, id, std::move(request), std::move(done));
  Status started = child->start();
  Child& ref = *child;
  children_.emplace(id, std::move(child));
  if (!started) {
    ref.setStartError(std::move(started));
    finish(id);
  }
}

void LoopProcessRunner::finish(uint64_t id) {
  finished_.push_back(id);
  sd_event_source_set_enabled(deliver_.get(), SD_EVENT_ONESHOT);
}

// One callback per iteration, and nothing of the runner touched after it: a
// callback may start more children or destroy the runner.
void LoopProcessRunner::deliverOne() {
  if (finished_.empty()) return;
  const uint64_t id = finished_.front();
  finished_.pop_front();
  if (!finished_.empty()) sd_event_source_set_enabled(deliver_.get(), SD_EVENT_ONESHOT);
  auto it = children_.find(id);
  std::unique_ptr<Child> child = std::move(it->second);
  children_.erase(it);
  Result<ProcessResult> result = child->takeResult();
  Callback done = child->takeDone();
  child.reset();
  done(std::move(result));
}

}  // namespace nodewarden::core
