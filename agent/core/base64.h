#pragma once

#include <string>
#include <string_view>

#include "agent/core/status.h"

namespace nodewarden::core {

// Decodes standard base64 (RFC 4648, padding optional, whitespace ignored).
Result<std::string> decodeBase64(std::string_view text);

}  // namespace nodewarden::core
