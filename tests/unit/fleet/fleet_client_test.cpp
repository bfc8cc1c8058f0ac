// The real FleetClient against the real control plane, in process: the
// server's services wired the way `nodewarden-server run` wires them (TLS
// that verifies a client certificate when one is presented, a CA made for the
// test, a server certificate for 127.0.0.1), on the agent's real loop and
// clock. A node enrolls with a bootstrap token and receives its group's
// state, and the server hears when the agent rejects one; its reports are
// stored once each and leave the spool; it rides out a server restart on its
// own; a wrong pin or token keeps it out, and so does revocation; a restarted
// agent keeps its identity, and one that lost its spool is still heard.

#include "agent/fleet/fleet_client.h"

#include <sys/stat.h>

#include <gmock/gmock.h>
#include <google/protobuf/util/message_differencer.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "agent/core/loop.h"
#include "agent/fleet/enroller.h"
#include "agent/fleet/keepalive.h"
#include "agent/fleet/reports.h"
#include "agent/fleet/spool.h"
#include "agent/pki/authority.h"
#include "agent/pki/key.h"
#include "agent/state/loader.h"
#include "server/service/admin_service.h"
#include "server/service/desired_states.h"
#include "server/service/enrollment_service.h"
#include "server/service/node_service.h"
#include "server/store/sqlite_store.h"
#include "tests/unit/fleet/recording_store.h"

namespace nodewarden::fleet {
namespace {

using namespace std::chrono_literals;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::StartsWith;

// Reconnection waits out the client's backoff (1 s, then 2 s, …), so a
// wait is bounded generously rather than tightly.
constexpr core::Duration kPatience = 20s;

constexpr char kTokenId[] = "abcdef";
constexpr char kTokenSecret[] = "0123456789abcdef";
constexpr char kNode[] = "node-1";
constexpr char kGroup[] = "workers";

std::string groupState(const std::string& marker) {
  return "apiVersion: nodewarden.io/v1\n"
         "kind: NodeState\n"
         "files:\n"
         "  - path: /etc/fleet-marker\n"
         "    content: \"" +
         marker + "\\n\"\n";
}

std::string readFile(const std::string& path) {
  std::ifstream in(path);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

// Records the desired states the client hands the agent, and accepts them
// unless told to reject them.
class RecordingListener final : public FleetListener {
 public:
  struct Received {
    std::string version;
    std::string document;
  };

  std::string desiredState(const std::string& version, const std::string& document) override {
    states.push_back({version, document});
    if (!rejection.empty()) return rejection;
    accepted = version;
    return "";
  }
  void convergeNow(const std::string&) override {}
  std::string enforcedVersion() const override { return accepted; }

  std::string rejection;  // why every state is refused; empty: accepted
  std::vector<Received> states;
  std::string accepted;
};

// The node-facing half of nodewarden-server as run.cpp builds it, over a
// store that outlives it, so that a test can stop the server and start
// another in its place.
class ControlPlane final {
 public:
  ControlPlane(server::Store& store, const pki::Authority& authority,
               const std::string& serverKeyPem, const std::string& serverCertificatePem, int port)
      : states_(store),
        enrollment_(store, authority, std::chrono::hours(24)),
        nodes_(store, states_, registry_),
        admin_(store, states_, registry_) {
    if (core::Status s = states_.load(); !s) {
      ADD_FAILURE() << "load the desired states: " << s.message();
    }
    grpc::SslServerCredentialsOptions tls(GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_AND_VERIFY);
    tls.pem_root_certs = authority.certificate().toPem();
    tls.pem_key_cert_pairs.push_back({serverKeyPem, serverCertificatePem});
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:" + std::to_string(port), grpc::SslServerCredentials(tls),
                             &port_);
    builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, keepalive::kServerPingInterval.count());
    builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS,
                               keepalive::kServerPingTimeout.count());
    builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
    builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS,
                               keepalive::kMinPingInterval.count());
    builder.AddChannelArgument(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
    builder.RegisterService(&enrollment_);
    builder.RegisterService(&nodes_);
    server_ = builder.BuildAndStart();
    if (!server_ || port_ == 0) ADD_FAILURE() << "listen on 127.0.0.1:" << port;
  }

