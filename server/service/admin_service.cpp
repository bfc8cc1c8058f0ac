#include "server/service/admin_service.h"

#include "agent/core/log.h"
#include "agent/pki/random_token.h"

namespace nodewarden::server {

namespace {

const auto kLog = core::log::category("admin");

constexpr auto kDefaultTokenTtl = std::chrono::hours(24);
constexpr std::string_view kTokenAlphabet = "abcdefghijklmnopqrstuvwxyz0123456789";
constexpr size_t kEventsShown = 50;

int64_t micros(std::chrono::system_clock::time_point time) {
  return std::chrono::duration_cast<std::chrono::microseconds>(time.time_since_epoch()).count();
}

grpc::Status fromStore(const core::Status& status) {
  switch (status.code()) {
    case core::Status::Code::kNotFound:
      return grpc::Status(grpc::StatusCode::NOT_FOUND, status.message());
    case core::Status::Code::kInvalidArgument:
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, status.message());
    case core::Status::Code::kFailedPrecondition:
      return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, status.message());
    default:
      return grpc::Status(grpc::StatusCode::INTERNAL, status.message());
  }
}

v1::TokenInfo describeToken(const TokenRecord& token) {
  v1::TokenInfo info;
  info.set_id(token.id);
  info.set_group(token.group);
  info.mutable_labels()->insert(token.labels.begin(), token.labels.end());
  info.set_expires_us(micros(token.expires));
  info.set_usage_limit(token.usageLimit);
  info.set_uses(token.uses);
  info.set_description(token.description);
  return info;
}

}  // namespace

grpc::Status AdminService::CreateToken(grpc::ServerContext*, const v1::CreateTokenRequest* request,
                                       v1::TokenInfo* response) {
  if (request->group().empty()) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        "a token names the group it enrolls into");
  }
  // Ten years: a token outliving the CA that signs its nodes is a mistake.
  constexpr int64_t kMaxTtlSeconds = int64_t{10} * 366 * 24 * 3600;
  if (request->ttl_seconds() < 0 || request->ttl_seconds() > kMaxTtlSeconds) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        "a token's TTL is positive and at most 3660d (ten years)");
  }
  const auto now = std::chrono::system_clock::now();
  auto id = pki::randomToken(6, kTokenAlphabet);
  auto secret = pki::randomToken(16, kTokenAlphabet);
  if (!id || !secret) {
    return grpc::Status(grpc::StatusCode::INTERNAL,
                        (!id ? id.status() : secret.status()).message());
  }
  TokenRecord token;
  token.id = std::move(*id);
  token.secret = std::move(*secret);
  token.group = request->group();
  token.labels = Labels(request->labels().begin(), request->labels().end());
  token.description = request->description();
  token.created = now;
  token.expires =
      now +
      (request->ttl_seconds() > 0
           ? std::chrono::duration_cast<std::chrono::system_clock::duration>(
                 std::chrono::seconds(request->ttl_seconds()))
           : std::chrono::duration_cast<std::chrono::system_clock::duration>(kDefaultTokenTtl));
  token.usageLimit = request->usage_limit();
  if (core::Status s = store_.putToken(token); !s) return fromStore(s);
  NW_LOG(kLog, info, "Created bootstrap token {} for group {}", token.id, token.group);
  *response = describeToken(token);
  response->set_token(token.id + "." + token.secret);
  return grpc::Status::OK;
}

grpc::Status AdminService::ListTokens(grpc::ServerContext*, const v1::ListTokensRequest*,
                                      v1::ListTokensResponse* response) {
  auto tokens = store_.tokens();
  if (!tokens) return fromStore(tokens.status());
  for (const auto& token : *tokens) *response->add_tokens() = describeToken(token);
  return grpc::Status::OK;
}

grpc::Status AdminService::SetState(grpc::ServerContext*, const v1::SetStateRequest* request,
                                    v1::SetStateResponse* response) {
  const std::string fileName = request->file_name().empty() ? "state" : request->file_name();
  auto revision = states_.set(request->group(), request->node(), request->document(), fileName,
                              std::chrono::system_clock::now());
  if (!revision) return fromStore(revision.status());
  response->set_revision(*revision);

  // Every connected node the change reaches gets its new merged state.
  std::string group = request->group();
  if (!request->node().empty()) {
    auto node = store_.node(request->node());
    if (!node) return fromStore(node.status());
    if (!*node) return grpc::Status::OK;  // enrolls later and gets it then
    group = (*node)->group;
  }
  const std::string onlyNode = request->node();
  const size_t pushed = registry_.sendToGroup(
      group,
      [&](const std::string& name,
          const std::string& nodeGroup) -> std::optional<v1::ServerMessage> {
        if (!onlyNode.empty() && name != onlyNode) return std::nullopt;
        auto desired = states_.forNode(name, nodeGroup);
        if (!desired) return std::nullopt;
        if (core::Status s = store_.setDesiredVersion(name, desired->version()); !s) {
          NW_LOG(kLog, err, "Failed to record what node {} was sent: {}, ignoring", name,
                 s.message());
        }
        v1::ServerMessage message;
        *message.mutable_desired_state() = std::move(*desired);
        return message;
      });
  response->set_pushed(pushed);
  NW_LOG(kLog, info, "Stored revision {} of {} {}; sent to {} connected nodes", *revision,
         onlyNode.empty() ? "group" : "node", onlyNode.empty() ? group : onlyNode, pushed);
  return grpc::Status::OK;
}

