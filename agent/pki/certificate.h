#pragma once

#include <chrono>
#include <string>
#include <string_view>
#include <vector>

#include "agent/core/clock.h"
#include "agent/core/status.h"
#include "agent/pki/openssl_ptr.h"

namespace nodewarden::pki {

class PrivateKey;

// An X.509 certificate. Copies share the same immutable OpenSSL object.
class Certificate final {
 public:
  explicit Certificate(OpenSslPtr<X509> certificate);
  Certificate(const Certificate& other);
  Certificate& operator=(const Certificate& other);
  Certificate(Certificate&&) noexcept = default;
  Certificate& operator=(Certificate&&) noexcept = default;
  ~Certificate() = default;

  // Reads the first certificate of a PEM file.
  static core::Result<Certificate> fromPem(std::string_view pem);
  std::string toPem() const;

  // The subject's common name; empty when it has none, or more than one.
  std::string commonName() const;
  // Lowercase hex, as `openssl x509 -serial` prints it but for the case.
  std::string serialHex() const;
  core::WallTime notBefore() const;
  core::WallTime notAfter() const;
  // See publicKeyPin() in key.h.
  std::string publicKeyPin() const;
  bool matchesKey(const PrivateKey& key) const;
  // Entries of the subjectAltName extension, IP addresses in the usual text form.
  std::vector<std::string> dnsNames() const;
  std::vector<std::string> ipAddresses() const;
  // Whether it may sign certificates: basicConstraints CA:TRUE, and
  // keyCertSign among its key usages when it lists any.
  bool isCa() const;

  // Ok when `ca` signed this certificate and both are valid at `now`.
  core::Status verifyIssuedBy(const Certificate& ca, core::WallTime now) const;

  X509* get() const { return certificate_.get(); }

 private:
  OpenSslPtr<X509> certificate_;
};

}  // namespace nodewarden::pki
