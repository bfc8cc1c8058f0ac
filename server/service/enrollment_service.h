#pragma once

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <string>

#include "agent/pki/authority.h"
#include "agent/pki/bootstrap_token.h"
#include "nodewarden/v1/control.grpc.pb.h"
#include "server/store/store.h"

namespace nodewarden::server {

// Node names are DNS names, lower case, of at most 64 characters (the most
// a certificate's common name holds).
bool validNodeName(std::string_view name);

using pki::BootstrapToken;
using pki::parseBootstrapToken;

// Enrollment: the cluster's CA signed with a bootstrap token, and a node
// certificate for a CSR and a valid token. Reached without a client
// certificate; the token is the credential.
class EnrollmentService final : public v1::Enrollment::Service {
 public:
  EnrollmentService(Store& store, const pki::Authority& authority,
                    std::chrono::seconds certificateValidity)
      : store_(store), authority_(authority), certificateValidity_(certificateValidity) {}

  grpc::Status GetClusterInfo(grpc::ServerContext* context, const v1::ClusterInfoRequest* request,
                              v1::ClusterInfo* response) override;
  grpc::Status Enroll(grpc::ServerContext* context, const v1::EnrollRequest* request,
                      v1::EnrollResponse* response) override;

 private:
  Store& store_;
  const pki::Authority& authority_;
  std::chrono::seconds certificateValidity_;
};

}  // namespace nodewarden::server
