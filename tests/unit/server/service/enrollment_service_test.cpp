// Enrollment as a new node meets it: the CA it is shown is signed with its
// token, a valid token and its own CSR get it a certificate of the CA, and
// every other request is refused without leaving a trace in the store.

#include "server/service/enrollment_service.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <optional>

#include "agent/pki/certificate.h"
#include "agent/pki/csr.h"
#include "agent/pki/digest.h"
#include "agent/pki/key.h"
#include "tests/unit/server/service/service_test_support.h"

namespace nodewarden::server {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;

constexpr char kTokenId[] = "abcdef";
constexpr char kSecret[] = "0123456789abcdef";
constexpr char kToken[] = "abcdef.0123456789abcdef";
constexpr std::chrono::seconds kValidity = 24h;

class EnrollmentServiceTest : public test::ServiceTest {
 protected:
  void SetUp() override {
    ServiceTest::SetUp();
    // The service signs at the machine's time: the CA must be valid now.
    auto authority = pki::Authority::create("nodewarden cluster CA",
                                            std::chrono::system_clock::now(), 24h * 3650);
    ASSERT_TRUE(authority.isOk()) << authority.status().message();
    authority_.emplace(std::move(*authority));
    service_.emplace(*store_, *authority_, kValidity);
    auto key = pki::PrivateKey::generate();
    ASSERT_TRUE(key.isOk());
    key_.emplace(std::move(*key));
  }

  std::string csrFor(const std::string& commonName) {
    auto csr = pki::makeCsr(*key_, commonName);
    EXPECT_TRUE(csr.isOk()) << csr.status().message();
    return csr.isOk() ? *csr : "";
  }

  grpc::Status enroll(const std::string& token, const std::string& node, const std::string& csr,
                      v1::EnrollResponse& response) {
    v1::EnrollRequest request;
    request.set_token(token);
    request.set_node_name(node);
    request.set_csr(csr);
    grpc::ServerContext context;
    return service_->Enroll(&context, &request, &response);
  }

  grpc::Status enroll(const std::string& node, const std::string& token = kToken) {
    v1::EnrollResponse response;
    return enroll(token, node, csrFor(node), response);
  }

  grpc::Status clusterInfo(const std::string& tokenId, v1::ClusterInfo& response) {
    v1::ClusterInfoRequest request;
    request.set_token_id(tokenId);
    grpc::ServerContext context;
    return service_->GetClusterInfo(&context, &request, &response);
  }

  bool enrolled(const std::string& node) {
    auto record = store_->node(node);
    EXPECT_TRUE(record.isOk());
    return record.isOk() && record->has_value();
  }

  uint32_t uses(const std::string& tokenId) {
    auto token = store_->token(tokenId);
    EXPECT_TRUE(token.isOk() && token->has_value());
    return token.isOk() && token->has_value() ? (*token)->uses : 0;
  }

