#include "agent/pki/random_token.h"

#include <openssl/rand.h>

#include <array>

#include "agent/pki/openssl_error.h"

namespace nodewarden::pki {

core::Result<std::string> randomToken(size_t length, std::string_view alphabet) {
  if (alphabet.empty() || alphabet.size() > 256) {
    return core::Status::invalidArgument(
        "random token: the alphabet must have 1 to 256 characters, not " +
        std::to_string(alphabet.size()));
  }
  clearOpenSslErrors();
  // Bytes at or above the largest multiple of the alphabet's size are
  // dropped: mapping them too would make the first characters likelier.
  const unsigned size = static_cast<unsigned>(alphabet.size());
  const unsigned limit = 256 - 256 % size;
  std::string token;
  token.reserve(length);
  std::array<unsigned char, 64> bytes;
  while (token.size() < length) {
    if (RAND_bytes(bytes.data(), static_cast<int>(bytes.size())) != 1) {
      return core::Status::internal(openSslError("random token", "RAND_bytes"));
    }
    for (unsigned char byte : bytes) {
      if (token.size() == length) break;
      if (byte < limit) token += alphabet[byte % size];
    }
  }
  return token;
}

}  // namespace nodewarden::pki