grpc::Status AdminService::GetState(grpc::ServerContext*, const v1::GetStateRequest* request,
                                    v1::GetStateResponse* response) {
  auto states = store_.states();
  if (!states) return fromStore(states.status());
  for (const auto& state : *states) {
    if (!request->group().empty() && state.group != request->group()) continue;
    if (!request->node().empty() && state.node != request->node()) continue;
    auto* out = response->add_states();
    out->set_group(state.group);
    out->set_node(state.node);
    out->set_revision(state.revision);
    out->set_document(state.document);
    out->set_updated_us(micros(state.updated));
  }
  return grpc::Status::OK;
}

v1::NodeInfo AdminService::describe(const NodeRecord& record) const {
  v1::NodeInfo info;
  info.set_name(record.name);
  info.set_group(record.group);
  info.mutable_labels()->insert(record.labels.begin(), record.labels.end());
  info.set_enrolled_us(micros(record.enrolled));
  info.set_last_seen_us(micros(record.lastSeen));
  info.set_connected(registry_.connected(record.name));
  info.set_revoked(record.revoked);
  info.set_desired_version(record.desiredVersion);
  info.set_applied_version(record.appliedVersion);
  info.set_last_result(record.lastResult);
  info.set_certificate_expires_us(micros(record.certificateExpires));
  info.set_dropped(record.dropped);
  (void)info.mutable_facts()->ParseFromString(record.facts);
  v1::HealthUpdate health;
  if (health.ParseFromString(record.conditions)) {
    *info.mutable_conditions() = std::move(*health.mutable_conditions());
  }
  (void)info.mutable_usage()->ParseFromString(record.usage);
  (void)info.mutable_last_report()->ParseFromString(record.lastReport);
  return info;
}

grpc::Status AdminService::ListNodes(grpc::ServerContext*, const v1::ListNodesRequest*,
                                     v1::ListNodesResponse* response) {
  auto nodes = store_.nodes();
  if (!nodes) return fromStore(nodes.status());
  for (const auto& node : *nodes) {
    v1::NodeInfo info = describe(node);
    // The list shows the summary; `nodes show` the whole report.
    info.clear_last_report();
    *response->add_nodes() = std::move(info);
  }
  return grpc::Status::OK;
}

grpc::Status AdminService::GetNode(grpc::ServerContext*, const v1::GetNodeRequest* request,
                                   v1::NodeInfo* response) {
  auto node = store_.node(request->name());
  if (!node) return fromStore(node.status());
  if (!*node) {
    return grpc::Status(grpc::StatusCode::NOT_FOUND, "no node " + request->name());
  }
  *response = describe(**node);
  auto events = store_.events(request->name(), kEventsShown);
  if (!events) return fromStore(events.status());
  for (const auto& event : *events) (void)response->add_events()->ParseFromString(event);
  return grpc::Status::OK;
}

grpc::Status AdminService::RevokeNode(grpc::ServerContext*, const v1::RevokeNodeRequest* request,
                                      v1::RevokeNodeResponse*) {
  if (core::Status s = store_.revokeNode(request->name()); !s) return fromStore(s);
  registry_.close(request->name(), grpc::Status(grpc::StatusCode::PERMISSION_DENIED,
                                                "node " + request->name() + " was revoked"));
  NW_LOG(kLog, warn, "Revoked node {}", request->name());
  return grpc::Status::OK;
}

grpc::Status AdminService::ListAlerts(grpc::ServerContext*, const v1::ListAlertsRequest* request,
                                      v1::ListAlertsResponse* response) {
  auto alerts = store_.alerts(request->all());
  if (!alerts) return fromStore(alerts.status());
  for (const auto& alert : *alerts) {
    auto* out = response->add_alerts();
    out->set_node(alert.node);
    out->set_group(alert.group);
    out->set_kind(alert.kind);
    out->set_message(alert.message);
    out->set_since_us(micros(alert.since));
    if (alert.resolved) out->set_resolved_us(micros(*alert.resolved));
  }
  return grpc::Status::OK;
}

}  // namespace nodewarden::server
