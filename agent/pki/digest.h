#pragma once

#include <string>
#include <string_view>

namespace nodewarden::pki {

// Lowercase hex of `bytes`.
std::string toHex(std::string_view bytes);

// Lowercase hex of the SHA-256 of `data`.
std::string sha256Hex(std::string_view data);

// Lowercase hex of HMAC-SHA-256(key, data), as bootstrap tokens are checked.
std::string hmacSha256Hex(std::string_view key, std::string_view data);

// Compares secrets in time that depends on their length only, so that a
// caller guessing a token learns nothing from how fast it is refused.
// Different lengths are unequal.
bool equalConstantTime(std::string_view a, std::string_view b);

}  // namespace nodewarden::pki
