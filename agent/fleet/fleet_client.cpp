#include "agent/fleet/fleet_client.h"

#include <grpcpp/grpcpp.h>
#include <sys/stat.h>

#include <cerrno>
#include <condition_variable>
#include <random>

#include "agent/core/log.h"
#include "agent/fleet/reports.h"
#include "nodewarden/v1/control.grpc.pb.h"

namespace nodewarden::fleet {

namespace {

const auto kLog = core::log::category("fleet");

constexpr auto kFirstRetry = std::chrono::seconds(1);
constexpr auto kMaxRetry = std::chrono::seconds(60);
// A server that refuses this node will not change its mind soon.
constexpr auto kMaxRetryRefused = std::chrono::minutes(5);
// A stream that lasted this long starts the backoff over.
constexpr auto kStableAfter = std::chrono::seconds(60);
// Spooled messages read at a time; more follow as these are written.
constexpr size_t kPendingBatch = 64;

}  // namespace

// The stream's gRPC side. Its reactions run on gRPC's threads and only post
// to the loop; the loop thread starts every write, one at a time. Deleted on
// the loop thread, once OnDone has run.
class FleetClient::Stream final
    : public grpc::ClientBidiReactor<v1::AgentMessage, v1::ServerMessage> {
 public:
  Stream(std::function<void(std::function<void(FleetClient&)>)> post,
         std::shared_ptr<grpc::Channel> channel)
      : post_(std::move(post)), stub_(v1::Node::NewStub(std::move(channel))) {
    stub_->async()->Connect(&context_, this);
    StartRead(&in_);
    StartCall();
  }

  ~Stream() override {
    context_.TryCancel();
    std::unique_lock lock(mutex_);
    done_cv_.wait(lock, [this] { return done_; });
  }

  void write(v1::AgentMessage message) {
    out_ = std::move(message);
    StartWrite(&out_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) return;  // OnDone follows with the reason
    post_([message = std::move(in_)](FleetClient& client) mutable {
      client.received(std::move(message));
    });
    in_.Clear();
    StartRead(&in_);
  }

  void OnWriteDone(bool ok) override {
    if (!ok) return;
    post_([](FleetClient& client) {
      client.writing_ = false;
      client.writeNext();
    });
  }

  void OnDone(const grpc::Status& status) override {
    const bool refused = status.error_code() == grpc::StatusCode::PERMISSION_DENIED ||
                         status.error_code() == grpc::StatusCode::UNAUTHENTICATED;
    std::string error = status.ok() ? "the server closed the stream" : status.error_message();
    auto post = post_;
    {
      std::lock_guard lock(mutex_);
      done_ = true;
      done_cv_.notify_all();
    }
    // `this` may be gone from here on.
    post([error = std::move(error), refused](FleetClient& client) {
      client.streamEnded(error, refused);
    });
  }

 private:
  std::function<void(std::function<void(FleetClient&)>)> post_;
  std::unique_ptr<v1::Node::Stub> stub_;
  grpc::ClientContext context_;
  v1::ServerMessage in_;
  v1::AgentMessage out_;
  std::mutex mutex_;
  std::condition_variable done_cv_;
  bool done_ = false;
};

FleetClient::FleetClient(core::Loop& loop, core::Clock& clock, FleetConfig config,
                         std::string stateDirectory, Spool spool, FleetListener& listener)
    : loop_(loop),
      clock_(clock),
      config_(std::move(config)),
      files_(identityFiles(stateDirectory)),
      spool_(std::move(spool)),
      listener_(listener),
      usage_(FactsSources{.labels = config_.labels}) {
  retryTimer_ = clock_.createTimer([this] {
    if (!identity_) {
      enrollInBackground();
    } else {
      connect();
    }
  });
  usageTimer_ = clock_.createTimer([this] { sampleUsage(); });
}

FleetClient::~FleetClient() {
  *alive_ = false;
  stream_.reset();
  if (enrolling_.joinable()) enrolling_.join();
}

void FleetClient::start() {
  const std::string pkiDirectory = files_.key.substr(0, files_.key.rfind('/'));
  if (mkdir(pkiDirectory.c_str(), 0700) != 0 && errno != EEXIST) {
    NW_LOG(kLog, err, "Failed to create {}: {}", pkiDirectory, std::strerror(errno));
  }
  auto identity = readIdentity(files_);
  if (identity) {
    identity_ = std::move(*identity);
    connect();
  } else if (identity.status().code() == core::Status::Code::kNotFound) {
    enrollInBackground();
  } else {
    // Half an identity (a crash mid-enrollment, a hand-edited file): the
    // key stays, the enrollment runs again.
    NW_LOG(kLog, warn, "The node's identity in {} is not usable ({}); enrolling again",
           pkiDirectory, identity.status().message());
    enrollInBackground();
  }
  usageTimer_->armIn(std::chrono::seconds(5));
}

void FleetClient::enrollInBackground() {
  if (config_.bootstrapToken.empty()) {
    status_ = "not enrolled: agent.yaml names no bootstrapToken";
    NW_LOG(kLog, err, "Cannot enroll with {}: agent.yaml gives no bootstrapToken", config_.server);
    return;
  }
  if (enrolling_.joinable()) enrolling_.join();
  status_ = "enrolling with " + config_.server;
  NW_LOG(kLog, info, "Enrolling as {} with {}", config_.nodeName, config_.server);
  EnrollOptions options{config_.server, config_.bootstrapToken, config_.caCertHash,
                        config_.nodeName, config_.labels};
  enrolling_ = std::thread([this, options, files = files_, alive = alive_] {
    auto identity = enroll(options, files);
    loop_.post([this, alive, identity = std::move(identity)]() mutable {
      if (*alive) enrolled(std::move(identity));
    });
  });
}

void FleetClient::enrolled(core::Result<Identity> identity) {
  if (!identity) {
    NW_LOG(kLog, err, "Failed to enroll: {}", identity.status().message());
    retryLater("not enrolled: " + identity.status().message());
    return;
  }
  NW_LOG(kLog, info, "Enrolled as {} with {}", config_.nodeName, config_.server);
  identity_ = std::move(*identity);
  failures_ = 0;
  connect();
}

void FleetClient::connect() {
  auto channel = nodeChannel(config_.server, *identity_);

  status_ = "connecting to " + config_.server;
  auto post = [&loop = loop_, this, alive = alive_](std::function<void(FleetClient&)> work) {
    loop.post([this, alive, work = std::move(work)] {
      if (*alive) work(*this);
    });
  };
  stream_ = std::make_unique<Stream>(post, std::move(channel));
  streamUp_ = false;
  written_ = 0;
  streamStarted_ = clock_.now();

  v1::AgentMessage hello;
  FactsSources sources{.labels = config_.labels};
  *hello.mutable_hello()->mutable_facts() = collectFacts(sources);
  hello.mutable_hello()->set_desired_version(listener_.enforcedVersion());
  hello.mutable_hello()->set_last_sequence(spool_.lastSequence());
  writing_ = true;
  stream_->write(std::move(hello));
}

void FleetClient::received(v1::ServerMessage message) {
  if (!streamUp_) {
    streamUp_ = true;
    status_ = "connected to " + config_.server;
    NW_LOG(kLog, info, "Connected to {}", config_.server);
  }
  switch (message.body_case()) {
    case v1::ServerMessage::kAck:
      if (core::Status s = spool_.acknowledge(message.ack().sequence()); !s) {
        NW_LOG(kLog, warn, "Server acknowledged {}: {}, ignoring", message.ack().sequence(),
               s.message());
      }
      break;
    case v1::ServerMessage::kDesiredState: {
      const auto& desired = message.desired_state();
      NW_LOG(kLog, info, "Received desired state {}", desired.version());
      const std::string error = listener_.desiredState(desired.version(), desired.document());
      if (!error.empty()) {
        report(convergeReport(desired.version(), "rejected", error, nullptr, clock_));
      }
      break;
    }
    case v1::ServerMessage::kCommand:
      if (message.command().has_converge_now()) {
        listener_.convergeNow(message.command().converge_now().reason().empty()
                                  ? "asked by the server"
                                  : message.command().converge_now().reason());
      }
      break;
    case v1::ServerMessage::BODY_NOT_SET:
      break;
  }
  writeNext();
}

void FleetClient::report(v1::AgentMessage message) {
  if (auto sequence = spool_.append(std::move(message)); !sequence) {
    NW_LOG(kLog, err, "Failed to spool a report: {}", sequence.status().message());
    return;
  }
  writeNext();
}

void FleetClient::writeNext() {
  if (stream_ == nullptr || !streamUp_ || writing_) return;
  for (auto& message : spool_.pending(kPendingBatch)) {
    if (message.sequence() <= written_) continue;
    written_ = message.sequence();
    writing_ = true;
    stream_->write(std::move(message));
    return;
  }
}

void FleetClient::streamEnded(const std::string& error, bool refused) {
  const bool wasUp = streamUp_;
  const bool stable = wasUp && clock_.now() - streamStarted_ >= kStableAfter;
  stream_.reset();
  streamUp_ = false;
  writing_ = false;
  if (stable) failures_ = 0;
  if (refused) {
    NW_LOG(kLog, err, "The server refused this node: {}", error);
    retryLater("refused by " + config_.server + ": " + error);
    return;
  }
  if (wasUp) NW_LOG(kLog, warn, "Lost the stream to {}: {}", config_.server, error);
  retryLater("server unreachable: " + error);
}

void FleetClient::retryLater(const std::string& why) {
  status_ = why;
  const bool refused = why.starts_with("refused") || why.starts_with("not enrolled");
  const auto cap = refused ? core::Duration(kMaxRetryRefused) : core::Duration(kMaxRetry);
  core::Duration delay = kFirstRetry * (1 << std::min(failures_, 16));
  delay = std::min(delay, cap);
  ++failures_;
  // Up to a fifth off, so a fleet that lost the server together does not
  // come back in one wave.
  static thread_local std::mt19937 random{std::random_device{}()};
  const double jitter = std::uniform_real_distribution<double>(0.8, 1.0)(random);
  delay = std::chrono::duration_cast<core::Duration>(delay * jitter);
  NW_LOG(kLog, info, "Retrying in {} ms",
         std::chrono::duration_cast<std::chrono::milliseconds>(delay).count());
  retryTimer_->armIn(delay);
}

void FleetClient::sampleUsage() {
  v1::AgentMessage message;
  *message.mutable_usage() = usage_.sample(clock_.wallNow());
  report(std::move(message));
  usageTimer_->armIn(config_.usageInterval);
}

}  // namespace nodewarden::fleet
