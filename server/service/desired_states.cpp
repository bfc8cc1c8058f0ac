#include "server/service/desired_states.h"

#include "agent/core/log.h"
#include "agent/state/document.h"
#include "agent/state/loader.h"
#include "agent/state/merge.h"

namespace nodewarden::server {

namespace {

const auto kLog = core::log::category("state");

std::string joinErrors(const std::vector<state::Diagnostic>& errors) {
  std::string out;
  for (const auto& error : errors) out += (out.empty() ? "" : "\n") + error.toString();
  return out;
}

}  // namespace

core::Status DesiredStates::load() {
  auto stored = store_.states();
  if (!stored) return stored.status();
  std::lock_guard lock(mutex_);
  for (const StateRecord& record : *stored) {
    const bool isNode = !record.node.empty();
    const std::string name = isNode ? record.node : record.group;
    state::LoadResult loaded =
        state::loadString(record.document, (isNode ? "node " : "group ") + name);
    if (!loaded.ok()) {
      NW_LOG(kLog, err, "Stored state of {} {} (revision {}) is not valid: {}, ignoring",
             isNode ? "node" : "group", name, record.revision, joinErrors(loaded.errors));
      continue;
    }
    Entry entry{record.revision, std::move(*loaded.state), {}};
    entry.document = state::toDocument(entry.state);
    (isNode ? nodes_ : groups_)[name] = std::move(entry);
  }
  return core::Status::ok();
}

core::Result<int64_t> DesiredStates::set(const std::string& group, const std::string& node,
                                         std::string_view document, const std::string& fileName,
                                         std::chrono::system_clock::time_point now) {
  if (group.empty() == node.empty()) {
    return core::Status::invalidArgument("name either a group or a node");
  }
  state::LoadResult loaded = state::loadString(document, fileName);
  if (!loaded.ok()) return core::Status::invalidArgument(joinErrors(loaded.errors));

  std::lock_guard lock(mutex_);
  // A state must also hold up merged with the overrides it meets.
  std::vector<std::pair<std::string, const v1::NodeState*>> merges;
  std::map<std::string, std::string> groupOf;
  if (!node.empty()) {
    auto record = store_.node(node);
    if (!record) return record.status();
    if (*record) {
      if (auto base = groups_.find((*record)->group); base != groups_.end()) {
        merges.emplace_back(node, &base->second.state);
      }
    }
  } else {
    auto records = store_.nodes();
    if (!records) return records.status();
    for (const NodeRecord& record : *records) {
      if (record.group == group && nodes_.contains(record.name)) {
        merges.emplace_back(record.name, &nodes_.at(record.name).state);
      }
    }
  }
  for (const auto& [name, other] : merges) {
    const v1::NodeState merged = node.empty() ? state::mergeOverrides(*loaded.state, *other)
                                              : state::mergeOverrides(*other, *loaded.state);
    state::LoadResult check =
        state::loadString(state::toDocument(merged), fileName + " merged for node " + name);
    if (!check.ok()) return core::Status::invalidArgument(joinErrors(check.errors));
  }

  auto revision = store_.putState(node.empty() ? group : "", node, std::string(document), now);
  if (!revision) return revision.status();
  Entry entry{*revision, std::move(*loaded.state), {}};
  entry.document = state::toDocument(entry.state);
  (node.empty() ? groups_[group] : nodes_[node]) = std::move(entry);
  return *revision;
}

std::optional<v1::DesiredState> DesiredStates::forNode(const std::string& node,
                                                       const std::string& group) const {
  std::lock_guard lock(mutex_);
  return mergedLocked(node, group);
}

std::optional<v1::DesiredState> DesiredStates::mergedLocked(const std::string& node,
                                                            const std::string& group) const {
  const auto base = groups_.find(group);
  const auto overrides = nodes_.find(node);
  if (base == groups_.end() && overrides == nodes_.end()) return std::nullopt;
  v1::DesiredState out;
  if (overrides == nodes_.end()) {
    out.set_version(group + "@" + std::to_string(base->second.revision));
    out.set_document(base->second.document);
    return out;
  }
  if (base == groups_.end()) {
    out.set_version(node + "@" + std::to_string(overrides->second.revision));
    out.set_document(overrides->second.document);
    return out;
  }
  out.set_version(group + "@" + std::to_string(base->second.revision) + "+" + node + "@" +
                  std::to_string(overrides->second.revision));
  out.set_document(
      state::toDocument(state::mergeOverrides(base->second.state, overrides->second.state)));
  return out;
}

}  // namespace nodewarden::server
