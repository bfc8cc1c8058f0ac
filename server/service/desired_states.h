#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "agent/core/status.h"
#include "nodewarden/v1/control.pb.h"
#include "nodewarden/v1/state.pb.h"
#include "server/store/store.h"

namespace nodewarden::server {

// The desired states the server holds: each group's state and each node's
// overrides, parsed once, and what a node of a group gets (the group's state
// with the node's overrides merged on top, as a versioned document).
// Thread-safe.
class DesiredStates final {
 public:
  explicit DesiredStates(Store& store) : store_(store) {}

  // Reads every stored state; a stored document that no longer loads (written
  // by an older server) is logged and left out.
  [[nodiscard]] core::Status load();

  // Validates `document` with the agent's loader and stores it as the next
  // revision of group `group`'s state, or (with `node` set) of that node's
  // overrides. Nothing is stored when the document, or a merge it takes part
  // in, is invalid: the error lists every problem as file:line:column.
  [[nodiscard]] core::Result<int64_t> set(const std::string& group, const std::string& node,
                                          std::string_view document, const std::string& fileName,
                                          std::chrono::system_clock::time_point now);

  // What node `node` of group `group` is to enforce; nothing when neither its
  // group nor the node has a state.
  std::optional<v1::DesiredState> forNode(const std::string& node, const std::string& group) const;

 private:
  struct Entry {
    int64_t revision = 0;
    v1::NodeState state;
    std::string document;  // the state as sent, for a group without overrides
  };

  std::optional<v1::DesiredState> mergedLocked(const std::string& node,
                                               const std::string& group) const;

  Store& store_;
  mutable std::mutex mutex_;
  std::map<std::string, Entry> groups_;
  std::map<std::string, Entry> nodes_;
};

}  // namespace nodewarden::server