  ~ControlPlane() { stop(); }

  // Ends every stream at once, as a server that is stopped or dies does.
  void stop() {
    if (server_) server_->Shutdown(std::chrono::system_clock::now());
    server_.reset();
  }

  int port() const { return port_; }
  const server::NodeRegistry& registry() const { return registry_; }

  // What `nodewarden-server state set --group` does: stores the next
  // revision and pushes it to the group's connected nodes. Returns how many.
  uint32_t setGroupState(const std::string& group, const std::string& document) {
    v1::SetStateRequest request;
    request.set_group(group);
    request.set_document(document);
    request.set_file_name(group + ".yaml");
    v1::SetStateResponse response;
    grpc::Status status = admin_.SetState(nullptr, &request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response.pushed();
  }

  // What `nodewarden-server nodes revoke` does.
  void revoke(const std::string& node) {
    v1::RevokeNodeRequest request;
    request.set_name(node);
    v1::RevokeNodeResponse response;
    grpc::Status status = admin_.RevokeNode(nullptr, &request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
  }

 private:
  server::DesiredStates states_;
  server::NodeRegistry registry_;
  server::EnrollmentService enrollment_;
  server::NodeService nodes_;
  server::AdminService admin_;
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;  // last: stopped before the services go
};

class FleetClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto loop = core::Loop::create();
    ASSERT_TRUE(loop.isOk()) << loop.status().message();
    loop_ = std::move(*loop);
    clock_ = std::make_unique<core::LoopClock>(*loop_);

    std::string templ = std::filesystem::temp_directory_path() / "nodewarden-fleet-XXXXXX";
    ASSERT_NE(::mkdtemp(templ.data()), nullptr) << std::strerror(errno);
    base_ = templ;
    stateDir_ = base_ + "/var/lib/nodewarden";
    std::filesystem::create_directories(stateDir_);

    auto sqlite = server::SqliteStore::open(base_ + "/server/store.db");
    ASSERT_TRUE(sqlite.isOk()) << sqlite.status().message();
    sqlite_ = std::move(*sqlite);
    store_ = std::make_unique<test::RecordingStore>(*sqlite_);

    const auto now = std::chrono::system_clock::now();
    auto authority = pki::Authority::create("nodewarden test CA", now, std::chrono::hours(48));
    ASSERT_TRUE(authority.isOk()) << authority.status().message();
    authority_ = std::make_unique<pki::Authority>(std::move(*authority));
    auto serverKey = pki::PrivateKey::generate();
    ASSERT_TRUE(serverKey.isOk()) << serverKey.status().message();
    auto serverCertificate =
        authority_->issueServerCertificate(*serverKey, {"127.0.0.1"}, now, std::chrono::hours(24));
    ASSERT_TRUE(serverCertificate.isOk()) << serverCertificate.status().message();
    serverKeyPem_ = serverKey->toPem();
    serverCertificatePem_ = std::move(*serverCertificate);

    server::TokenRecord token;
    token.id = kTokenId;
    token.secret = kTokenSecret;
    token.group = kGroup;
    token.created = now;
    token.expires = now + std::chrono::hours(1);
    ASSERT_TRUE(store_->putToken(token).isOk());

    startServer(0);
  }

  void TearDown() override {
    client_.reset();
    server_.reset();
    store_.reset();
    sqlite_.reset();
    clock_.reset();
    loop_.reset();
    if (!base_.empty()) std::filesystem::remove_all(base_);
  }

  void startServer(int port) {
    server_ = std::make_unique<ControlPlane>(*store_, *authority_, serverKeyPem_,
                                             serverCertificatePem_, port);
  }

