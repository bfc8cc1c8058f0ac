// The admin socket as `nodewarden-server token|state|nodes` use it.

#include "server/service/admin_service.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <optional>

#include "agent/pki/authority.h"
#include "agent/pki/csr.h"
#include "agent/pki/key.h"
#include "server/service/enrollment_service.h"
#include "tests/unit/server/service/service_test_support.h"

namespace nodewarden::server {
namespace {

using namespace std::chrono_literals;
using test::stateWithFiles;
using ::testing::ContainsRegex;
using ::testing::HasSubstr;
using ::testing::MatchesRegex;

int64_t micros(Time time) {
  return std::chrono::duration_cast<std::chrono::microseconds>(time.time_since_epoch()).count();
}

class AdminServiceTest : public test::ServiceTest {
 protected:
  void SetUp() override {
    ServiceTest::SetUp();
    states_.emplace(*store_);
    service_.emplace(*store_, *states_, registry_);
  }

  grpc::Status createToken(const v1::CreateTokenRequest& request, v1::TokenInfo& response) {
    grpc::ServerContext context;
    return service_->CreateToken(&context, &request, &response);
  }

  grpc::Status setState(const std::string& group, const std::string& node,
                        const std::string& document, v1::SetStateResponse& response,
                        const std::string& fileName = "") {
    v1::SetStateRequest request;
    request.set_group(group);
    request.set_node(node);
    request.set_document(document);
    request.set_file_name(fileName);
    grpc::ServerContext context;
    return service_->SetState(&context, &request, &response);
  }

  grpc::Status getNode(const std::string& name, v1::NodeInfo& response) {
    v1::GetNodeRequest request;
    request.set_name(name);
    grpc::ServerContext context;
    return service_->GetNode(&context, &request, &response);
  }

  grpc::Status revoke(const std::string& name) {
    v1::RevokeNodeRequest request;
    request.set_name(name);
    v1::RevokeNodeResponse response;
    grpc::ServerContext context;
    return service_->RevokeNode(&context, &request, &response);
  }

