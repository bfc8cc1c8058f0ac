#pragma once

#include <string>
#include <string_view>

#include "agent/core/status.h"
#include "agent/pki/openssl_ptr.h"

namespace nodewarden::pki {

class PrivateKey;

// A PEM PKCS#10 request for CN=`commonName`, signed by `key` with SHA-256.
core::Result<std::string> makeCsr(const PrivateKey& key, std::string_view commonName);

// A certificate request that was proven to come from the holder of its key
// (its self-signature verifies) and whose key is one this cluster accepts:
// EC P-256 or P-384, or RSA of 2048 to 8192 bits.
class CertificateRequest final {
 public:
  static core::Result<CertificateRequest> fromPem(std::string_view pem);

  const std::string& commonName() const { return commonName_; }
  // See publicKeyPin() in key.h.
  std::string publicKeyPin() const;
  EVP_PKEY* publicKey() const;

 private:
  CertificateRequest(OpenSslPtr<X509_REQ> request, std::string commonName);

  OpenSslPtr<X509_REQ> request_;
  std::string commonName_;
};

// What the server checks a node's request against before it signs it.
struct CsrInfo {
  std::string commonName;
  std::string publicKeyPin;
};

// Reads a request as CertificateRequest::fromPem() does.
core::Result<CsrInfo> readCsr(std::string_view pem);

}  // namespace nodewarden::pki