  FleetConfig config() const {
    FleetConfig config;
    config.server = "127.0.0.1:" + std::to_string(server_->port());
    config.bootstrapToken = std::string(kTokenId) + "." + kTokenSecret;
    config.caCertHash = authority_->certificate().publicKeyPin();
    config.nodeName = kNode;
    return config;
  }

  // A client on the agent's state directory, started, as the agent makes it.
  void startClient(FleetConfig config) {
    auto spool = Spool::open(stateDir_ + "/spool", {});
    ASSERT_TRUE(spool.isOk()) << spool.status().message();
    client_ = std::make_unique<FleetClient>(*loop_, *clock_, std::move(config), stateDir_,
                                            std::move(*spool), listener_);
    client_->start();
  }

  // Runs the loop until `done`; false when kPatience ran out first.
  [[nodiscard]] bool runUntil(const std::function<bool()>& done) {
    bool expired = false;
    auto deadline = clock_->createTimer([&] { expired = true; });
    deadline->armIn(kPatience);
    core::Status s = loop_->runUntil([&] { return done() || expired; });
    EXPECT_TRUE(s.isOk()) << s.message();
    return done();
  }

  [[nodiscard]] bool connect() {
    return runUntil([&] { return client_->connected(); });
  }

  void report(const std::string& version) {
    client_->report(convergeReport(version, "ok", "", nullptr, *clock_));
  }

  server::NodeRecord node() {
    auto record = store_->node(kNode);
    EXPECT_TRUE(record.isOk() && record->has_value()) << "node " << kNode << " is not stored";
    return record.isOk() && record->has_value() ? **record : server::NodeRecord{};
  }

  uint32_t tokenUses() {
    auto token = store_->token(kTokenId);
    EXPECT_TRUE(token.isOk() && token->has_value());
    return token.isOk() && token->has_value() ? (*token)->uses : 0;
  }

  // The spool as the next agent start would find it. Only once the client
  // is gone: the spool has one owner.
  uint64_t spoolLastSequence() {
    EXPECT_EQ(client_, nullptr);
    auto spool = Spool::open(stateDir_ + "/spool", {});
    EXPECT_TRUE(spool.isOk()) << spool.status().message();
    return spool.isOk() ? spool->lastSequence() : 0;
  }

  std::unique_ptr<core::Loop> loop_;
  std::unique_ptr<core::LoopClock> clock_;
  std::string base_;
  std::string stateDir_;
  std::unique_ptr<server::SqliteStore> sqlite_;
  std::unique_ptr<test::RecordingStore> store_;
  std::unique_ptr<pki::Authority> authority_;
  std::string serverKeyPem_;
  std::string serverCertificatePem_;
  std::unique_ptr<ControlPlane> server_;
  RecordingListener listener_;
  std::unique_ptr<FleetClient> client_;
};

bool sameState(const std::string& received, const std::string& sent) {
  state::LoadResult a = state::loadString(received, "received");
  state::LoadResult b = state::loadString(sent, "sent");
  return a.ok() && b.ok() && google::protobuf::util::MessageDifferencer::Equals(*a.state, *b.state);
}

