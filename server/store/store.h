#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "agent/core/status.h"

namespace nodewarden::server {

using Labels = std::map<std::string, std::string>;
using Time = std::chrono::system_clock::time_point;

// A bootstrap token: what a new node presents to enroll. `secret` is
// what it proves itself with; `id` names the token in logs and messages.
struct TokenRecord {
  std::string id;
  std::string secret;
  std::string group;  // the group its nodes join
  Labels labels;      // given to its nodes, under their own
  std::string description;
  Time created;
  Time expires;             // refused from this moment on; Time::max(): never
  uint32_t usageLimit = 0;  // 0: no limit
  uint32_t uses = 0;
};

// An enrolled node and the latest of what it told the server. The blobs are
// serialized protobuf messages the server owns; the store keeps their bytes.
struct NodeRecord {
  std::string name;
  std::string group;
  Labels labels;
  Time enrolled;  // its first enrollment
  Time lastSeen;
  std::string certificateSerial;  // the one certificate the server honours for it
  Time certificateExpires;
  bool revoked = false;
  std::string desiredVersion;
  std::string appliedVersion;
  std::string lastResult;
  std::string facts;          // blob
  std::string conditions;     // blob
  std::string usage;          // blob
  std::string lastReport;     // blob
  uint64_t lastSequence = 0;  // of the last message applied, for exactly-once
  uint64_t dropped = 0;       // messages the node had to drop, summed
  std::string keyPin;         // "sha256:..." of the key its certificate is for
};

// A desired-state document for a group (node empty) or a node's override
// (group empty), with a revision that grows by one with each put.
struct StateRecord {
  std::string group;
  std::string node;
  int64_t revision = 0;
  std::string document;
  Time updated;
};

// A problem the server noticed; at most one unresolved per node and kind.
struct AlertRecord {
  int64_t id = 0;
  std::string node;
  std::string group;
  std::string kind;
  std::string message;
  Time since;
  std::optional<Time> resolved;
};

// A node asking to enroll with a bootstrap token, with the certificate the
// server is about to issue it.
struct Enrollment {
  std::string tokenId;
  std::string nodeName;
  std::string certificateSerial;
  Time certificateExpires;
  Labels labels;       // the node's own, merged over the token's
  std::string keyPin;  // of the key the CSR is for
};

// A node sending events without end cannot fill the disk.
inline constexpr size_t kMaxEventsPerNode = 200;
// Resolved alerts are history; the newest this many are kept.
inline constexpr size_t kMaxResolvedAlerts = 1000;

// The control plane's durable data: tokens, nodes and what they report,
// desired states and alerts. Implementations are safe to call from many
// threads at once. Times are the caller's; the store never reads a clock.
class Store {
 public:
  virtual ~Store() = default;

  // Tokens.
  // Adds a token; kInvalidArgument "token X exists" when the id is taken.
  [[nodiscard]] virtual core::Status putToken(const TokenRecord& token) = 0;
  // Every token, oldest first.
  virtual core::Result<std::vector<TokenRecord>> tokens() = 0;
  virtual core::Result<std::optional<TokenRecord>> token(const std::string& id) = 0;
  // kNotFound when there is no such token. Nodes it enrolled stay enrolled.
  [[nodiscard]] virtual core::Status deleteToken(const std::string& id) = 0;

  // Nodes.
  // In one transaction: checks the token (known, not expired at `now`, not
  // used up) and that the node was not revoked, counts the use, and inserts
  // the node or re-enrolls it (new certificate, group and labels from the
  // token and enrollment; its sequence kept). Nothing changes when refused.
  virtual core::Result<NodeRecord> enroll(const Enrollment& enrollment, Time now) = 0;
  virtual core::Result<std::optional<NodeRecord>> node(const std::string& name) = 0;
  // Every node, ordered by name.
  virtual core::Result<std::vector<NodeRecord>> nodes() = 0;
  // The node can never enroll again and its certificate is no longer honoured;
  // kNotFound when unknown.
  [[nodiscard]] virtual core::Status revokeNode(const std::string& name) = 0;
  // True when `serial` is not the current certificate of any non-revoked node:
  // its node is gone, revoked, or re-enrolled with a newer certificate.
  virtual core::Result<bool> isRevokedSerial(const std::string& serial) = 0;

  // Updates without a sequence; each is kNotFound for an unknown node.
  // Stores the facts a node sends when it connects, and marks it seen.
  [[nodiscard]] virtual core::Status recordHello(const std::string& node, const std::string& facts,
                                                 Time now) = 0;
  // Marks the node seen at `now`.
  [[nodiscard]] virtual core::Status touch(const std::string& node, Time now) = 0;
  // The node numbers its messages from `lastSequence` on, below what was
  // applied (its spool was lost: a reinstalled machine): sets lastSequence.
  [[nodiscard]] virtual core::Status restartSequence(const std::string& node,
                                                     uint64_t lastSequence) = 0;
  // The version of the desired state the node should be running.
  [[nodiscard]] virtual core::Status setDesiredVersion(const std::string& node,
                                                       const std::string& version) = 0;

  // Messages from a node, applied exactly once: each returns false and
  // changes nothing when `sequence` is not above the node's lastSequence (a
  // resend); otherwise applies the message, sets lastSequence to `sequence`
  // and lastSeen to `now`, and returns true, all in one transaction.
  virtual core::Result<bool> recordReport(const std::string& node, uint64_t sequence,
                                          const std::string& report,
                                          const std::string& appliedVersion,
                                          const std::string& result, Time now) = 0;
  // Replaces the node's conditions and appends `events`, keeping the newest
  // kMaxEventsPerNode.
  virtual core::Result<bool> recordHealth(const std::string& node, uint64_t sequence,
                                          const std::string& conditions,
                                          const std::vector<std::pair<Time, std::string>>& events,
                                          Time now) = 0;
  virtual core::Result<bool> recordUsage(const std::string& node, uint64_t sequence,
                                         const std::string& usage, Time now) = 0;
  // Adds `count` to the node's dropped messages.
  virtual core::Result<bool> recordDropped(const std::string& node, uint64_t sequence,
                                           uint64_t count, Time now) = 0;

  // The node's newest `limit` events, oldest first; none for an unknown node.
  virtual core::Result<std::vector<std::string>> events(const std::string& node, size_t limit) = 0;

  // Desired states.
  // Stores the state of `group` (node empty) or the override of `node` (node
  // set: the group is ignored and stored empty, so a node has one override
  // whatever group it is in). Returns the new revision, 1 for the first.
  virtual core::Result<int64_t> putState(const std::string& group, const std::string& node,
                                         const std::string& document, Time now) = 0;
  virtual core::Result<std::optional<StateRecord>> groupState(const std::string& group) = 0;
  virtual core::Result<std::optional<StateRecord>> nodeState(const std::string& node) = 0;
  // Every state, ordered by group then node: nodes' overrides first.
  virtual core::Result<std::vector<StateRecord>> states() = 0;

  // Alerts.
  // Inserts the alert, unresolved, and returns true; when an unresolved alert
  // of the same node and kind exists, updates its message and returns false.
  virtual core::Result<bool> raiseAlert(const AlertRecord& alert) = 0;
  // Resolves the node's unresolved alert of `kind`; false when there is none.
  // Only the newest kMaxResolvedAlerts resolved alerts are kept.
  virtual core::Result<bool> resolveAlert(const std::string& node, const std::string& kind,
                                          Time now) = 0;
  // Newest first.
  virtual core::Result<std::vector<AlertRecord>> alerts(bool includeResolved) = 0;
};

}  // namespace nodewarden::server