  std::optional<pki::Authority> authority_;
  std::optional<EnrollmentService> service_;
  std::optional<pki::PrivateKey> key_;
};

TEST_F(EnrollmentServiceTest, TheClusterInfoIsTheCaSignedWithTheWholeToken) {
  putToken(kTokenId, kSecret, "workers");
  v1::ClusterInfo info;
  grpc::Status status = clusterInfo(kTokenId, info);
  ASSERT_TRUE(status.ok()) << status.error_message();
  const std::string ca = authority_->certificate().toPem();
  EXPECT_EQ(info.ca_certificate(), ca);
  EXPECT_EQ(info.signature(), pki::hmacSha256Hex(kToken, ca));
  // A node holding another secret cannot take this CA for its cluster's.
  EXPECT_NE(info.signature(), pki::hmacSha256Hex("abcdef.0123456789abcdee", ca));
}

TEST_F(EnrollmentServiceTest, UnknownAndExpiredTokensGetTheSameRefusal) {
  putToken("expird", kSecret, "workers", -1min);
  v1::ClusterInfo unknown;
  v1::ClusterInfo expired;
  grpc::Status unknownStatus = clusterInfo("nosuch", unknown);
  grpc::Status expiredStatus = clusterInfo("expird", expired);
  EXPECT_EQ(unknownStatus.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(expiredStatus.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(unknownStatus.error_message(), "no valid bootstrap token with id nosuch");
  EXPECT_EQ(expiredStatus.error_message(), "no valid bootstrap token with id expird");
  EXPECT_TRUE(unknown.ca_certificate().empty());
  EXPECT_TRUE(expired.ca_certificate().empty());
  EXPECT_TRUE(expired.signature().empty());
}

TEST_F(EnrollmentServiceTest, AValidTokenGetsTheNodeACertificateOfTheCaForItsName) {
  putToken(kTokenId, kSecret, "workers", 1h, 0, {{"zone", "a"}});
  v1::EnrollResponse response;
  const auto before = std::chrono::system_clock::now();
  grpc::Status status = enroll(kToken, "node-1", csrFor("node-1"), response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.group(), "workers");

  auto certificate = pki::Certificate::fromPem(response.certificate());
  ASSERT_TRUE(certificate.isOk()) << certificate.status().message();
  EXPECT_EQ(certificate->commonName(), "node-1");
  EXPECT_TRUE(certificate->matchesKey(*key_));
  EXPECT_FALSE(certificate->isCa());
  core::Status verified =
      certificate->verifyIssuedBy(authority_->certificate(), std::chrono::system_clock::now());
  EXPECT_TRUE(verified.isOk()) << verified.message();
  EXPECT_GE(certificate->notAfter(), before + kValidity - 1s);
  EXPECT_LE(certificate->notAfter(), std::chrono::system_clock::now() + kValidity);

  // The store honours exactly this certificate, in the token's group.
  NodeRecord node = nodeRecord("node-1");
  EXPECT_EQ(node.group, "workers");
  EXPECT_EQ(node.labels, (Labels{{"zone", "a"}}));
  EXPECT_EQ(node.certificateSerial, certificate->serialHex());
  EXPECT_EQ(node.certificateExpires, certificate->notAfter());
  EXPECT_FALSE(node.revoked);
  EXPECT_EQ(uses(kTokenId), 1u);
}

TEST_F(EnrollmentServiceTest, EnrollingAgainHonoursOnlyTheNewCertificate) {
  putToken(kTokenId, kSecret, "workers");
  v1::EnrollResponse first;
  v1::EnrollResponse second;
  ASSERT_TRUE(enroll(kToken, "node-1", csrFor("node-1"), first).ok());
  ASSERT_TRUE(enroll(kToken, "node-1", csrFor("node-1"), second).ok());
  const std::string firstSerial = pki::Certificate::fromPem(first.certificate())->serialHex();
  const std::string secondSerial = pki::Certificate::fromPem(second.certificate())->serialHex();
  EXPECT_NE(firstSerial, secondSerial);
  EXPECT_EQ(nodeRecord("node-1").certificateSerial, secondSerial);
  EXPECT_TRUE(*store_->isRevokedSerial(firstSerial));
}

TEST_F(EnrollmentServiceTest, AWrongSecretIsRefusedAndChangesNothing) {
  putToken(kTokenId, kSecret, "workers");
  grpc::Status status = enroll("node-1", "abcdef.0123456789abcdee");
  EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(status.error_message(), HasSubstr("abcdef"));
  // The refusal does not echo the secret tried.
  EXPECT_THAT(status.error_message(), ::testing::Not(HasSubstr("0123456789abcdee")));
  EXPECT_FALSE(enrolled("node-1"));
  EXPECT_EQ(uses(kTokenId), 0u);
}

TEST_F(EnrollmentServiceTest, AnUnknownTokenIsRefused) {
  EXPECT_EQ(enroll("node-1").error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_FALSE(enrolled("node-1"));
}

TEST_F(EnrollmentServiceTest, AnExpiredTokenIsRefused) {
  putToken(kTokenId, kSecret, "workers", -1s);
  grpc::Status status = enroll("node-1");
  EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(status.error_message(), HasSubstr("expired"));
  EXPECT_FALSE(enrolled("node-1"));
}

TEST_F(EnrollmentServiceTest, AUsedUpTokenIsRefused) {
  putToken(kTokenId, kSecret, "workers", 1h, /*usageLimit=*/1);
  ASSERT_TRUE(enroll("node-1").ok());
  grpc::Status status = enroll("node-2");
  EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(status.error_message(), HasSubstr("used up"));
  EXPECT_FALSE(enrolled("node-2"));
  EXPECT_EQ(uses(kTokenId), 1u);
}

TEST_F(EnrollmentServiceTest, ARevokedNodeCannotEnrollAgain) {
  putToken(kTokenId, kSecret, "workers");
  ASSERT_TRUE(enroll("node-1").ok());
  const std::string serial = nodeRecord("node-1").certificateSerial;
  ASSERT_TRUE(store_->revokeNode("node-1").isOk());

  grpc::Status status = enroll("node-1");
  EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(status.error_message(), HasSubstr("revoked"));
  NodeRecord node = nodeRecord("node-1");
  EXPECT_TRUE(node.revoked);
  EXPECT_EQ(node.certificateSerial, serial);
  EXPECT_EQ(uses(kTokenId), 1u);
}

TEST_F(EnrollmentServiceTest, ACsrForAnotherNodeIsInvalid) {
  putToken(kTokenId, kSecret, "workers");
  v1::EnrollResponse response;
  grpc::Status status = enroll(kToken, "node-1", csrFor("node-2"), response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_TRUE(response.certificate().empty());
  EXPECT_FALSE(enrolled("node-1"));
  EXPECT_FALSE(enrolled("node-2"));
  EXPECT_EQ(uses(kTokenId), 0u);
}

TEST_F(EnrollmentServiceTest, AnUnreadableCsrIsInvalid) {
  putToken(kTokenId, kSecret, "workers");
  v1::EnrollResponse response;
  EXPECT_EQ(enroll(kToken, "node-1", "not a CSR", response).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_FALSE(enrolled("node-1"));
}

TEST_F(EnrollmentServiceTest, NodeNamesThatAreNotKubernetesNamesAreInvalid) {
  putToken(kTokenId, kSecret, "workers");
  for (const std::string& name :
       std::vector<std::string>{"Node-1", "node_1", std::string(254, 'a'), std::string(), "-node",
                                "node-", "node..1", ".node", "node 1", "nöde"}) {
    v1::EnrollResponse response;
    grpc::Status status = enroll(kToken, name, csrFor("node-1"), response);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << name;
    EXPECT_FALSE(enrolled(name)) << name;
  }
  EXPECT_EQ(uses(kTokenId), 0u);
}

TEST_F(EnrollmentServiceTest, AMalformedTokenIsInvalid) {
  putToken(kTokenId, kSecret, "workers");
  grpc::Status status = enroll("node-1", "abcdef0123456789abcdef");
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("abcdef.0123456789abcdef"));
  EXPECT_FALSE(enrolled("node-1"));
}

TEST(ValidNodeNameTest, AcceptsKubernetesNodeNamesThatFitACertificate) {
  EXPECT_TRUE(validNodeName("node-1"));
  EXPECT_TRUE(validNodeName("1"));
  EXPECT_TRUE(validNodeName("ip-10-0-0-1.eu-west-1.compute.internal"));
  // The name is the certificate's common name, which holds 64 characters.
  std::string longest;
  while (longest.size() < 63) longest += longest.empty() ? "a" : ".a";
  longest += "b";
  ASSERT_EQ(longest.size(), 64u);
  EXPECT_TRUE(validNodeName(longest));
  EXPECT_FALSE(validNodeName(longest + "a"));
}

TEST_F(EnrollmentServiceTest, TheLongestNodeNameEnrolls) {
  const std::string name = "ip-10-0-0-1.eu-west-1.compute.internal.example-corporation.net";
  ASSERT_EQ(name.size(), 62u);
  putToken("abcdef", "0123456789abcdef", "workers");
  auto key = pki::PrivateKey::generate();
  ASSERT_TRUE(key.isOk());
  auto csr = pki::makeCsr(*key, name);
  ASSERT_TRUE(csr.isOk()) << csr.status().message();
  v1::EnrollRequest request;
  request.set_token("abcdef.0123456789abcdef");
  request.set_node_name(name);
  request.set_csr(*csr);
  v1::EnrollResponse response;
  grpc::ServerContext context;
  grpc::Status status = service_->Enroll(&context, &request, &response);
  EXPECT_TRUE(status.ok()) << status.error_message();
}

TEST(ParseBootstrapTokenTest, SplitsIdAndSecret) {
  auto token = parseBootstrapToken(kToken);
  ASSERT_TRUE(token.has_value());
  EXPECT_EQ(token->id, kTokenId);
  EXPECT_EQ(token->secret, kSecret);
}

TEST(ParseBootstrapTokenTest, RefusesAnythingButSixDotSixteenLowerAlphanumerics) {
  for (std::string_view token : {
           "", "abcdef.", ".0123456789abcdef",
           "abcdef.0123456789abcde",      // secret one short
           "abcdef.0123456789abcdef0",    // one long
           "abcde.0123456789abcdef0",     // id one short, the same length
           "abcdefg0123456789abcdef",     // no dot
           "abcdef:0123456789abcdef",     // another separator
           "ABCDEF.0123456789abcdef",     // upper case
           "abcdef.0123456789ABCDEF",     //
           "abcdef.0123456.89abcdef",     // a second dot
           "abcdef..123456789abcdef",     //
           "abc-ef.0123456789abcdef",     // punctuation
           "abcdef.0123456789abcde ",     // whitespace
           "abcdef.0123456789abcde\xc3",  // not ASCII
       }) {
    EXPECT_FALSE(parseBootstrapToken(token).has_value()) << token;
  }
  EXPECT_FALSE(parseBootstrapToken(std::string_view("abcdef.0123456789abcd\0f", 23)).has_value());
}

}  // namespace
}  // namespace nodewarden::server
