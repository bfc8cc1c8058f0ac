#include "server/service/node_service.h"

#include <deque>

#include "agent/core/log.h"
#include "agent/pki/certificate.h"

namespace nodewarden::server {

namespace {

const auto kLog = core::log::category("nodes");

using Clock = std::chrono::system_clock;

grpc::Status storeFailed(const core::Status& status) {
  NW_LOG(kLog, err, "Store failed: {}", status.message());
  return grpc::Status(grpc::StatusCode::UNAVAILABLE, "the server's store failed; try again");
}

}  // namespace

grpc::Status authenticateNode(const grpc::AuthContext& auth, Store& store, std::string& name) {
  const auto pem = auth.FindPropertyValues("x509_pem_cert");
  if (pem.empty()) {
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                        "no client certificate: a node enrolls first, then connects with the "
                        "certificate it was given");
  }
  auto certificate =
      pki::Certificate::fromPem(std::string_view(pem.front().data(), pem.front().size()));
  if (!certificate) {
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                        "unreadable client certificate: " + certificate.status().message());
  }
  const std::string commonName = certificate->commonName();
  auto record = store.node(commonName);
  if (!record) return storeFailed(record.status());
  if (!*record) {
    return grpc::Status(
        grpc::StatusCode::PERMISSION_DENIED,
        "node " + commonName + " is not enrolled (it was deleted); enroll it again");
  }
  if ((*record)->revoked) {
    return grpc::Status(grpc::StatusCode::PERMISSION_DENIED, "node " + commonName + " was revoked");
  }
  if ((*record)->certificateSerial != certificate->serialHex()) {
    return grpc::Status(grpc::StatusCode::PERMISSION_DENIED,
                        "this certificate of node " + commonName +
                            " was replaced by a newer one; use the newer one");
  }
  name = commonName;
  return grpc::Status::OK;
}

grpc::Status storeNodeMessage(Store& store, const std::string& name,
                              const v1::AgentMessage& message, Time now) {
  if (message.sequence() == 0) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        "a report, health update, usage or drop count has a sequence number");
  }
  core::Result<bool> stored = false;
  switch (message.body_case()) {
    case v1::AgentMessage::kReport: {
      const auto& report = message.report();
      stored = store.recordReport(name, message.sequence(), report.SerializeAsString(),
                                  report.desired_version(), report.result(), now);
      break;
    }
    case v1::AgentMessage::kHealth: {
      v1::HealthUpdate conditions;
      *conditions.mutable_conditions() = message.health().conditions();
      std::vector<std::pair<Time, std::string>> events;
      for (const auto& event : message.health().events()) {
        // A time the clock cannot hold (a broken or hostile node) is now.
        constexpr int64_t kMaxMicros = INT64_MAX / 1000;
        const bool representable = event.time_us() > -kMaxMicros && event.time_us() < kMaxMicros;
        events.emplace_back(representable ? Time(std::chrono::microseconds(event.time_us())) : now,
                            event.SerializeAsString());
      }
      stored =
          store.recordHealth(name, message.sequence(), conditions.SerializeAsString(), events, now);
      break;
    }
    case v1::AgentMessage::kUsage:
      stored =
          store.recordUsage(name, message.sequence(), message.usage().SerializeAsString(), now);
      break;
    case v1::AgentMessage::kDropped:
      stored = store.recordDropped(name, message.sequence(), message.dropped().count(), now);
      if (stored && *stored) {
        NW_LOG(kLog, warn, "Node {} dropped {} reports from its full spool", name,
               message.dropped().count());
      }
      break;
    case v1::AgentMessage::kHello:
      return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, "a stream has one hello");
    case v1::AgentMessage::BODY_NOT_SET:
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "an empty message");
  }
  if (!stored) return storeFailed(stored.status());
  return grpc::Status::OK;
}

// One node's stream. gRPC calls the On* methods on its own threads, one at a
// time for reads and one at a time for writes; send() and close() come from
// any thread (the admin service pushing a state, a newer stream replacing
// this one). No lock is held while calling into gRPC, whose reactions may run
// inline on the calling thread. The stream owns itself until OnDone; the
// registry holds it weakly, so a send racing with the end finds it alive.
class NodeStream final : public grpc::ServerBidiReactor<v1::AgentMessage, v1::ServerMessage> {
 public:
  static NodeStream* start(grpc::CallbackServerContext* context, Store& store,
                           DesiredStates& states, NodeRegistry& registry) {
    auto stream = std::shared_ptr<NodeStream>(new NodeStream(store, states, registry));
    stream->self_ = stream;
    grpc::Status status = authenticateNode(*context->auth_context(), store, stream->name_);
    if (!status.ok()) {
      NW_LOG(kLog, info, "Refused a stream from {}: {}", context->peer(), status.error_message());
      stream->close(status);
    } else {
      stream->StartRead(&stream->in_);
    }
    return stream.get();
  }

