#include "server/service/enrollment_service.h"

#include <regex>

#include "agent/core/log.h"
#include "agent/pki/certificate.h"
#include "agent/pki/digest.h"

namespace nodewarden::server {

namespace {

const auto kLog = core::log::category("enrollment");

grpc::Status refused(const std::string& message) {
  return grpc::Status(grpc::StatusCode::PERMISSION_DENIED, message);
}

grpc::Status fromStore(const core::Status& status) {
  switch (status.code()) {
    case core::Status::Code::kNotFound:
    case core::Status::Code::kFailedPrecondition:
      return refused(status.message());
    case core::Status::Code::kInvalidArgument:
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, status.message());
    default:
      NW_LOG(kLog, err, "Store failed: {}", status.message());
      return grpc::Status(grpc::StatusCode::UNAVAILABLE, "the server's store failed; try again");
  }
}

}  // namespace

bool validNodeName(std::string_view name) {
  constexpr size_t kMaxNodeName = 64;
  static const std::regex kName("[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*");
  return !name.empty() && name.size() <= kMaxNodeName &&
         std::regex_match(name.begin(), name.end(), kName);
}

grpc::Status EnrollmentService::GetClusterInfo(grpc::ServerContext*,
                                               const v1::ClusterInfoRequest* request,
                                               v1::ClusterInfo* response) {
  auto token = store_.token(request->token_id());
  if (!token) return fromStore(token.status());
  if (!*token || (*token)->expires <= std::chrono::system_clock::now()) {
    // The same answer for unknown and expired: the id alone proves nothing.
    return refused("no valid bootstrap token with id " + request->token_id());
  }
  const std::string ca = authority_.certificate().toPem();
  response->set_ca_certificate(ca);
  response->set_signature(pki::hmacSha256Hex((*token)->id + "." + (*token)->secret, ca));
  return grpc::Status::OK;
}

grpc::Status EnrollmentService::Enroll(grpc::ServerContext* context,
                                       const v1::EnrollRequest* request,
                                       v1::EnrollResponse* response) {
  const auto now = std::chrono::system_clock::now();
  auto parsed = parseBootstrapToken(request->token());
  if (!parsed) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        "a bootstrap token looks like abcdef.0123456789abcdef");
  }
  if (!validNodeName(request->node_name())) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        "node name \"" + request->node_name() +
                            "\" is not valid: at most 64 lower-case letters, digits, '-' and '.'");
  }
  auto token = store_.token(parsed->id);
  if (!token) return fromStore(token.status());
  if (!*token || !pki::equalConstantTime((*token)->secret, parsed->secret)) {
    NW_LOG(kLog, warn, "Refused to enroll {} from {}: unknown bootstrap token {}",
           request->node_name(), context->peer(), parsed->id);
    return refused("unknown bootstrap token " + parsed->id);
  }
  auto certificatePem = authority_.signNodeCertificate(request->csr(), request->node_name(), now,
                                                       certificateValidity_);
  if (!certificatePem) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, certificatePem.status().message());
  }
  auto certificate = pki::Certificate::fromPem(*certificatePem);
  if (!certificate) {
    return grpc::Status(grpc::StatusCode::INTERNAL, certificate.status().message());
  }
  Enrollment enrollment{parsed->id,
                        request->node_name(),
                        certificate->serialHex(),
                        certificate->notAfter(),
                        Labels(request->labels().begin(), request->labels().end()),
                        certificate->publicKeyPin()};
  auto node = store_.enroll(enrollment, now);
  if (!node) {
    NW_LOG(kLog, warn, "Refused to enroll {} from {}: {}", request->node_name(), context->peer(),
           node.status().message());
    return fromStore(node.status());
  }
  NW_LOG(kLog, info, "Enrolled node {} in group {} with token {}", node->name, node->group,
         parsed->id);
  response->set_certificate(*certificatePem);
  response->set_group(node->group);
  return grpc::Status::OK;
}

}  // namespace nodewarden::server
