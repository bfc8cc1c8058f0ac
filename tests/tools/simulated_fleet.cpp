#include "tests/tools/simulated_fleet.h"

#include <grpcpp/grpcpp.h>
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <filesystem>
#include <map>
#include <mutex>
#include <random>
#include <sstream>
#include <thread>
#include <vector>

#include "agent/core/atomic_file.h"
#include "agent/pki/certificate.h"
#include "nodewarden/v1/control.grpc.pb.h"

namespace nodewarden::fleetsim {

namespace {

using SteadyClock = std::chrono::steady_clock;
using TimePoint = SteadyClock::time_point;

// Enrollment is a few blocking calls and a key per node, most of it waiting
// on the server: a handful of threads keep it busy.
constexpr size_t kEnrollThreads = 6;
// TLS handshakes in flight. More only makes each slower: both ends share
// the CPU, and a handshake that takes too long counts as a failure.
constexpr size_t kMaxConnecting = 64;
constexpr auto kFirstRetry = std::chrono::seconds(1);
constexpr auto kMaxRetry = std::chrono::seconds(30);
constexpr auto kStopTimeout = std::chrono::seconds(30);
constexpr size_t kProgressEvery = 1000;
// In the state directory: each node's last sequence number, which a real
// agent keeps in its spool. A node that numbered from 0 again would count as
// reinstalled.
constexpr std::string_view kSequencesFile = "/last-sequences";
constexpr size_t kMaxSequencesBytes = 64 << 20;
// Of each kind of failure, the first few are shown, then every kProgressEvery-th.
constexpr size_t kErrorsShown = 10;

std::mutex stderrMutex;

// Progress on stderr, from any thread; stdout carries only the answers.
template <typename... Args>
void say(const char* format, Args... args) {
  std::lock_guard lock(stderrMutex);
  std::fprintf(stderr, "fleet-sim: ");
  std::fprintf(stderr, format, args...);
  std::fputc('\n', stderr);
}

std::string nodeName(size_t index) {
  char name[32];
  std::snprintf(name, sizeof(name), "sim-%05zu", index + 1);
  return name;
}

int64_t wallMicros() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

int64_t steadyNanos(TimePoint time) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(time.time_since_epoch()).count();
}

double millis(SteadyClock::duration duration) {
  return std::chrono::duration<double, std::milli>(duration).count();
}

std::string describe(const grpc::Status& status) {
  return std::string(statusCodeName(status.error_code())) + ": " + status.error_message();
}

// Nearest rank.
double percentile(const std::vector<double>& sorted, double fraction) {
  const auto rank = static_cast<size_t>(std::ceil(fraction * static_cast<double>(sorted.size())));
  return sorted[std::clamp<size_t>(rank, 1, sorted.size()) - 1];
}

v1::Facts simulatedFacts(const std::string& name) {
  v1::Facts facts;
  facts.set_hostname(name);
  facts.set_machine_id(std::string(32 - std::min<size_t>(name.size(), 32), '0') + name);
  facts.set_os("Debian GNU/Linux 12 (bookworm)");
  facts.set_kernel("6.1.0-sim");
  facts.set_agent_version("fleet-sim");
  facts.set_cpus(4);
  facts.set_memory_bytes(uint64_t{16} << 30);
  auto* disk = facts.add_disks();
  disk->set_mount("/");
  disk->set_size_bytes(uint64_t{100} << 30);
  (*facts.mutable_labels())["simulated"] = "true";
  return facts;
}

}  // namespace

