#include "agent/pki/bootstrap_token.h"

#include <algorithm>

namespace nodewarden::pki {

namespace {

bool lowerAlphanumeric(std::string_view text) {
  return std::all_of(text.begin(), text.end(),
                     [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); });
}

}  // namespace

std::optional<BootstrapToken> parseBootstrapToken(std::string_view text) {
  if (text.size() != 23 || text[6] != '.') return std::nullopt;
  BootstrapToken token{std::string(text.substr(0, 6)), std::string(text.substr(7))};
  if (!lowerAlphanumeric(token.id) || !lowerAlphanumeric(token.secret)) return std::nullopt;
  return token;
}

}  // namespace nodewarden::pki
