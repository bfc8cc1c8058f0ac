#pragma once

#include <string>
#include <string_view>

#include "agent/core/status.h"

namespace nodewarden::pki {

// What bootstrap tokens are made of.
inline constexpr std::string_view kTokenAlphabet = "abcdefghijklmnopqrstuvwxyz0123456789";

// `length` characters drawn uniformly from `alphabet` (1 to 256 distinct
// characters) by OpenSSL's CSPRNG. Fails only when the CSPRNG cannot be
// seeded, or for an alphabet out of range.
core::Result<std::string> randomToken(size_t length, std::string_view alphabet = kTokenAlphabet);

}  // namespace nodewarden::pki