  void send(v1::ServerMessage message) {
    {
      std::lock_guard lock(mutex_);
      if (finishing_) return;
      queue_.push_back(std::move(message));
      if (writing_) return;
      writing_ = true;
      out_ = std::move(queue_.front());
      queue_.pop_front();
    }
    StartWrite(&out_);
  }

  // Ends the stream once the write in flight, if any, is done.
  void close(const grpc::Status& status) {
    {
      std::lock_guard lock(mutex_);
      if (finishing_) return;
      finishing_ = true;
      queue_.clear();
      if (writing_) {
        finishStatus_ = status;
        return;
      }
    }
    Finish(status);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {
      // The node closed its side, or the connection broke.
      close(grpc::Status::OK);
      return;
    }
    grpc::Status status = handle(in_);
    if (!status.ok()) {
      close(status);
      return;
    }
    StartRead(&in_);
  }

  void OnWriteDone(bool ok) override {
    std::optional<grpc::Status> finish;
    {
      std::lock_guard lock(mutex_);
      if (ok && !finishing_ && !queue_.empty()) {
        out_ = std::move(queue_.front());
        queue_.pop_front();
      } else {
        writing_ = false;
        if (finishing_) finish = std::move(finishStatus_);
        finishStatus_.reset();
        if (!finish) return;
      }
    }
    if (finish) {
      Finish(*finish);
    } else {
      StartWrite(&out_);
    }
  }

  void OnDone() override {
    std::shared_ptr<NodeStream> self = std::move(self_);
    if (registered_) {
      registry_.remove(name_, this);
      NW_LOG(kLog, info, "Node {} disconnected", name_);
    }
  }

 private:
  NodeStream(Store& store, DesiredStates& states, NodeRegistry& registry)
      : store_(store), states_(states), registry_(registry) {}

  void ack(uint64_t sequence) {
    v1::ServerMessage message;
    message.mutable_ack()->set_sequence(sequence);
    send(std::move(message));
  }

  grpc::Status handle(const v1::AgentMessage& message) {
    const auto now = Clock::now();
    if (!helloSeen_) {
      if (!message.has_hello()) {
        return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                            "the first message on a stream is a hello");
      }
      return hello(message.hello(), now);
    }
    if (message.has_hello()) {
      return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, "a stream has one hello");
    }
    grpc::Status status = storeNodeMessage(store_, name_, message, now);
    if (!status.ok()) return status;
    // Acknowledged whether new or a resent duplicate: either way it is stored.
    ack(message.sequence());
    return grpc::Status::OK;
  }

  grpc::Status hello(const v1::Hello& hello, Clock::time_point now) {
    auto record = store_.node(name_);
    if (!record) return storeFailed(record.status());
    if (!*record) {
      return grpc::Status(grpc::StatusCode::PERMISSION_DENIED,
                          "node " + name_ + " is not enrolled");
    }
    group_ = (*record)->group;
    if (core::Status s = store_.recordHello(name_, hello.facts().SerializeAsString(), now); !s) {
      return storeFailed(s);
    }
    helloSeen_ = true;
    registry_.add(name_, group_, self_);
    registered_ = true;
    NW_LOG(kLog, info, "Node {} ({}) connected; it enforces {}", name_, group_,
           hello.desired_version().empty() ? "no state" : hello.desired_version());

    uint64_t applied = (*record)->lastSequence;
    if (hello.last_sequence() < applied) {
      // The node numbers from a lower point than the server has seen: it lost
      // its spool (a reinstalled machine). Its new messages count.
      NW_LOG(kLog, warn, "Node {} starts its messages over at {} (had sent {}); accepting them",
             name_, hello.last_sequence(), applied);
      if (core::Status s = store_.restartSequence(name_, hello.last_sequence()); !s) {
        return storeFailed(s);
      }
      applied = hello.last_sequence();
    }
    // What the server already holds, so the node drops it from its spool.
    ack(applied);
    if (auto desired = states_.forNode(name_, group_);
        desired && desired->version() != hello.desired_version()) {
      if (core::Status s = store_.setDesiredVersion(name_, desired->version()); !s) {
        return storeFailed(s);
      }
      v1::ServerMessage message;
      *message.mutable_desired_state() = std::move(*desired);
      send(std::move(message));
    }
    return grpc::Status::OK;
  }

  Store& store_;
  DesiredStates& states_;
  NodeRegistry& registry_;
  std::shared_ptr<NodeStream> self_;  // until OnDone
  std::string name_;
  std::string group_;
  bool helloSeen_ = false;  // reads are serial: no lock
  bool registered_ = false;
  v1::AgentMessage in_;

  std::mutex mutex_;
  std::deque<v1::ServerMessage> queue_;
  v1::ServerMessage out_;  // the write in flight
  bool writing_ = false;
  bool finishing_ = false;
  std::optional<grpc::Status> finishStatus_;  // to finish with once the write is done
};

