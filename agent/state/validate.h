#pragma once

#include <cstddef>
#include <vector>

#include "agent/state/diagnostic.h"

namespace nodewarden::v1 {
class NodeState;
}

namespace nodewarden::state {

// Inline content (a file's content or decoded contentBase64, a unit's or a
// drop-in's content) is bounded so that a state stays small enough to cache,
// send and diff; larger payloads belong in packages.
inline constexpr size_t kMaxContentBytes = 1 << 20;

// Checks what the schema cannot express: normalized absolute paths, systemd
// unit and drop-in names, modes, owner and group syntax, content sizes and
// base64, package names and versions, artifacts' https URLs and digests,
// kernel parameter and module names; no path declared twice (units' files and
// drop-ins under /etc/systemd/system, artifacts, and the agent's own files for
// sysctls and kernelModules included); restartOn naming declared files,
// artifacts, unit files, drop-ins or packages. Every state goes through it
// before it is used: one from YAML with the loader's `sources`, so that errors
// carry positions, and one from the server with an empty SourceMap. Whether
// owners and groups exist is for the converge planner to find out, on the
// machine, at apply time.
std::vector<Diagnostic> validate(const v1::NodeState& state, const SourceMap& sources);

}  // namespace nodewarden::state