TEST_F(FleetClientTest, EnrollsConnectsAndReceivesItsGroupsState) {
  // Set before the node exists: it gets the state when it connects.
  EXPECT_EQ(server_->setGroupState(kGroup, groupState("one")), 0u);

  startClient(config());
  ASSERT_TRUE(runUntil([&] { return client_->connected() && !listener_.states.empty(); }))
      << client_->status();

  EXPECT_EQ(client_->status(), "connected to 127.0.0.1:" + std::to_string(server_->port()));
  const IdentityFiles files = identityFiles(stateDir_);
  struct stat key {};
  ASSERT_EQ(::stat(files.key.c_str(), &key), 0) << files.key;
  EXPECT_EQ(key.st_mode & 07777, 0600u);
  EXPECT_TRUE(std::filesystem::exists(files.certificate));
  EXPECT_EQ(readFile(files.ca), authority_->certificate().toPem());
  auto identity = readIdentity(files);
  ASSERT_TRUE(identity.isOk()) << identity.status().message();

  EXPECT_TRUE(server_->registry().connected(kNode));
  EXPECT_EQ(node().group, kGroup);
  EXPECT_EQ(tokenUses(), 1u);

  ASSERT_EQ(listener_.states.size(), 1u);
  EXPECT_EQ(listener_.states[0].version, "workers@1");
  EXPECT_TRUE(sameState(listener_.states[0].document, groupState("one")))
      << listener_.states[0].document;

  // A new revision reaches the connected node without it asking.
  EXPECT_EQ(server_->setGroupState(kGroup, groupState("two")), 1u);
  ASSERT_TRUE(runUntil([&] { return listener_.states.size() == 2; })) << client_->status();
  EXPECT_EQ(listener_.states[1].version, "workers@2");
  EXPECT_TRUE(sameState(listener_.states[1].document, groupState("two")))
      << listener_.states[1].document;
  EXPECT_EQ(node().desiredVersion, "workers@2");
}

TEST_F(FleetClientTest, AStateTheAgentRejectsIsReportedWithTheReason) {
  listener_.rejection = "workers.yaml:4:5: no such user";
  startClient(config());
  ASSERT_TRUE(connect()) << client_->status();
  EXPECT_EQ(server_->setGroupState(kGroup, groupState("one")), 1u);
  ASSERT_TRUE(runUntil([&] { return !listener_.states.empty() && client_->spooled() == 0; }))
      << client_->status();

  const server::NodeRecord record = node();
  EXPECT_EQ(record.lastResult, "rejected");
  v1::ConvergeReport last;
  ASSERT_TRUE(last.ParseFromString(record.lastReport));
  EXPECT_EQ(last.desired_version(), "workers@1");
  EXPECT_EQ(last.error(), "workers.yaml:4:5: no such user");
}

TEST_F(FleetClientTest, ReportsAreStoredOnceInOrderAndLeaveTheSpool) {
  startClient(config());
  ASSERT_TRUE(connect()) << client_->status();

  for (int i = 1; i <= 5; ++i) report("workers@" + std::to_string(i));
  EXPECT_GE(client_->spooled(), 5u);
  ASSERT_TRUE(runUntil([&] { return client_->spooled() == 0; })) << client_->status();

  EXPECT_THAT(store_->appliedReports(),
              ElementsAre("workers@1", "workers@2", "workers@3", "workers@4", "workers@5"));
  const server::NodeRecord record = node();
  v1::ConvergeReport last;
  ASSERT_TRUE(last.ParseFromString(record.lastReport));
  EXPECT_EQ(last.desired_version(), "workers@5");
  EXPECT_EQ(record.appliedVersion, "workers@5");
  EXPECT_EQ(record.lastResult, "ok");

  client_.reset();
  EXPECT_EQ(record.lastSequence, spoolLastSequence());
}

