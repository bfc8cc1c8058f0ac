#include "agent/fleet/enroller.h"

#include <grpcpp/grpcpp.h>
#include <grpcpp/security/tls_credentials_options.h>

#include "agent/core/atomic_file.h"
#include "agent/fleet/keepalive.h"
#include "agent/pki/certificate.h"
#include "agent/pki/csr.h"
#include "agent/pki/digest.h"
#include "agent/pki/key.h"
#include "agent/pki/key_file.h"
#include "nodewarden/v1/control.grpc.pb.h"

namespace nodewarden::fleet {

namespace {

constexpr auto kCallTimeout = std::chrono::seconds(15);
constexpr size_t kMaxPemBytes = 1 << 20;

std::string describe(const grpc::Status& status) {
  if (status.error_code() == grpc::StatusCode::UNAVAILABLE) {
    return "the server does not answer (" + status.error_message() + ")";
  }
  return status.error_message();
}

std::unique_ptr<grpc::ClientContext> callContext() {
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(std::chrono::system_clock::now() + kCallTimeout);
  return context;
}

}  // namespace

IdentityFiles identityFiles(const std::string& stateDirectory) {
  const std::string dir = stateDirectory + "/pki";
  return {dir + "/node.key", dir + "/node.crt", dir + "/ca.crt"};
}

std::shared_ptr<grpc::Channel> nodeChannel(const std::string& server, const Identity& identity) {
  grpc::SslCredentialsOptions tls;
  tls.pem_root_certs = identity.ca;
  tls.pem_private_key = identity.key;
  tls.pem_cert_chain = identity.certificate;
  grpc::ChannelArguments arguments;
  arguments.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, keepalive::kPingInterval.count());
  arguments.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, keepalive::kPingTimeout.count());
  arguments.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  arguments.SetInt(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
  arguments.SetInt(GRPC_ARG_ENABLE_RETRIES, 0);
  // A channel of its own, not a connection gRPC finds alike and shares: one
  // node, one connection.
  arguments.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  return grpc::CreateCustomChannel(server, grpc::SslCredentials(tls), arguments);
}

core::Result<Identity> readIdentity(const IdentityFiles& files) {
  auto key = pki::readPrivateKey(files.key);
  if (!key) return key.status();
  auto certificate = core::readFile(files.certificate, kMaxPemBytes);
  if (!certificate) return certificate.status();
  auto ca = core::readFile(files.ca, kMaxPemBytes);
  if (!ca) return ca.status();
  auto parsed = pki::Certificate::fromPem(*certificate);
  if (!parsed) return parsed.status();
  if (!parsed->matchesKey(*key)) {
    return core::Status::failedPrecondition(files.certificate + " is not for the key in " +
                                            files.key);
  }
  return Identity{key->toPem(), std::move(*certificate), std::move(*ca)};
}

core::Result<Identity> enroll(const EnrollOptions& options, const IdentityFiles& files) {
  const size_t dot = options.token.find('.');
  if (dot == std::string::npos) {
    return core::Status::invalidArgument("the bootstrap token is not of the form id.secret");
  }
  const std::string tokenId = options.token.substr(0, dot);

  // 1. The cluster's CA, unverified: the token and the pin are what we trust.
  grpc::experimental::TlsChannelCredentialsOptions insecure;
  insecure.set_verify_server_certs(false);
  insecure.set_check_call_host(false);
  insecure.set_certificate_verifier(
      std::make_shared<grpc::experimental::NoOpCertificateVerifier>());
  auto discovery = v1::Enrollment::NewStub(
      grpc::CreateChannel(options.server, grpc::experimental::TlsCredentials(insecure)));
  v1::ClusterInfoRequest infoRequest;
  infoRequest.set_token_id(tokenId);
  v1::ClusterInfo info;
  if (auto status = discovery->GetClusterInfo(callContext().get(), infoRequest, &info);
      !status.ok()) {
    return core::Status::failedPrecondition("get the cluster's CA from " + options.server + ": " +
                                            describe(status));
  }
  if (!pki::equalConstantTime(pki::hmacSha256Hex(options.token, info.ca_certificate()),
                              info.signature())) {
    return core::Status::failedPrecondition(
        "the cluster CA from " + options.server +
        " is not signed with this bootstrap token: the token is wrong, or this is not the "
        "server it was made on");
  }
  auto ca = pki::Certificate::fromPem(info.ca_certificate());
  if (!ca) return ca.status();
  if (ca->publicKeyPin() != options.caCertHash) {
    return core::Status::failedPrecondition("the cluster CA's key is " + ca->publicKeyPin() +
                                            ", not the pinned " + options.caCertHash +
                                            "; refusing to enroll");
  }

  // 2. A key of our own, kept across attempts.
  auto key = pki::readPrivateKey(files.key);
  if (!key && key.status().code() == core::Status::Code::kNotFound) {
    key = pki::PrivateKey::generate();
    if (key) {
      if (core::Status s = pki::writePrivateKey(files.key, *key); !s) return s;
    }
  }
  if (!key) return key.status();
  auto csr = pki::makeCsr(*key, options.nodeName);
  if (!csr) return csr.status();

  // 3. The certificate, over TLS verified with the pinned CA.
  grpc::SslCredentialsOptions verified;
  verified.pem_root_certs = info.ca_certificate();
  auto enrollment =
      v1::Enrollment::NewStub(grpc::CreateChannel(options.server, grpc::SslCredentials(verified)));
  v1::EnrollRequest request;
  request.set_token(options.token);
  request.set_node_name(options.nodeName);
  request.set_csr(*csr);
  request.mutable_labels()->insert(options.labels.begin(), options.labels.end());
  v1::EnrollResponse response;
  if (auto status = enrollment->Enroll(callContext().get(), request, &response); !status.ok()) {
    return core::Status::failedPrecondition("enroll with " + options.server + ": " +
                                            describe(status));
  }
  auto certificate = pki::Certificate::fromPem(response.certificate());
  if (!certificate) return certificate.status();
  if (!certificate->matchesKey(*key) || certificate->commonName() != options.nodeName) {
    return core::Status::failedPrecondition("the server's certificate is not for this node's key");
  }
  if (core::Status s = certificate->verifyIssuedBy(*ca, std::chrono::system_clock::now()); !s) {
    return core::Status::failedPrecondition("the server's certificate: " + s.message());
  }
  // The CA first: a certificate on disk means enrollment is complete.
  if (core::Status s = core::writeFileAtomic(files.ca, info.ca_certificate(), {.mode = 0644}); !s) {
    return s;
  }
  if (core::Status s =
          core::writeFileAtomic(files.certificate, response.certificate(), {.mode = 0644});
      !s) {
    return s;
  }
  return Identity{key->toPem(), response.certificate(), info.ca_certificate()};
}

}  // namespace nodewarden::fleet