std::string_view statusCodeName(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK:
      return "OK";
    case grpc::StatusCode::CANCELLED:
      return "CANCELLED";
    case grpc::StatusCode::UNKNOWN:
      return "UNKNOWN";
    case grpc::StatusCode::INVALID_ARGUMENT:
      return "INVALID_ARGUMENT";
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return "DEADLINE_EXCEEDED";
    case grpc::StatusCode::NOT_FOUND:
      return "NOT_FOUND";
    case grpc::StatusCode::ALREADY_EXISTS:
      return "ALREADY_EXISTS";
    case grpc::StatusCode::PERMISSION_DENIED:
      return "PERMISSION_DENIED";
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return "RESOURCE_EXHAUSTED";
    case grpc::StatusCode::FAILED_PRECONDITION:
      return "FAILED_PRECONDITION";
    case grpc::StatusCode::ABORTED:
      return "ABORTED";
    case grpc::StatusCode::OUT_OF_RANGE:
      return "OUT_OF_RANGE";
    case grpc::StatusCode::UNIMPLEMENTED:
      return "UNIMPLEMENTED";
    case grpc::StatusCode::INTERNAL:
      return "INTERNAL";
    case grpc::StatusCode::UNAVAILABLE:
      return "UNAVAILABLE";
    case grpc::StatusCode::DATA_LOSS:
      return "DATA_LOSS";
    case grpc::StatusCode::UNAUTHENTICATED:
      return "UNAUTHENTICATED";
    case grpc::StatusCode::DO_NOT_USE:
      break;
  }
  return "UNKNOWN";
}

fleet::IdentityFiles identityFilesIn(const std::string& directory) {
  return {directory + "/node.key", directory + "/node.crt", directory + "/ca.crt"};
}

core::Result<fleet::Identity> enrollInto(const EnrollTarget& target, const std::string& name,
                                         const std::string& directory, bool reuse) {
  std::error_code error;
  std::filesystem::create_directories(directory, error);
  if (error) return core::Status::internal("create " + directory + ": " + error.message());
  // It holds a private key.
  if (chmod(directory.c_str(), 0700) != 0) {
    return core::Status::fromErrno(errno, "chmod " + directory);
  }
  const fleet::IdentityFiles files = identityFilesIn(directory);
  if (reuse) {
    auto identity = fleet::readIdentity(files);
    if (identity) {
      // An identity from another server (an earlier run's) is no use here.
      auto ca = pki::Certificate::fromPem(identity->ca);
      if (ca && ca->publicKeyPin() == target.caPin) return identity;
    }
  }
  return fleet::enroll({target.server, target.token, target.caPin, name}, files);
}

namespace {

class AgentStream;

// One simulated node: its identity's channel, and what outlives a stream.
class Agent final {
 public:
  explicit Agent(size_t index) : index_(index), name_(nodeName(index)) {}

  size_t index() const { return index_; }
  const std::string& name() const { return name_; }

  void setChannel(const fleet::Identity& identity, const std::string& server) {
    // The agent's own channel.
    stub_ = v1::Node::NewStub(fleet::nodeChannel(server, identity));
  }

  v1::Node::Stub& stub() { return *stub_; }

  v1::AgentMessage hello() {
    v1::AgentMessage message;
    *message.mutable_hello()->mutable_facts() = simulatedFacts(name_);
    std::lock_guard lock(mutex_);
    message.mutable_hello()->set_desired_version(version_);
    message.mutable_hello()->set_last_sequence(lastSequence_);
    return message;
  }

  // The next report, numbered, for the stream that is up; or nothing.
  std::shared_ptr<AgentStream> nextReport(v1::AgentMessage& report);

  uint64_t lastSequence() {
    std::lock_guard lock(mutex_);
    return lastSequence_;
  }

  // The server's answer to the hello, what it has stored already; or what
  // an earlier run used.
  void adoptSequence(uint64_t stored) {
    std::lock_guard lock(mutex_);
    lastSequence_ = std::max(lastSequence_, stored);
  }

  void desiredState(const std::string& version, TimePoint now) {
    std::lock_guard lock(mutex_);
    if (version == version_) return;
    version_ = version;
    lastPushNanos_.store(steadyNanos(now), std::memory_order_relaxed);
  }

  int64_t lastPushNanos() const { return lastPushNanos_.load(std::memory_order_relaxed); }

