#pragma once

#include <chrono>

// HTTP/2 keepalive of the node stream, one set of numbers for both ends: the
// agent pings every kPingInterval when the connection is quiet and gives up
// after kPingTimeout; the server accepts pings down to kMinPingInterval
// (below the agent's, so it never takes the agent for abusive) and pings the
// agent itself every kServerPingInterval. A dead peer is noticed in about
// 40 s either way, well inside the 2 minutes after which a node counts as
// not seen.
namespace nodewarden::fleet::keepalive {

inline constexpr std::chrono::milliseconds kPingInterval = std::chrono::seconds(30);
inline constexpr std::chrono::milliseconds kPingTimeout = std::chrono::seconds(10);
inline constexpr std::chrono::milliseconds kMinPingInterval = std::chrono::seconds(20);
inline constexpr std::chrono::milliseconds kServerPingInterval = std::chrono::seconds(60);
inline constexpr std::chrono::milliseconds kServerPingTimeout = std::chrono::seconds(20);

}  // namespace nodewarden::fleet::keepalive
