// Which certificate a node may connect with; and, as a node resends what it
// has not seen acknowledged, each numbered message stored once and what
// cannot be one refused.

#include "server/service/node_service.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <optional>

#include "agent/pki/authority.h"
#include "agent/pki/csr.h"
#include "agent/pki/key.h"
#include "server/service/admin_service.h"
#include "server/service/enrollment_service.h"
#include "tests/unit/server/service/service_test_support.h"

namespace nodewarden::server {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;

const Time kNow = Time(std::chrono::seconds(1'800'000'000));

v1::AgentMessage report(uint64_t sequence, const std::string& version, const std::string& result) {
  v1::AgentMessage message;
  message.set_sequence(sequence);
  message.mutable_report()->set_desired_version(version);
  message.mutable_report()->set_result(result);
  return message;
}

v1::AgentMessage health(uint64_t sequence, const std::vector<int64_t>& eventTimes) {
  v1::AgentMessage message;
  message.set_sequence(sequence);
  auto* condition = message.mutable_health()->add_conditions();
  condition->set_subject("worker.service");
  condition->set_type("CrashLooping");
  condition->set_status(true);
  for (int64_t time : eventTimes) {
    auto* event = message.mutable_health()->add_events();
    event->set_time_us(time);
    event->set_subject("worker.service");
    event->set_reason("Restarted");
  }
  return message;
}

class NodeMessagesTest : public test::ServiceTest {
 protected:
  void SetUp() override {
    ServiceTest::SetUp();
    enroll("node-1", "workers", kNow);
  }

  grpc::Status store(const v1::AgentMessage& message, Time now = kNow + 1min) {
    return storeNodeMessage(*store_, "node-1", message, now);
  }

  size_t eventCount() {
    auto events = store_->events("node-1", 1000);
    EXPECT_TRUE(events.isOk());
    return events.isOk() ? events->size() : 0;
  }
};

TEST_F(NodeMessagesTest, AReportResentWithTheSameSequenceIsStoredOnce) {
  ASSERT_TRUE(store(report(1, "workers@1", "applied"), kNow + 1min).ok());
  NodeRecord first = nodeRecord("node-1");
  EXPECT_EQ(first.appliedVersion, "workers@1");
  EXPECT_EQ(first.lastResult, "applied");
  EXPECT_EQ(first.lastSequence, 1u);
  EXPECT_EQ(first.lastSeen, kNow + 1min);

  // The resend is acknowledged (OK) but changes nothing.
  ASSERT_TRUE(store(report(1, "workers@2", "failed"), kNow + 2min).ok());
  NodeRecord resent = nodeRecord("node-1");
  EXPECT_EQ(resent.appliedVersion, "workers@1");
  EXPECT_EQ(resent.lastResult, "applied");
  EXPECT_EQ(resent.lastSequence, 1u);
  EXPECT_EQ(resent.lastSeen, kNow + 1min);

  ASSERT_TRUE(store(report(2, "workers@2", "failed"), kNow + 3min).ok());
  NodeRecord next = nodeRecord("node-1");
  EXPECT_EQ(next.appliedVersion, "workers@2");
  EXPECT_EQ(next.lastSequence, 2u);
  v1::ConvergeReport last;
  ASSERT_TRUE(last.ParseFromString(next.lastReport));
  EXPECT_EQ(last.result(), "failed");
}

TEST_F(NodeMessagesTest, HealthEventsOfAResentUpdateAreNotAddedTwice) {
  ASSERT_TRUE(store(health(5, {1'000, 2'000})).ok());
  ASSERT_TRUE(store(health(5, {1'000, 2'000})).ok());
  EXPECT_EQ(eventCount(), 2u);
  // An older sequence, arriving late, is as much a resend.
  ASSERT_TRUE(store(health(3, {3'000})).ok());
  EXPECT_EQ(eventCount(), 2u);
  EXPECT_EQ(nodeRecord("node-1").lastSequence, 5u);

  v1::HealthUpdate conditions;
  ASSERT_TRUE(conditions.ParseFromString(nodeRecord("node-1").conditions));
  ASSERT_EQ(conditions.conditions_size(), 1);
  EXPECT_EQ(conditions.conditions(0).type(), "CrashLooping");
  EXPECT_EQ(conditions.events_size(), 0);
}

TEST_F(NodeMessagesTest, UsageAndDropCountsAreStoredOnce) {
  v1::AgentMessage usage;
  usage.set_sequence(1);
  auto* disk = usage.mutable_usage()->add_disks();
  disk->set_mount("/");
  disk->set_used_bytes(90);
  disk->set_size_bytes(100);
  ASSERT_TRUE(store(usage).ok());
  v1::Usage stored;
  ASSERT_TRUE(stored.ParseFromString(nodeRecord("node-1").usage));
  ASSERT_EQ(stored.disks_size(), 1);
  EXPECT_EQ(stored.disks(0).used_bytes(), 90u);

  v1::AgentMessage dropped;
  dropped.set_sequence(2);
  dropped.mutable_dropped()->set_count(3);
  ASSERT_TRUE(store(dropped).ok());
  ASSERT_TRUE(store(dropped).ok());
  dropped.set_sequence(3);
  dropped.mutable_dropped()->set_count(4);
  ASSERT_TRUE(store(dropped).ok());
  EXPECT_EQ(nodeRecord("node-1").dropped, 7u);
  EXPECT_EQ(nodeRecord("node-1").lastSequence, 3u);
}

TEST_F(NodeMessagesTest, SequenceZeroIsRefusedAndNothingStored) {
  grpc::Status status = store(report(0, "workers@1", "applied"));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  status = store(health(0, {1'000}));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  NodeRecord node = nodeRecord("node-1");
  EXPECT_EQ(node.lastSequence, 0u);
  EXPECT_TRUE(node.appliedVersion.empty());
  EXPECT_TRUE(node.conditions.empty());
  EXPECT_EQ(node.lastSeen, kNow);
  EXPECT_EQ(eventCount(), 0u);
}

TEST_F(NodeMessagesTest, AMessageWithoutABodyIsRefused) {
  v1::AgentMessage empty;
  empty.set_sequence(1);
  EXPECT_EQ(store(empty).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(nodeRecord("node-1").lastSequence, 0u);

  v1::AgentMessage hello;
  hello.set_sequence(1);
  hello.mutable_hello();
  EXPECT_EQ(store(hello).error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(nodeRecord("node-1").lastSequence, 0u);
}

TEST_F(NodeMessagesTest, EventsAtTimesNoClockHoldsAreStored) {
  constexpr int64_t kLargestMicros = INT64_MAX / 1000 - 1;
  ASSERT_TRUE(store(health(1, {INT64_MAX, INT64_MIN, kLargestMicros, -kLargestMicros, 0})).ok());
  EXPECT_EQ(eventCount(), 5u);
  // And the node can be read back, events and all.
  auto events = store_->events("node-1", 10);
  ASSERT_TRUE(events.isOk());
  for (const auto& blob : *events) {
    v1::Event event;
    EXPECT_TRUE(event.ParseFromString(blob));
    EXPECT_EQ(event.subject(), "worker.service");
  }
}

class AuthenticateNodeTest : public test::ServiceTest {
 protected:
  void SetUp() override {
    ServiceTest::SetUp();
    auto authority = pki::Authority::create("nodewarden cluster CA",
                                            std::chrono::system_clock::now(), 24h * 3650);
    ASSERT_TRUE(authority.isOk()) << authority.status().message();
    authority_.emplace(std::move(*authority));
    enrollment_.emplace(*store_, *authority_, 24h);
    putToken("abcdef", "0123456789abcdef", "workers");
    auto key = pki::PrivateKey::generate();
    ASSERT_TRUE(key.isOk());
    key_.emplace(std::move(*key));
  }

  // The certificate enrollment gives `node`, for the machine's one key.
  std::string enrolledCertificate(const std::string& node) {
    v1::EnrollRequest request;
    request.set_token("abcdef.0123456789abcdef");
    request.set_node_name(node);
    request.set_csr(*pki::makeCsr(*key_, node));
    v1::EnrollResponse response;
    grpc::ServerContext context;
    grpc::Status status = enrollment_->Enroll(&context, &request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response.certificate();
  }

  grpc::Status authenticate(const std::string& certificatePem, std::string& name) {
    return authenticateNode(test::FakeAuthContext(certificatePem), *store_, name);
  }

  std::optional<pki::Authority> authority_;
  std::optional<EnrollmentService> enrollment_;
  std::optional<pki::PrivateKey> key_;
};

TEST_F(AuthenticateNodeTest, AnEnrolledCertificateNamesItsNode) {
  const std::string certificate = enrolledCertificate("node-1");
  std::string name;
  grpc::Status status = authenticate(certificate, name);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(name, "node-1");
}

TEST_F(AuthenticateNodeTest, ARevokedNodesCertificateIsRefused) {
  const std::string certificate = enrolledCertificate("node-1");
  NodeRegistry registry;
  DesiredStates states(*store_);
  AdminService admin(*store_, states, registry);
  v1::RevokeNodeRequest request;
  request.set_name("node-1");
  v1::RevokeNodeResponse response;
  grpc::ServerContext context;
  ASSERT_TRUE(admin.RevokeNode(&context, &request, &response).ok());

  std::string name;
  grpc::Status status = authenticate(certificate, name);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(status.error_message(), HasSubstr("node-1 was revoked"));
  EXPECT_TRUE(name.empty());
}

// A node that lost its certificate enrolls again with the key it has.
TEST_F(AuthenticateNodeTest, OnlyTheNewestCertificateOfANodeIsHonoured) {
  const std::string older = enrolledCertificate("node-1");
  const std::string newer = enrolledCertificate("node-1");
  std::string name;
  grpc::Status status = authenticate(older, name);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(status.error_message(), HasSubstr("replaced by a newer one"));
  EXPECT_TRUE(name.empty());
  EXPECT_TRUE(authenticate(newer, name).ok());
  EXPECT_EQ(name, "node-1");
}

TEST_F(AuthenticateNodeTest, ACertificateOfNoEnrolledNodeIsRefused) {
  // Issued by the CA, but the store never heard of the node.
  auto key = pki::PrivateKey::generate();
  ASSERT_TRUE(key.isOk());
  auto certificate = authority_->signNodeCertificate(*pki::makeCsr(*key, "node-9"), "node-9",
                                                     std::chrono::system_clock::now(), 24h);
  ASSERT_TRUE(certificate.isOk());
  std::string name;
  grpc::Status status = authenticate(*certificate, name);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(status.error_message(), HasSubstr("node-9 is not enrolled"));
}

TEST_F(AuthenticateNodeTest, NoOrAnUnreadableCertificateIsUnauthenticated) {
  std::string name;
  EXPECT_EQ(authenticate("", name).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(authenticate("-----BEGIN CERTIFICATE-----\nnonsense\n", name).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_TRUE(name.empty());
}

}  // namespace
}  // namespace nodewarden::server