  void setStream(std::shared_ptr<AgentStream> stream) {
    std::lock_guard lock(mutex_);
    stream_ = std::move(stream);
  }
  std::shared_ptr<AgentStream> stream() {
    std::lock_guard lock(mutex_);
    return stream_;
  }
  // Forgets `stream`, which ended, and says how long to wait before the next.
  SteadyClock::duration streamEnded(const AgentStream* stream, bool wasUp) {
    std::lock_guard lock(mutex_);
    if (stream_.get() == stream) stream_.reset();
    failures_ = wasUp ? 0 : failures_ + 1;
    const auto delay =
        std::min<SteadyClock::duration>(kFirstRetry * (1 << std::min(failures_, 5)), kMaxRetry);
    // Up to a fifth off, so the agents that lost the server together do not
    // come back together.
    static thread_local std::mt19937 random{std::random_device{}()};
    return std::chrono::duration_cast<SteadyClock::duration>(
        delay * std::uniform_real_distribution<double>(0.8, 1.0)(random));
  }

 private:
  const size_t index_;
  const std::string name_;
  std::unique_ptr<v1::Node::Stub> stub_;  // set once, before the first stream

  std::mutex mutex_;
  std::shared_ptr<AgentStream> stream_;
  uint64_t lastSequence_ = 0;
  std::string version_;
  int failures_ = 0;
  std::atomic<int64_t> lastPushNanos_ = 0;  // steady clock; 0: no state yet
};

}  // namespace

// What the agents report into, and the threads that drive them.
class LoadDriver final {
 public:
  explicit LoadDriver(LoadOptions options) : options_(std::move(options)) {
    agents_.reserve(options_.agents);
    for (size_t i = 0; i < options_.agents; ++i) agents_.push_back(std::make_unique<Agent>(i));
  }

  void start();
  void mark();
  void resetLatencies();
  LoadStats stats() const;
  bool stop();

  // From the streams, on gRPC's threads.
  void streamUp(Agent& agent);
  void latency(double ms);
  void streamDone(Agent& agent, const AgentStream* stream, bool wasUp, const grpc::Status& status);

 private:
  void enrollLoop();
  void connectLoop();
  void reportLoop();

  void loadSequences();
  void saveSequences();

  const LoadOptions options_;
  std::vector<std::unique_ptr<Agent>> agents_;
  std::map<std::string, uint64_t> sequences_;  // as read, for the nodes this run leaves out
  std::vector<std::thread> threads_;
  std::atomic<size_t> nextToEnroll_ = 0;

  mutable std::mutex mutex_;
  std::condition_variable changed_;
  bool stopping_ = false;
  // Agents to connect, each not before its time.
  std::deque<std::pair<size_t, TimePoint>> toConnect_;
  size_t connecting_ = 0;
  size_t liveStreams_ = 0;
  size_t enrolled_ = 0;
  size_t connected_ = 0;
  size_t enrollFailures_ = 0;
  size_t failedConnects_ = 0;
  size_t disconnects_ = 0;
  std::string lastError_;
  std::vector<double> latencies_;
  std::optional<TimePoint> mark_;
};

namespace {

// One stream of one agent. Its reactions run on gRPC's threads; reports are
// sent from the report thread. No lock is held while calling into gRPC,
// whose reactions may run inline on the calling thread. A hold keeps OnDone
// back until no write can start any more: a report may race with the end.
class AgentStream final : public grpc::ClientBidiReactor<v1::AgentMessage, v1::ServerMessage> {
 public:
  static void open(LoadDriver& fleet, Agent& agent) {
    auto stream = std::shared_ptr<AgentStream>(new AgentStream(fleet, agent));
    stream->self_ = stream;
    agent.setStream(stream);
    stream->start(agent.hello());
  }

  bool up() const { return up_.load(std::memory_order_acquire); }
  void cancel() { context_.TryCancel(); }

  // Writes `message` now, or after the write in flight. False once the
  // stream is ending.
  bool send(v1::AgentMessage message) {
    {
      std::lock_guard lock(mutex_);
      if (ending_) return false;
      if (writing_) {
        queue_.push_back(std::move(message));
        return true;
      }
      writing_ = true;
      out_ = std::move(message);
      noteWrite();
    }
    StartWrite(&out_);
    return true;
  }

