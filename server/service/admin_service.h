#pragma once

#include <grpcpp/grpcpp.h>

#include "nodewarden/v1/control.grpc.pb.h"
#include "server/service/desired_states.h"
#include "server/service/node_service.h"
#include "server/store/store.h"

namespace nodewarden::server {

// What `nodewarden-server token|state|nodes|alerts` ask for. Served only on
// the root-only Unix socket: whoever can connect is root.
class AdminService final : public v1::Admin::Service {
 public:
  AdminService(Store& store, DesiredStates& states, NodeRegistry& registry)
      : store_(store), states_(states), registry_(registry) {}

  grpc::Status CreateToken(grpc::ServerContext*, const v1::CreateTokenRequest* request,
                           v1::TokenInfo* response) override;
  grpc::Status ListTokens(grpc::ServerContext*, const v1::ListTokensRequest*,
                          v1::ListTokensResponse* response) override;
  grpc::Status SetState(grpc::ServerContext*, const v1::SetStateRequest* request,
                        v1::SetStateResponse* response) override;
  grpc::Status GetState(grpc::ServerContext*, const v1::GetStateRequest* request,
                        v1::GetStateResponse* response) override;
  grpc::Status ListNodes(grpc::ServerContext*, const v1::ListNodesRequest*,
                         v1::ListNodesResponse* response) override;
  grpc::Status GetNode(grpc::ServerContext*, const v1::GetNodeRequest* request,
                       v1::NodeInfo* response) override;
  grpc::Status RevokeNode(grpc::ServerContext*, const v1::RevokeNodeRequest* request,
                          v1::RevokeNodeResponse*) override;
  grpc::Status ListAlerts(grpc::ServerContext*, const v1::ListAlertsRequest* request,
                          v1::ListAlertsResponse* response) override;

 private:
  v1::NodeInfo describe(const NodeRecord& record) const;

  Store& store_;
  DesiredStates& states_;
  NodeRegistry& registry_;
};

}  // namespace nodewarden::server
