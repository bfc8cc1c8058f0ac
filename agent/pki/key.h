#pragma once

#include <string>
#include <string_view>

#include "agent/core/status.h"
#include "agent/pki/openssl_ptr.h"

namespace nodewarden::pki {

// "sha256:" and the lowercase hex SHA-256 of a public key's DER
// SubjectPublicKeyInfo: the form `kubeadm join --discovery-token-ca-cert-hash`
// takes, by which a node that knows only this string recognises its CA.
std::string publicKeyPin(const EVP_PKEY* key);

// A private key (the node's, the CA's, a server's). Move-only: there is one
// owner of a secret.
class PrivateKey final {
 public:
  // Takes a key that has its private half.
  explicit PrivateKey(OpenSslPtr<EVP_PKEY> key);

  // A new ECDSA P-256 key.
  static core::Result<PrivateKey> generate();
  // Reads a PEM private key (PKCS#8 or traditional). An encrypted key is
  // refused rather than a passphrase asked for on the terminal.
  static core::Result<PrivateKey> fromPem(std::string_view pem);

  // Unencrypted PKCS#8 PEM.
  std::string toPem() const;
  std::string publicKeyPin() const;
  EVP_PKEY* get() const { return key_.get(); }

 private:
  OpenSslPtr<EVP_PKEY> key_;
};

}  // namespace nodewarden::pki
