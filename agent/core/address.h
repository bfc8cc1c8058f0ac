#pragma once

#include <string_view>

namespace nodewarden::core {

enum class HostPart { kRequired, kOptional };

// Whether `text` is "host:port" (the port all digits; the host anything
// before the last colon, so "[::1]:9443" too). With kOptional, ":9443"
// (every address) passes as well.
bool isHostPort(std::string_view text, HostPart host = HostPart::kRequired);

}  // namespace nodewarden::core