  NodeRegistry registry_;
  std::optional<DesiredStates> states_;
  std::optional<AdminService> service_;
};

TEST_F(AdminServiceTest, ATokenIsInKubeadmsFormatAndExpiresInADayByDefault) {
  v1::CreateTokenRequest request;
  request.set_group("workers");
  (*request.mutable_labels())["zone"] = "a";
  request.set_description("rack 4");
  request.set_usage_limit(3);
  v1::TokenInfo token;
  const auto before = std::chrono::system_clock::now();
  grpc::Status status = createToken(request, token);
  const auto after = std::chrono::system_clock::now();
  ASSERT_TRUE(status.ok()) << status.error_message();

  EXPECT_THAT(token.token(), MatchesRegex("[a-z0-9]{6}\\.[a-z0-9]{16}"));
  EXPECT_EQ(token.id(), token.token().substr(0, 6));
  EXPECT_EQ(token.group(), "workers");
  EXPECT_EQ(token.labels().at("zone"), "a");
  EXPECT_EQ(token.labels_size(), 1);
  EXPECT_EQ(token.description(), "rack 4");
  EXPECT_EQ(token.usage_limit(), 3u);
  EXPECT_EQ(token.uses(), 0u);
  EXPECT_GE(token.expires_us(), micros(before + 24h));
  EXPECT_LE(token.expires_us(), micros(after + 24h));

  // What enrollment checks: the same secret, group and labels.
  auto stored = store_->token(token.id());
  ASSERT_TRUE(stored.isOk() && stored->has_value());
  EXPECT_EQ((*stored)->secret, token.token().substr(7));
  EXPECT_EQ((*stored)->group, "workers");
  EXPECT_EQ((*stored)->labels, (Labels{{"zone", "a"}}));
  EXPECT_EQ((*stored)->usageLimit, 3u);
  EXPECT_EQ(micros((*stored)->expires), token.expires_us());
}

TEST_F(AdminServiceTest, ATokenLastsItsTtl) {
  v1::CreateTokenRequest request;
  request.set_group("workers");
  request.set_ttl_seconds(600);
  v1::TokenInfo token;
  const auto before = std::chrono::system_clock::now();
  ASSERT_TRUE(createToken(request, token).ok());
  EXPECT_GE(token.expires_us(), micros(before + 10min));
  EXPECT_LE(token.expires_us(), micros(std::chrono::system_clock::now() + 10min));
}

TEST_F(AdminServiceTest, ATtlPastTenYearsIsRefusedAndNoTokenMade) {
  v1::CreateTokenRequest request;
  request.set_group("workers");
  // `token create --ttl 100000d`: the expiry would not fit the clock.
  request.set_ttl_seconds(int64_t{100000} * 24 * 3600);
  v1::TokenInfo token;
  grpc::Status status = createToken(request, token);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(status.error_message(), "a token's TTL is positive and at most 3660d (ten years)");
  EXPECT_TRUE(store_->tokens()->empty());
}

TEST_F(AdminServiceTest, EveryTokenIsNew) {
  v1::CreateTokenRequest request;
  request.set_group("workers");
  v1::TokenInfo first;
  v1::TokenInfo second;
  ASSERT_TRUE(createToken(request, first).ok());
  ASSERT_TRUE(createToken(request, second).ok());
  EXPECT_NE(first.id(), second.id());
  EXPECT_NE(first.token().substr(7), second.token().substr(7));
}

TEST_F(AdminServiceTest, ATokenNeedsAGroupAndNoNegativeTtl) {
  v1::TokenInfo token;
  v1::CreateTokenRequest noGroup;
  EXPECT_EQ(createToken(noGroup, token).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  v1::CreateTokenRequest negative;
  negative.set_group("workers");
  negative.set_ttl_seconds(-1);
  EXPECT_EQ(createToken(negative, token).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_TRUE(store_->tokens()->empty());
}

TEST_F(AdminServiceTest, ACreatedTokenEnrollsANodeIntoItsGroup) {
  v1::CreateTokenRequest request;
  request.set_group("workers");
  (*request.mutable_labels())["zone"] = "a";
  v1::TokenInfo token;
  ASSERT_TRUE(createToken(request, token).ok());

  auto authority =
      pki::Authority::create("nodewarden cluster CA", std::chrono::system_clock::now(), 24h);
  ASSERT_TRUE(authority.isOk());
  EnrollmentService enrollment(*store_, *authority, 1h);
  auto key = pki::PrivateKey::generate();
  ASSERT_TRUE(key.isOk());
  v1::EnrollRequest enroll;
  enroll.set_token(token.token());
  enroll.set_node_name("node-1");
  enroll.set_csr(*pki::makeCsr(*key, "node-1"));
  v1::EnrollResponse enrolled;
  grpc::ServerContext context;
  grpc::Status status = enrollment.Enroll(&context, &enroll, &enrolled);
  ASSERT_TRUE(status.ok()) << status.error_message();

  v1::NodeInfo node;
  ASSERT_TRUE(getNode("node-1", node).ok());
  EXPECT_EQ(node.group(), "workers");
  EXPECT_EQ(node.labels().at("zone"), "a");
}

TEST_F(AdminServiceTest, ListedTokensShowEverythingButTheSecret) {
  v1::CreateTokenRequest request;
  request.set_group("workers");
  request.set_description("rack 4");
  v1::TokenInfo created;
  ASSERT_TRUE(createToken(request, created).ok());

  v1::ListTokensResponse list;
  grpc::ServerContext context;
  v1::ListTokensRequest listRequest;
  ASSERT_TRUE(service_->ListTokens(&context, &listRequest, &list).ok());
  ASSERT_EQ(list.tokens_size(), 1);
  const v1::TokenInfo& listed = list.tokens(0);
  EXPECT_TRUE(listed.token().empty());
  EXPECT_EQ(listed.id(), created.id());
  EXPECT_EQ(listed.group(), "workers");
  EXPECT_EQ(listed.description(), "rack 4");
  EXPECT_EQ(listed.expires_us(), created.expires_us());
  EXPECT_EQ(list.SerializeAsString().find(created.token().substr(7)), std::string::npos);
}

TEST_F(AdminServiceTest, SettingAGroupsStateReturnsItsRevisionAndPushesToNoStream) {
  v1::SetStateResponse response;
  const std::string document = stateWithFiles({{"/srv/app/app.conf", "one"}});
  grpc::Status status = setState("workers", "", document, response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.revision(), 1);
  EXPECT_EQ(response.pushed(), 0u);

  // A node the registry still lists but whose stream ended gets nothing.
  registry_.add("node-1", "workers", {});
  ASSERT_TRUE(setState("workers", "", document, response).ok());
  EXPECT_EQ(response.revision(), 2);
  EXPECT_EQ(response.pushed(), 0u);

  v1::GetStateRequest get;
  get.set_group("workers");
  v1::GetStateResponse states;
  grpc::ServerContext context;
  ASSERT_TRUE(service_->GetState(&context, &get, &states).ok());
  ASSERT_EQ(states.states_size(), 1);
  EXPECT_EQ(states.states(0).revision(), 2);
  EXPECT_EQ(states.states(0).document(), document);
  EXPECT_EQ(states_->forNode("node-1", "workers")->version(), "workers@2");
}

TEST_F(AdminServiceTest, ANodesOverrideIsStoredBeforeTheNodeEnrolls) {
  v1::SetStateResponse response;
  ASSERT_TRUE(setState("", "node-9", stateWithFiles({{"/etc/x.conf", "x"}}), response).ok());
  EXPECT_EQ(response.revision(), 1);
  EXPECT_EQ(response.pushed(), 0u);
  EXPECT_EQ(states_->forNode("node-9", "workers")->version(), "node-9@1");
}

TEST_F(AdminServiceTest, AnInvalidStateIsInvalidArgumentWithWhereEachProblemIs) {
  v1::SetStateResponse response;
  const std::string invalid = std::string(test::kStateHeader) +
                              "files:\n"
                              "  - path: relative/app.conf\n"
                              "    content: \"x\"\n";
  grpc::Status status = setState("workers", "", invalid, response, "workers.yaml");
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(),
              ContainsRegex("^workers\\.yaml:4:[0-9]+: files\\[0\\]\\.path"));
  EXPECT_EQ(response.revision(), 0);

  // Without a file name, the positions are in "state".
  status = setState("workers", "", invalid, response);
  EXPECT_THAT(status.error_message(), ContainsRegex("^state:4:[0-9]+: "));
  EXPECT_FALSE(store_->groupState("workers")->has_value());
}

TEST_F(AdminServiceTest, AnUnknownNodeIsNotFound) {
  v1::NodeInfo node;
  grpc::Status status = getNode("node-1", node);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_THAT(status.error_message(), HasSubstr("node-1"));
  EXPECT_EQ(revoke("node-1").error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST_F(AdminServiceTest, ANodeShowsWhatItReported) {
  const Time enrolled = std::chrono::system_clock::now();
  enroll("node-1", "workers", enrolled);
  v1::AgentMessage usage;
  usage.set_sequence(1);
  usage.mutable_usage()->set_cpu_percent(12.5);
  ASSERT_TRUE(storeNodeMessage(*store_, "node-1", usage, enrolled + 1s).ok());
  v1::AgentMessage health;
  health.set_sequence(2);
  auto* condition = health.mutable_health()->add_conditions();
  condition->set_subject("worker.service");
  condition->set_type("CrashLooping");
  condition->set_status(true);
  health.mutable_health()->add_events()->set_reason("Restarted");
  ASSERT_TRUE(storeNodeMessage(*store_, "node-1", health, enrolled + 2s).ok());

  v1::NodeInfo node;
  ASSERT_TRUE(getNode("node-1", node).ok());
  EXPECT_EQ(node.name(), "node-1");
  EXPECT_EQ(node.group(), "workers");
  EXPECT_FALSE(node.connected());
  EXPECT_FALSE(node.revoked());
  EXPECT_EQ(node.enrolled_us(), micros(enrolled));
  EXPECT_EQ(node.last_seen_us(), micros(enrolled + 2s));
  EXPECT_EQ(node.usage().cpu_percent(), 12.5);
  ASSERT_EQ(node.conditions_size(), 1);
  EXPECT_EQ(node.conditions(0).subject(), "worker.service");
  ASSERT_EQ(node.events_size(), 1);
  EXPECT_EQ(node.events(0).reason(), "Restarted");

  registry_.add("node-1", "workers", {});
  ASSERT_TRUE(getNode("node-1", node).ok());
  EXPECT_TRUE(node.connected());
}

TEST_F(AdminServiceTest, ARevokedNodesCertificateIsNoLongerHonoured) {
  enroll("node-1", "workers");
  const std::string serial = nodeRecord("node-1").certificateSerial;
  ASSERT_FALSE(*store_->isRevokedSerial(serial));

  grpc::Status status = revoke("node-1");
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_TRUE(nodeRecord("node-1").revoked);
  EXPECT_TRUE(*store_->isRevokedSerial(serial));
  v1::NodeInfo node;
  ASSERT_TRUE(getNode("node-1", node).ok());
  EXPECT_TRUE(node.revoked());
}

TEST_F(AdminServiceTest, AlertsListTheUnresolvedUnlessAllAreAskedFor) {
  const Time now = std::chrono::system_clock::now();
  ASSERT_TRUE(
      store_->raiseAlert({0, "node-1", "workers", "DiskUsage", "/ is 90% full", now, {}}).isOk());
  ASSERT_TRUE(
      store_->raiseAlert({0, "node-2", "workers", "NotSeen", "not seen for 5m", now, {}}).isOk());
  ASSERT_TRUE(*store_->resolveAlert("node-2", "NotSeen", now + 1s));

  grpc::ServerContext context;
  v1::ListAlertsRequest request;
  v1::ListAlertsResponse open;
  ASSERT_TRUE(service_->ListAlerts(&context, &request, &open).ok());
  ASSERT_EQ(open.alerts_size(), 1);
  EXPECT_EQ(open.alerts(0).node(), "node-1");
  EXPECT_EQ(open.alerts(0).kind(), "DiskUsage");
  EXPECT_EQ(open.alerts(0).resolved_us(), 0);

  request.set_all(true);
  v1::ListAlertsResponse all;
  ASSERT_TRUE(service_->ListAlerts(&context, &request, &all).ok());
  ASSERT_EQ(all.alerts_size(), 2);
  int resolved = 0;
  for (const auto& alert : all.alerts()) {
    if (alert.resolved_us() != 0) {
      ++resolved;
      EXPECT_EQ(alert.kind(), "NotSeen");
      EXPECT_EQ(alert.resolved_us(), micros(now + 1s));
    }
  }
  EXPECT_EQ(resolved, 1);
}

}  // namespace
}  // namespace nodewarden::server