  size_t unacknowledged() {
    std::lock_guard lock(mutex_);
    return written_.size() + queue_.size();
  }

  void OnReadDone(bool ok) override {
    if (!ok) {
      end();
      return;
    }
    received(in_);
    in_.Clear();
    StartRead(&in_);
  }

  void OnWriteDone(bool ok) override {
    bool next = false;
    {
      std::lock_guard lock(mutex_);
      if (ok && !ending_ && !queue_.empty()) {
        out_ = std::move(queue_.front());
        queue_.pop_front();
        noteWrite();
        next = true;
      } else {
        writing_ = false;
        if (!ok) ending_ = true;
        if (!ending_ || holdReleased_) return;
        holdReleased_ = true;
      }
    }
    if (next) {
      StartWrite(&out_);
    } else {
      RemoveHold();
    }
  }

  void OnDone(const grpc::Status& status) override {
    std::shared_ptr<AgentStream> self = std::move(self_);
    fleet_.streamDone(agent_, this, up(), status);
  }

 private:
  AgentStream(LoadDriver& fleet, Agent& agent) : fleet_(fleet), agent_(agent) {}

  void start(v1::AgentMessage hello) {
    agent_.stub().async()->Connect(&context_, this);
    {
      std::lock_guard lock(mutex_);
      writing_ = true;
      out_ = std::move(hello);
    }
    StartWrite(&out_);
    StartRead(&in_);
    AddHold();
    StartCall();
  }

  // Under mutex_, just before StartWrite.
  void noteWrite() {
    if (out_.sequence() != 0) written_.emplace_back(out_.sequence(), SteadyClock::now());
  }

  // Reads are over: no write starts from now on.
  void end() {
    {
      std::lock_guard lock(mutex_);
      ending_ = true;
      if (writing_ || holdReleased_) return;
      holdReleased_ = true;
    }
    RemoveHold();
  }

  void received(const v1::ServerMessage& message) {
    const TimePoint now = SteadyClock::now();
    if (message.has_ack()) {
      const uint64_t sequence = message.ack().sequence();
      if (!up()) {
        // The answer to the hello: the last sequence the server has.
        agent_.adoptSequence(sequence);
        up_.store(true, std::memory_order_release);
        fleet_.streamUp(agent_);
        return;
      }
      std::vector<double> latencies;
      {
        std::lock_guard lock(mutex_);
        while (!written_.empty() && written_.front().first <= sequence) {
          latencies.push_back(millis(now - written_.front().second));
          written_.pop_front();
        }
      }
      for (double ms : latencies) fleet_.latency(ms);
    } else if (message.has_desired_state()) {
      agent_.desiredState(message.desired_state().version(), now);
    }
  }

  LoadDriver& fleet_;
  Agent& agent_;
  std::shared_ptr<AgentStream> self_;  // until OnDone
  grpc::ClientContext context_;
  v1::ServerMessage in_;
  std::atomic<bool> up_ = false;  // the server answered the hello

  std::mutex mutex_;
  std::deque<v1::AgentMessage> queue_;
  v1::AgentMessage out_;  // the write in flight
  bool writing_ = false;
  bool ending_ = false;
  bool holdReleased_ = false;
  // Reports written and not acknowledged, with when their write started.
  std::deque<std::pair<uint64_t, TimePoint>> written_;
};

std::shared_ptr<AgentStream> Agent::nextReport(v1::AgentMessage& report) {
  std::lock_guard lock(mutex_);
  if (stream_ == nullptr || !stream_->up()) return nullptr;
  report.set_sequence(++lastSequence_);
  auto* body = report.mutable_report();
  // A converge that found nothing to change, the usual report.
  body->set_desired_version(version_);
  body->set_result("ok");
  body->set_finished_at_us(wallMicros());
  body->set_duration_us(1800);
  return stream_;
}

}  // namespace

