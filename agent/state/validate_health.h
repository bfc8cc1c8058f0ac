#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "agent/core/clock.h"
#include "agent/core/status.h"
#include "agent/state/diagnostic.h"

namespace nodewarden::v1 {
class NodeState;
}

namespace nodewarden::state {

// What a probe's fields mean when they are left out (see state.proto). The
// checks here and the prober that runs probes read the same values.
inline constexpr core::Duration kDefaultProbeInterval = std::chrono::seconds(10);
inline constexpr core::Duration kDefaultProbeTimeout = std::chrono::seconds(2);
inline constexpr core::Duration kDefaultProbeInitialDelay = std::chrono::seconds(10);
inline constexpr uint32_t kDefaultFailureThreshold = 3;
inline constexpr uint32_t kDefaultSuccessThreshold = 1;

// A TCP probe's address taken apart: a Unix stream socket, or a numeric IP
// address and a port. "localhost" stands for 127.0.0.1, so that no name is
// ever resolved: probes target local endpoints, and a lookup would block the
// loop.
struct ProbeAddress {
  bool isUnix = false;
  std::string path;  // the socket's path, when isUnix
  std::string host;  // numeric: "127.0.0.1", "::1"
  bool isIpv6 = false;
  uint16_t port = 0;
};

// Reads "unix:/run/containerd/containerd.sock", "127.0.0.1:10250",
// "[::1]:443" or "localhost:8080". The error says what is wrong with it.
core::Result<ProbeAddress> parseProbeAddress(std::string_view address);

// Checks units[].probe and remediations, and appends what is wrong to
// `errors`: durations that parse and are positive (an initialDelay may be 0),
// a timeout no longer than the interval, one check per probe, URLs, status
// codes, local numeric addresses, absolute commands and files, probes only on
// units the agent keeps running; mounts, thresholds, journal sizes, and
// cleanup patterns that cannot reach the system's top-level directories.
void validateHealth(const v1::NodeState& state, const SourceMap& sources,
                    std::vector<Diagnostic>& errors);

}  // namespace nodewarden::state
