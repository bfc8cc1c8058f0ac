#pragma once

#include <grpc/grpc_security_constants.h>
#include <grpcpp/security/auth_context.h>
#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "server/store/sqlite_store.h"

namespace nodewarden::server::test {

// Lines 1 and 2 of every state document, so the lines under test start at 3.
inline constexpr std::string_view kStateHeader = "apiVersion: nodewarden.io/v1\nkind: NodeState\n";

// A state declaring each (path, content) as a file.
inline std::string stateWithFiles(const std::vector<std::pair<std::string, std::string>>& files) {
  std::string document(kStateHeader);
  document += "files:\n";
  for (const auto& [path, content] : files) {
    document += "  - path: " + path + "\n    content: \"" + content + "\"\n";
  }
  return document;
}

// A TLS peer as gRPC describes it to the service: its certificate, if any.
class FakeAuthContext final : public grpc::AuthContext {
 public:
  explicit FakeAuthContext(std::string certificatePem = "")
      : certificatePem_(std::move(certificatePem)) {}

  bool IsPeerAuthenticated() const override { return !certificatePem_.empty(); }
  std::vector<grpc::string_ref> GetPeerIdentity() const override { return {}; }
  std::string GetPeerIdentityPropertyName() const override { return ""; }
  std::vector<grpc::string_ref> FindPropertyValues(const std::string& name) const override {
    if (name != GRPC_X509_PEM_CERT_PROPERTY_NAME || certificatePem_.empty()) return {};
    return {grpc::string_ref(certificatePem_)};
  }
  grpc::AuthPropertyIterator begin() const override { return NoProperties(); }
  grpc::AuthPropertyIterator end() const override { return NoProperties(); }
  void AddProperty(const std::string&, const grpc::string_ref&) override {}
  bool SetPeerIdentityPropertyName(const std::string&) override { return false; }

 private:
  struct NoProperties : grpc::AuthPropertyIterator {};
  std::string certificatePem_;
};

// A store in memory, with tokens and nodes put straight into it.
class ServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto opened = SqliteStore::open(":memory:");
    ASSERT_TRUE(opened.isOk()) << opened.status().message();
    store_ = std::move(*opened);
  }

  // A token of `group` expiring `expires` from the machine's clock, which
  // the enrollment service checks tokens against.
  void putToken(const std::string& id, const std::string& secret, const std::string& group,
                std::chrono::system_clock::duration expires = std::chrono::hours(1),
                uint32_t usageLimit = 0, const Labels& labels = {}) {
    TokenRecord token;
    token.id = id;
    token.secret = secret;
    token.group = group;
    token.labels = labels;
    token.created = std::chrono::system_clock::now();
    token.expires = token.created + expires;
    token.usageLimit = usageLimit;
    ASSERT_TRUE(store_->putToken(token).isOk());
  }

  // Enrolls `node` into `group` at `now` with a token of its own.
  void enroll(const std::string& node, const std::string& group,
              Time now = std::chrono::system_clock::now()) {
    TokenRecord token;
    token.id = "t-" + node;
    token.secret = "secret";
    token.group = group;
    token.created = now;
    token.expires = Time::max();
    ASSERT_TRUE(store_->putToken(token).isOk());
    auto enrolled = store_->enroll(
        Enrollment{token.id, node, "serial-" + node, now + std::chrono::hours(24), {}}, now);
    ASSERT_TRUE(enrolled.isOk()) << enrolled.status().message();
  }

  NodeRecord nodeRecord(const std::string& name) {
    auto node = store_->node(name);
    EXPECT_TRUE(node.isOk() && node->has_value()) << "no node " << name;
    return node.isOk() && node->has_value() ? **node : NodeRecord{};
  }

  std::unique_ptr<SqliteStore> store_;
};

}  // namespace nodewarden::server::test
