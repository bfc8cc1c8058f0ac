#include "agent/pki/digest.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <cassert>
#include <climits>

#include "agent/pki/openssl_error.h"

namespace nodewarden::pki {

std::string toHex(std::string_view bytes) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex;
  hex.reserve(bytes.size() * 2);
  for (unsigned char byte : bytes) {
    hex += kHex[byte >> 4];
    hex += kHex[byte & 0xf];
  }
  return hex;
}

std::string sha256Hex(std::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned length = 0;
  if (EVP_Digest(data.data(), data.size(), digest, &length, EVP_sha256(), nullptr) != 1) {
    abortOnOpenSslFailure("EVP_Digest");
  }
  return toHex(std::string_view(reinterpret_cast<const char*>(digest), length));
}

std::string hmacSha256Hex(std::string_view key, std::string_view data) {
  assert(key.size() <= static_cast<size_t>(INT_MAX));
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned length = 0;
  // OpenSSL takes a null key for "no key given" rather than an empty one.
  const char* keyData = key.empty() ? "" : key.data();
  if (HMAC(EVP_sha256(), keyData, static_cast<int>(key.size()),
           reinterpret_cast<const unsigned char*>(data.data()), data.size(), mac,
           &length) == nullptr) {
    abortOnOpenSslFailure("HMAC");
  }
  return toHex(std::string_view(reinterpret_cast<const char*>(mac), length));
}

bool equalConstantTime(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace nodewarden::pki
