#pragma once

#include <chrono>
#include <string>
#include <string_view>
#include <vector>

#include "agent/core/clock.h"
#include "agent/core/status.h"
#include "agent/pki/certificate.h"
#include "agent/pki/key.h"

namespace nodewarden::pki {

// Certificates it issues start this long before the time they are issued,
// so that a node whose clock is a little behind the server's can use one at once.
inline constexpr std::chrono::minutes kClockSkewAllowance{5};

// The cluster CA: a self-signed ECDSA P-256 certificate and its key, which
// issue the nodes' client-and-server certificates and the server's own.
class Authority final {
 public:
  // A new CA valid from `now` (less kClockSkewAllowance) for `validity`.
  static core::Result<Authority> create(std::string_view commonName, core::WallTime now,
                                        std::chrono::seconds validity);
  // A CA saved from certificate() and keyPem(). Refuses a certificate that
  // may not sign others, and a key that is not the certificate's.
  static core::Result<Authority> load(std::string_view certificatePem, std::string_view keyPem);

  const Certificate& certificate() const { return certificate_; }
  std::string keyPem() const { return key_.toPem(); }

  // A certificate for node `expectedCommonName` from its request: CN and
  // DNS subjectAltName the node's name, good for TLS client and server auth,
  // not a CA. Refuses a request that names another node: a node asks only
  // for its own name. Never valid past the CA itself.
  core::Result<std::string> signNodeCertificate(std::string_view requestPem,
                                                std::string_view expectedCommonName,
                                                core::WallTime now,
                                                std::chrono::seconds validity) const;

  // A TLS server certificate for `key`, naming each of `names` in its
  // subjectAltName, as an IP address when it is one (IPv4 or IPv6) and as a
  // DNS name otherwise; its CN is the first name. Never valid past the CA.
  core::Result<std::string> issueServerCertificate(const PrivateKey& key,
                                                   const std::vector<std::string>& names,
                                                   core::WallTime now,
                                                   std::chrono::seconds validity) const;

 private:
  Authority(Certificate certificate, PrivateKey key);

  Certificate certificate_;
  PrivateKey key_;
};

}  // namespace nodewarden::pki