void LoadDriver::loadSequences() {
  std::error_code ignored;  // enrollInto() says what is wrong with the directory
  std::filesystem::create_directories(options_.stateDirectory, ignored);
  auto text =
      core::readFile(options_.stateDirectory + std::string(kSequencesFile), kMaxSequencesBytes);
  if (!text) return;  // a first run
  std::istringstream lines(*text);
  std::string name;
  uint64_t sequence = 0;
  while (lines >> name >> sequence) sequences_[name] = sequence;
  for (auto& agent : agents_) {
    if (auto it = sequences_.find(agent->name()); it != sequences_.end()) {
      agent->adoptSequence(it->second);
    }
  }
}

void LoadDriver::saveSequences() {
  for (const auto& agent : agents_) {
    if (const uint64_t sequence = agent->lastSequence(); sequence > 0) {
      sequences_[agent->name()] = sequence;
    }
  }
  std::string text;
  for (const auto& [name, sequence] : sequences_) {
    text += name + " " + std::to_string(sequence) + "\n";
  }
  const std::string path = options_.stateDirectory + std::string(kSequencesFile);
  if (core::Status s = core::writeFileAtomic(path, text, {.mode = 0644}); !s) {
    say("Failed to save the sequence numbers: %s; the next run's agents will count as "
        "reinstalled",
        s.message().c_str());
  }
}

void LoadDriver::start() {
  loadSequences();
  for (size_t i = 0; i < std::min(kEnrollThreads, std::max<size_t>(options_.agents, 1)); ++i) {
    threads_.emplace_back([this] { enrollLoop(); });
  }
  threads_.emplace_back([this] { connectLoop(); });
  threads_.emplace_back([this] { reportLoop(); });
}

void LoadDriver::enrollLoop() {
  for (;;) {
    const size_t index = nextToEnroll_.fetch_add(1);
    if (index >= agents_.size()) return;
    {
      std::lock_guard lock(mutex_);
      if (stopping_) return;
    }
    Agent& agent = *agents_[index];
    auto identity = enrollInto(options_.target, agent.name(),
                               options_.stateDirectory + "/" + agent.name(), /*reuse=*/true);
    if (!identity) {
      std::lock_guard lock(mutex_);
      lastError_ = "enroll " + agent.name() + ": " + identity.status().message();
      if (++enrollFailures_ <= kErrorsShown) say("Failed to %s", lastError_.c_str());
      continue;
    }
    agent.setChannel(*identity, options_.target.server);
    std::lock_guard lock(mutex_);
    if (++enrolled_ % kProgressEvery == 0 || enrolled_ == agents_.size()) {
      say("%zu of %zu agents enrolled", enrolled_, agents_.size());
    }
    toConnect_.emplace_back(index, SteadyClock::now());
    changed_.notify_all();
  }
}

void LoadDriver::connectLoop() {
  std::unique_lock lock(mutex_);
  for (;;) {
    changed_.wait(lock, [this] {
      return stopping_ || (!toConnect_.empty() && connecting_ < kMaxConnecting);
    });
    if (stopping_) return;
    const auto [index, notBefore] = toConnect_.front();
    if (notBefore > SteadyClock::now()) {
      changed_.wait_until(lock, notBefore);
      continue;
    }
    toConnect_.pop_front();
    ++connecting_;
    ++liveStreams_;
    lock.unlock();
    AgentStream::open(*this, *agents_[index]);
    lock.lock();
  }
}

void LoadDriver::reportLoop() {
  // Agent i reports at i/N of the interval, every interval: the load is even.
  const auto interval =
      std::chrono::duration_cast<std::chrono::nanoseconds>(options_.reportInterval);
  const auto count = static_cast<int64_t>(agents_.size());
  const TimePoint origin = SteadyClock::now();
  for (int64_t round = 0;; ++round) {
    for (int64_t i = 0; i < count; ++i) {
      const TimePoint due = origin + interval * round + interval * i / count;
      {
        std::unique_lock lock(mutex_);
        if (changed_.wait_until(lock, due, [this] { return stopping_; })) return;
      }
      v1::AgentMessage report;
      if (auto stream = agents_[static_cast<size_t>(i)]->nextReport(report)) {
        // A stream that is ending loses the report; the agent's spool would keep it.
        (void)stream->send(std::move(report));
      }
    }
  }
}