TEST_F(FleetClientTest, ReportsMadeWhileTheServerIsAwayArriveInOrderOnceItIsBack) {
  startClient(config());
  ASSERT_TRUE(connect()) << client_->status();
  report("workers@1");
  report("workers@2");
  ASSERT_TRUE(runUntil([&] { return client_->spooled() == 0; })) << client_->status();

  const int port = server_->port();
  server_->stop();
  ASSERT_TRUE(runUntil([&] { return !client_->connected(); }));
  EXPECT_THAT(client_->status(), StartsWith("server unreachable"));
  const uint64_t storedBefore = node().lastSequence;

  report("workers@3");
  report("workers@4");
  report("workers@5");
  EXPECT_GE(client_->spooled(), 3u);
  // One attempt fails while the server is away, and the client keeps trying.
  ASSERT_TRUE(runUntil([&] { return client_->status().starts_with("connecting"); }));
  ASSERT_TRUE(runUntil([&] { return client_->status().starts_with("server unreachable"); }));
  EXPECT_GE(client_->spooled(), 3u);
  EXPECT_EQ(node().lastSequence, storedBefore);

  startServer(port);
  ASSERT_EQ(server_->port(), port);
  ASSERT_TRUE(runUntil([&] { return client_->connected() && client_->spooled() == 0; }))
      << client_->status();
  EXPECT_TRUE(server_->registry().connected(kNode));

  EXPECT_THAT(store_->appliedReports(),
              ElementsAre("workers@1", "workers@2", "workers@3", "workers@4", "workers@5"));
  // Every numbered message, reports and usage alike, applied once and in order.
  uint64_t previous = 0;
  for (const auto& delivery : store_->deliveries()) {
    if (!delivery.applied) continue;
    EXPECT_GT(delivery.sequence, previous) << delivery.kind;
    previous = delivery.sequence;
  }
  const uint64_t stored = node().lastSequence;
  EXPECT_EQ(stored, previous);
  client_.reset();
  EXPECT_EQ(stored, spoolLastSequence());
}

TEST_F(FleetClientTest, AWrongCaPinNeverEnrolls) {
  FleetConfig wrong = config();
  wrong.caCertHash = "sha256:" + std::string(64, '0');
  startClient(std::move(wrong));
  ASSERT_TRUE(runUntil([&] { return client_->status().starts_with("not enrolled"); }))
      << client_->status();

  EXPECT_THAT(client_->status(), HasSubstr("not the pinned sha256:000"));
  EXPECT_FALSE(client_->connected());
  const IdentityFiles files = identityFiles(stateDir_);
  EXPECT_FALSE(std::filesystem::exists(files.key));
  EXPECT_FALSE(std::filesystem::exists(files.certificate));
  EXPECT_FALSE(std::filesystem::exists(files.ca));
  EXPECT_EQ(tokenUses(), 0u);
  auto record = store_->node(kNode);
  ASSERT_TRUE(record.isOk());
  EXPECT_FALSE(record->has_value());
}

TEST_F(FleetClientTest, AnUnknownTokenIsRefusedWithTheServersReason) {
  FleetConfig wrong = config();
  wrong.bootstrapToken = "zzzzzz.0123456789abcdef";
  startClient(std::move(wrong));
  ASSERT_TRUE(runUntil([&] { return client_->status().starts_with("not enrolled"); }))
      << client_->status();

  EXPECT_THAT(client_->status(), HasSubstr("no valid bootstrap token with id zzzzzz"));
  EXPECT_FALSE(client_->connected());
  const IdentityFiles files = identityFiles(stateDir_);
  EXPECT_FALSE(std::filesystem::exists(files.certificate));
  EXPECT_FALSE(std::filesystem::exists(files.ca));
  auto record = store_->node(kNode);
  ASSERT_TRUE(record.isOk());
  EXPECT_FALSE(record->has_value());
}

TEST_F(FleetClientTest, ARevokedNodeIsCutOffAndStaysOut) {
  startClient(config());
  ASSERT_TRUE(connect()) << client_->status();

  server_->revoke(kNode);
  ASSERT_TRUE(runUntil([&] { return client_->status().starts_with("refused"); }))
      << client_->status();
  EXPECT_THAT(client_->status(), HasSubstr("node node-1 was revoked"));
  EXPECT_FALSE(client_->connected());

  // It tries again later, and is turned away again; what it reports meanwhile
  // stays with it.
  report("workers@1");
  ASSERT_TRUE(runUntil([&] { return client_->status().starts_with("connecting"); }));
  ASSERT_TRUE(runUntil([&] { return client_->status().starts_with("refused"); }))
      << client_->status();
  EXPECT_THAT(client_->status(), HasSubstr("node node-1 was revoked"));
  EXPECT_FALSE(server_->registry().connected(kNode));
  EXPECT_GE(client_->spooled(), 1u);
  EXPECT_THAT(store_->appliedReports(), ::testing::IsEmpty());
}

