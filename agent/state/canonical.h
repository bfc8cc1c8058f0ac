#pragma once

#include <string>

#include "nodewarden/v1/state.pb.h"

namespace nodewarden::state {

// Bytes that are equal exactly when two states are equal, whether they came
// from YAML (however it was spelled: key order, quoting, 0644 or "644") or
// from the server: deterministic serialization fixes the order of map
// entries. For telling whether a new state differs from the last applied one,
// and for hashing.
std::string canonicalBytes(const v1::NodeState& state);

}  // namespace nodewarden::state
