#include "agent/pki/key.h"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <cassert>
#include <vector>

#include "agent/pki/digest.h"
#include "agent/pki/memory_bio.h"
#include "agent/pki/openssl_error.h"

namespace nodewarden::pki {

namespace {

constexpr char kCurve[] = "P-256";

// Stands in for OpenSSL's default, which would prompt on the terminal.
int refusePassphrase(char* /*buffer*/, int /*size*/, int /*writing*/, void* /*data*/) { return -1; }

// OpenSSL 3 reports any PEM it cannot make a key of as "unsupported". Read
// as plain PEM, the input tells what is actually wrong with it.
std::string diagnoseKeyPem(std::string_view pem, std::string decoderError) {
  constexpr char kWhat[] = "parse private key";
  auto bio = readingBio(pem, kWhat);
  if (!bio) return decoderError;
  clearOpenSslErrors();
  char* name = nullptr;
  char* header = nullptr;
  unsigned char* data = nullptr;
  long length = 0;
  if (PEM_read_bio(bio->get(), &name, &header, &data, &length) != 1) {
    return openSslError(kWhat, "PEM_read_bio");
  }
  const std::string label(name), headers(header);
  OPENSSL_free(name);
  OPENSSL_free(header);
  OPENSSL_free(data);
  if (label == "ENCRYPTED PRIVATE KEY" || headers.find("ENCRYPTED") != std::string::npos) {
    return std::string(kWhat) + ": the key is encrypted; only unencrypted keys can be read";
  }
  if (!label.ends_with("PRIVATE KEY")) {
    return std::string(kWhat) + ": expected a PRIVATE KEY, found a " + label;
  }
  return decoderError;
}

}  // namespace

std::string publicKeyPin(const EVP_PKEY* key) {
  assert(key != nullptr);
  int length = i2d_PUBKEY(key, nullptr);
  if (length <= 0) abortOnOpenSslFailure("i2d_PUBKEY");
  std::vector<unsigned char> der(static_cast<size_t>(length));
  unsigned char* out = der.data();
  if (i2d_PUBKEY(key, &out) != length) abortOnOpenSslFailure("i2d_PUBKEY");
  return "sha256:" +
         sha256Hex(std::string_view(reinterpret_cast<const char*>(der.data()), der.size()));
}

PrivateKey::PrivateKey(OpenSslPtr<EVP_PKEY> key) : key_(std::move(key)) { assert(key_); }

core::Result<PrivateKey> PrivateKey::generate() {
  clearOpenSslErrors();
  OpenSslPtr<EVP_PKEY> key(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", kCurve));
  if (!key) return core::Status::internal(openSslError("generate key", "EVP_PKEY_Q_keygen"));
  return PrivateKey(std::move(key));
}

core::Result<PrivateKey> PrivateKey::fromPem(std::string_view pem) {
  clearOpenSslErrors();
  auto bio = readingBio(pem, "parse private key");
  if (!bio) return bio.status();
  OpenSslPtr<EVP_PKEY> key(PEM_read_bio_PrivateKey(bio->get(), nullptr, refusePassphrase, nullptr));
  if (!key) {
    return core::Status::invalidArgument(
        diagnoseKeyPem(pem, openSslError("parse private key", "PEM_read_bio_PrivateKey")));
  }
  return PrivateKey(std::move(key));
}

std::string PrivateKey::toPem() const {
  OpenSslPtr<BIO> bio = writingBio();
  if (!bio || PEM_write_bio_PKCS8PrivateKey(bio.get(), key_.get(), nullptr, nullptr, 0, nullptr,
                                            nullptr) != 1) {
    abortOnOpenSslFailure("PEM_write_bio_PKCS8PrivateKey");
  }
  return contentsOf(bio.get());
}

std::string PrivateKey::publicKeyPin() const { return pki::publicKeyPin(key_.get()); }

}  // namespace nodewarden::pki