TEST_F(FleetClientTest, ARestartedClientKeepsItsIdentity) {
  startClient(config());
  ASSERT_TRUE(connect()) << client_->status();
  report("workers@1");
  ASSERT_TRUE(runUntil([&] { return client_->spooled() == 0; })) << client_->status();
  const IdentityFiles files = identityFiles(stateDir_);
  const std::string certificate = readFile(files.certificate);
  const std::string serial = node().certificateSerial;
  ASSERT_EQ(tokenUses(), 1u);

  client_.reset();
  startClient(config());
  ASSERT_TRUE(connect()) << client_->status();

  EXPECT_EQ(tokenUses(), 1u);
  EXPECT_EQ(node().certificateSerial, serial);
  EXPECT_EQ(readFile(files.certificate), certificate);
  EXPECT_TRUE(server_->registry().connected(kNode));

  // Its numbering goes on from the last run's, so the server does not take
  // a new report for a resend of an old one.
  report("workers@2");
  ASSERT_TRUE(runUntil([&] { return client_->spooled() == 0; })) << client_->status();
  EXPECT_THAT(store_->appliedReports(), ElementsAre("workers@1", "workers@2"));
}

// The documented way to a new certificate: delete pki/node.crt and restart
// the agent. It enrolls again with the key it has and stays the same node.
TEST_F(FleetClientTest, ANodeThatLostItsCertificateEnrollsAgainWithItsKey) {
  startClient(config());
  ASSERT_TRUE(connect()) << client_->status();
  report("workers@1");
  ASSERT_TRUE(runUntil([&] { return client_->spooled() == 0; })) << client_->status();
  const IdentityFiles files = identityFiles(stateDir_);
  const std::string key = readFile(files.key);
  const std::string serial = node().certificateSerial;

  client_.reset();
  ASSERT_TRUE(std::filesystem::remove(files.certificate));
  startClient(config());
  ASSERT_TRUE(connect()) << client_->status();

  EXPECT_EQ(tokenUses(), 2u);
  EXPECT_EQ(readFile(files.key), key);
  EXPECT_NE(node().certificateSerial, serial);
  report("workers@2");
  ASSERT_TRUE(runUntil([&] { return client_->spooled() == 0; })) << client_->status();
  EXPECT_THAT(store_->appliedReports(), ElementsAre("workers@1", "workers@2"));
}

// A node whose spool is gone (wiped to free the disk, restored without it)
// but whose identity is kept numbers its messages from 1 again: the server
// takes them as new, not as resends of what it already stored.
TEST_F(FleetClientTest, ANodeThatLostItsSpoolHasItsNewReportsStored) {
  startClient(config());
  ASSERT_TRUE(connect()) << client_->status();
  for (int i = 1; i <= 3; ++i) report("workers@" + std::to_string(i));
  ASSERT_TRUE(runUntil([&] { return client_->spooled() == 0; })) << client_->status();

  client_.reset();
  std::filesystem::remove_all(stateDir_ + "/spool");
  startClient(config());
  ASSERT_TRUE(connect()) << client_->status();
  EXPECT_EQ(tokenUses(), 1u);

  report("workers@4");
  ASSERT_TRUE(runUntil([&] { return client_->spooled() == 0; })) << client_->status();
  EXPECT_THAT(store_->appliedReports(),
              ElementsAre("workers@1", "workers@2", "workers@3", "workers@4"));
  EXPECT_EQ(node().appliedVersion, "workers@4");
  client_.reset();
  EXPECT_EQ(node().lastSequence, spoolLastSequence());
}

}  // namespace
}  // namespace nodewarden::fleet
