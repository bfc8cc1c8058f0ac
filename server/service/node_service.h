#pragma once

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "nodewarden/v1/control.grpc.pb.h"
#include "server/service/desired_states.h"
#include "server/store/store.h"

namespace nodewarden::server {

class NodeStream;

// The nodes connected right now, one stream each. Thread-safe.
class NodeRegistry final {
 public:
  // Registers `stream` as node `name`'s; an older stream of the same node is
  // closed ("replaced by a newer connection").
  void add(const std::string& name, const std::string& group, std::weak_ptr<NodeStream> stream);
  void remove(const std::string& name, const NodeStream* stream);
  bool connected(const std::string& name) const;
  size_t size() const;

  // Sends each connected node of `group` (every node when empty) what
  // `message` returns for it; returns how many were sent something.
  size_t sendToGroup(const std::string& group,
                     const std::function<std::optional<v1::ServerMessage>(
                         const std::string& node, const std::string& group)>& message);
  // Closes node `name`'s stream with `status`, if it is connected.
  void close(const std::string& name, const grpc::Status& status);

 private:
  struct Connected {
    std::string group;
    std::weak_ptr<NodeStream> stream;
  };
  mutable std::mutex mutex_;
  std::map<std::string, Connected> streams_;
};

// The Node service: one bidirectional stream per node, mTLS only.
class NodeService final : public v1::Node::CallbackService {
 public:
  NodeService(Store& store, DesiredStates& states, NodeRegistry& registry)
      : store_(store), states_(states), registry_(registry) {}

  grpc::ServerBidiReactor<v1::AgentMessage, v1::ServerMessage>* Connect(
      grpc::CallbackServerContext* context) override;
  grpc::ServerUnaryReactor* GetDesiredState(grpc::CallbackServerContext* context,
                                            const v1::DesiredStateRequest* request,
                                            v1::DesiredState* response) override;

 private:
  Store& store_;
  DesiredStates& states_;
  NodeRegistry& registry_;
};

// Stores one numbered message from node `name` (a report, health update,
// usage sample or drop count) unless the store has it already. OK means it
// is stored and may be acknowledged; otherwise the status ends the stream.
grpc::Status storeNodeMessage(Store& store, const std::string& name,
                              const v1::AgentMessage& message, Time now);

// The node a peer's certificate names, once the certificate is still the one
// the server issued it: the common name when the server still honours the
// serial, otherwise the reason it is refused.
grpc::Status authenticateNode(const grpc::AuthContext& auth, Store& store, std::string& name);

}  // namespace nodewarden::server
