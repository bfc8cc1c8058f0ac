#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "agent/state/diagnostic.h"
#include "nodewarden/v1/state.pb.h"

namespace nodewarden::state {

// Larger documents are refused before parsing; inline content has its own
// limit (kMaxContentBytes in validate.h).
inline constexpr size_t kMaxDocumentBytes = 16 << 20;

// Past this many, the rest are counted in one last diagnostic: a broken
// generator can make a document with an error on every line.
inline constexpr size_t kMaxDiagnostics = 100;

inline constexpr std::string_view kApiVersion = "nodewarden.io/v1";
inline constexpr std::string_view kKind = "NodeState";

// A desired state read from YAML: the state when it is valid, otherwise every
// problem found, sorted by position. Never both.
struct LoadResult {
  std::optional<v1::NodeState> state;
  std::vector<Diagnostic> errors;

  bool ok() const { return state.has_value(); }
};

// Reads, parses, maps and validates a NodeState document (see state.proto for
// the fields; YAML keys are their JSON names). The state holds what the
// document says and nothing more: fields it leaves out keep proto defaults.
// A file that cannot be read gives one diagnostic whose message names it.
LoadResult loadFile(const std::string& path);

// The same for text already in memory; `name` stands for the file in
// diagnostics.
LoadResult loadString(std::string_view yaml, const std::string& name);

// Maps any schema message (the agent's own configuration, say) from YAML the
// same way, with the same positioned errors, but none of NodeState's checks.
// Returns the problems found; none means `message` holds the document.
std::vector<Diagnostic> loadMessage(std::string_view yaml, const std::string& name,
                                    google::protobuf::Message& message);

}  // namespace nodewarden::state
