#include "agent/state/merge.h"

#include <string>
#include <unordered_map>
#include <unordered_set>

namespace nodewarden::state {

namespace {

// Entries are found through an index, not a scan per override entry: both
// lists can hold thousands.
template <typename Entry, typename Identity>
void replaceOrAppend(google::protobuf::RepeatedPtrField<Entry>& merged,
                     const google::protobuf::RepeatedPtrField<Entry>& overrides,
                     Identity identity) {
  std::unordered_map<std::string, int> indexOf;
  for (int i = 0; i < merged.size(); ++i) indexOf.try_emplace(identity(merged.Get(i)), i);
  for (const Entry& entry : overrides) {
    auto [at, added] = indexOf.try_emplace(identity(entry), merged.size());
    if (added) {
      *merged.Add() = entry;
    } else {
      *merged.Mutable(at->second) = entry;
    }
  }
}

void mergeMap(google::protobuf::Map<std::string, std::string>& merged,
              const google::protobuf::Map<std::string, std::string>& overrides) {
  for (const auto& [key, value] : overrides) merged[key] = value;
}

}  // namespace

v1::NodeState mergeOverrides(const v1::NodeState& base, const v1::NodeState& overrides) {
  v1::NodeState merged = base;
  if (!overrides.api_version().empty()) merged.set_api_version(overrides.api_version());
  if (!overrides.kind().empty()) merged.set_kind(overrides.kind());
  if (overrides.has_metadata()) {
    v1::Metadata& metadata = *merged.mutable_metadata();
    if (!overrides.metadata().name().empty()) metadata.set_name(overrides.metadata().name());
    mergeMap(*metadata.mutable_labels(), overrides.metadata().labels());
  }

  const auto path = [](const auto& entry) { return entry.path(); };
  const auto name = [](const auto& entry) { return entry.name(); };
  replaceOrAppend(*merged.mutable_directories(), overrides.directories(), path);
  replaceOrAppend(*merged.mutable_files(), overrides.files(), path);
  replaceOrAppend(*merged.mutable_units(), overrides.units(), name);
  replaceOrAppend(*merged.mutable_packages(), overrides.packages(), name);
  replaceOrAppend(*merged.mutable_artifacts(), overrides.artifacts(), path);

  mergeMap(*merged.mutable_sysctls(), overrides.sysctls());

  std::unordered_set<std::string> modules(merged.kernel_modules().begin(),
                                          merged.kernel_modules().end());
  for (const std::string& module : overrides.kernel_modules()) {
    if (modules.insert(module).second) merged.add_kernel_modules(module);
  }

  if (overrides.has_remediations()) *merged.mutable_remediations() = overrides.remediations();
  return merged;
}

}  // namespace nodewarden::state