void LoadDriver::streamUp(Agent& agent) {
  std::lock_guard lock(mutex_);
  --connecting_;
  ++connected_;
  if (connected_ % kProgressEvery == 0 || connected_ == agents_.size()) {
    say("%zu of %zu agents connected (last %s)", connected_, agents_.size(), agent.name().c_str());
  }
  changed_.notify_all();
}

void LoadDriver::latency(double ms) {
  std::lock_guard lock(mutex_);
  latencies_.push_back(ms);
}

void LoadDriver::streamDone(Agent& agent, const AgentStream* stream, bool wasUp,
                            const grpc::Status& status) {
  const auto delay = agent.streamEnded(stream, wasUp);
  std::lock_guard lock(mutex_);
  --liveStreams_;
  if (wasUp) {
    --connected_;
  } else {
    --connecting_;
  }
  if (!stopping_) {
    const size_t ended = ++(wasUp ? disconnects_ : failedConnects_);
    lastError_ = agent.name() + ": " + describe(status);
    if (ended <= kErrorsShown || ended % kProgressEvery == 0) {
      say("%s of %s (%zu so far): %s", wasUp ? "Lost the stream" : "Failed to connect",
          agent.name().c_str(), ended, describe(status).c_str());
    }
    toConnect_.emplace_back(agent.index(), SteadyClock::now() + delay);
  }
  changed_.notify_all();
}

void LoadDriver::mark() {
  std::lock_guard lock(mutex_);
  mark_ = SteadyClock::now();
}

void LoadDriver::resetLatencies() {
  std::lock_guard lock(mutex_);
  latencies_.clear();
}

LoadStats LoadDriver::stats() const {
  LoadStats stats;
  std::vector<double> latencies;
  std::optional<TimePoint> mark;
  {
    std::lock_guard lock(mutex_);
    latencies = latencies_;
    mark = mark_;
    stats.enrolled = enrolled_;
    stats.connected = connected_;
    stats.enrollFailures = enrollFailures_;
    stats.failedConnects = failedConnects_;
    stats.disconnects = disconnects_;
    stats.lastError = lastError_;
  }
  std::sort(latencies.begin(), latencies.end());
  stats.reports = latencies.size();
  if (!latencies.empty()) {
    stats.p50Ms = percentile(latencies, 0.50);
    stats.p99Ms = percentile(latencies, 0.99);
  }
  int64_t lastPush = 0;
  for (const auto& agent : agents_) {
    if (auto stream = agent->stream()) stats.unacknowledged += stream->unacknowledged();
    if (mark && agent->lastPushNanos() >= steadyNanos(*mark)) {
      ++stats.pushedSinceMark;
      lastPush = std::max(lastPush, agent->lastPushNanos());
    }
  }
  if (mark && !agents_.empty() && stats.pushedSinceMark == agents_.size()) {
    stats.pushAllSeconds = static_cast<double>(lastPush - steadyNanos(*mark)) / 1e9;
  }
  return stats;
}

bool LoadDriver::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  changed_.notify_all();
  for (auto& thread : threads_) thread.join();
  threads_.clear();
  for (const auto& agent : agents_) {
    if (auto stream = agent->stream()) stream->cancel();
  }
  std::unique_lock lock(mutex_);
  if (!changed_.wait_for(lock, kStopTimeout, [this] { return liveStreams_ == 0; })) return false;
  lock.unlock();
  saveSequences();
  return true;
}

SimulatedFleet::SimulatedFleet(LoadOptions options)
    : driver_(std::make_unique<LoadDriver>(std::move(options))) {}

SimulatedFleet::~SimulatedFleet() = default;

void SimulatedFleet::start() { driver_->start(); }
void SimulatedFleet::mark() { driver_->mark(); }
void SimulatedFleet::resetLatencies() { driver_->resetLatencies(); }
LoadStats SimulatedFleet::stats() const { return driver_->stats(); }
bool SimulatedFleet::stop() { return driver_->stop(); }

}  // namespace nodewarden::fleetsim
