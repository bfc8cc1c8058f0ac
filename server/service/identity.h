#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "agent/core/status.h"
#include "agent/pki/authority.h"

namespace nodewarden::server {

// The server's cluster CA and its own TLS certificate.
struct ServerIdentity {
  pki::Authority authority;
  std::string certificatePem;  // issued by the authority, for `names`
  std::string keyPem;
};

// The CA from the given files when both are set, otherwise the one in
// `directory` (ca.crt, ca.key), made on first start (ECDSA P-256, ten years).
// The server's key (server.key) is made once and kept; its certificate is
// issued anew at every start, for `names`, so a changed name takes effect on
// restart. Keys are 0600.
core::Result<ServerIdentity> loadIdentity(const std::string& directory,
                                          const std::string& caCertificateFile,
                                          const std::string& caKeyFile,
                                          const std::vector<std::string>& names,
                                          std::chrono::system_clock::time_point now);

// The names put in the server's certificate when none are configured.
std::vector<std::string> defaultServerNames();

}  // namespace nodewarden::server