grpc::ServerBidiReactor<v1::AgentMessage, v1::ServerMessage>* NodeService::Connect(
    grpc::CallbackServerContext* context) {
  return NodeStream::start(context, store_, states_, registry_);
}

grpc::ServerUnaryReactor* NodeService::GetDesiredState(grpc::CallbackServerContext* context,
                                                       const v1::DesiredStateRequest* request,
                                                       v1::DesiredState* response) {
  auto* reactor = context->DefaultReactor();
  std::string name;
  grpc::Status status = authenticateNode(*context->auth_context(), store_, name);
  if (status.ok() && request->node_name() != name) {
    status = grpc::Status(grpc::StatusCode::PERMISSION_DENIED,
                          "node " + name + " may read only its own desired state, not " +
                              request->node_name() + "'s");
  }
  if (status.ok()) {
    auto record = store_.node(name);
    if (!record) {
      status = storeFailed(record.status());
    } else if (auto desired = states_.forNode(name, (*record)->group)) {
      *response = std::move(*desired);
    } else {
      status =
          grpc::Status(grpc::StatusCode::NOT_FOUND, "no desired state for node " + name +
                                                        " (group " + (*record)->group + ") yet");
    }
  }
  reactor->Finish(status);
  return reactor;
}

void NodeRegistry::add(const std::string& name, const std::string& group,
                       std::weak_ptr<NodeStream> stream) {
  std::shared_ptr<NodeStream> replaced;
  {
    std::lock_guard lock(mutex_);
    auto [it, inserted] = streams_.try_emplace(name, Connected{group, stream});
    if (!inserted) {
      replaced = it->second.stream.lock();
      it->second = Connected{group, std::move(stream)};
    }
  }
  // Outside the lock: gRPC may end the old stream inline, and its remove()
  // then finds the newer one and leaves it.
  if (replaced) {
    replaced->close(grpc::Status(grpc::StatusCode::ABORTED, "replaced by a newer connection"));
  }
}

void NodeRegistry::remove(const std::string& name, const NodeStream* stream) {
  std::lock_guard lock(mutex_);
  if (auto it = streams_.find(name); it != streams_.end()) {
    auto current = it->second.stream.lock();
    if (current == nullptr || current.get() == stream) streams_.erase(it);
  }
}

bool NodeRegistry::connected(const std::string& name) const {
  std::lock_guard lock(mutex_);
  return streams_.contains(name);
}

size_t NodeRegistry::size() const {
  std::lock_guard lock(mutex_);
  return streams_.size();
}

size_t NodeRegistry::sendToGroup(
    const std::string& group,
    const std::function<std::optional<v1::ServerMessage>(const std::string&, const std::string&)>&
        message) {
  std::vector<std::tuple<std::string, std::string, std::shared_ptr<NodeStream>>> targets;
  {
    std::lock_guard lock(mutex_);
    for (const auto& [name, connected] : streams_) {
      if (!group.empty() && connected.group != group) continue;
      if (auto stream = connected.stream.lock())
        targets.emplace_back(name, connected.group, stream);
    }
  }
  size_t sent = 0;
  for (auto& [name, nodeGroup, stream] : targets) {
    if (auto out = message(name, nodeGroup)) {
      stream->send(std::move(*out));
      ++sent;
    }
  }
  return sent;
}

void NodeRegistry::close(const std::string& name, const grpc::Status& status) {
  std::shared_ptr<NodeStream> stream;
  {
    std::lock_guard lock(mutex_);
    if (auto it = streams_.find(name); it != streams_.end()) stream = it->second.stream.lock();
  }
  if (stream) stream->close(status);
}

}  // namespace nodewarden::server
