#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "agent/state/diagnostic.h"

namespace google::protobuf {
class Message;
}

namespace nodewarden::state {

class YamlNode;

// Internal to agent/state: the loader's YAML → proto step.

// Aliases let a small document name the same node many times (or itself), so
// the work of mapping has bounds of its own besides the document's size.
struct MappingLimits {
  size_t maxNodes = 0;
  size_t maxBytes = 0;  // string bytes copied into the message
};

struct MappingOutcome {
  std::vector<Diagnostic> errors;
  // False when mapping stopped part-way (at the limits): what is in the
  // message then says nothing about the document.
  bool complete = true;
};

// Fills `message` from the YAML mapping `node` by protobuf reflection: keys are
// the fields' JSON names, scalars convert to the field's type, sequences to
// repeated fields, mappings to messages and string maps. Records where each
// field was written in `sources` and collects every problem found.
// A field that fails keeps its default, and a repeated field gets a default
// element in its place, so that indices still match the document.
MappingOutcome mapYaml(const YamlNode& node, google::protobuf::Message& message,
                       const MappingLimits& limits, SourceMap& sources);

// The candidate `name` is most likely a typo of, if any is close enough: at
// most a third of the longer one differs, ignoring case, '_' and '-'
// ("contnet" → "content", "restart_on" → "restartOn").
std::optional<std::string> nearestName(std::string_view name,
                                       const std::vector<std::string>& candidates);

}  // namespace nodewarden::state
