#include "server/service/identity.h"

#include <unistd.h>

#include "agent/core/atomic_file.h"
#include "agent/core/log.h"
#include "agent/pki/key_file.h"

namespace nodewarden::server {

namespace {

const auto kLog = core::log::category("identity");

constexpr auto kCaValidity = std::chrono::hours(24 * 365 * 10);
constexpr auto kServerCertificateValidity = std::chrono::hours(24 * 365);
constexpr size_t kMaxPemBytes = 1 << 20;

core::Result<pki::Authority> loadOrCreateAuthority(const std::string& directory,
                                                   const std::string& certificateFile,
                                                   const std::string& keyFile,
                                                   std::chrono::system_clock::time_point now) {
  if (!certificateFile.empty()) {
    auto certificate = core::readFile(certificateFile, kMaxPemBytes);
    if (!certificate) return certificate.status();
    auto key = core::readFile(keyFile, kMaxPemBytes);
    if (!key) return key.status();
    return pki::Authority::load(*certificate, *key);
  }
  const std::string certificatePath = directory + "/ca.crt";
  const std::string keyPath = directory + "/ca.key";
  auto certificate = core::readFile(certificatePath, kMaxPemBytes);
  if (certificate) {
    auto key = pki::readPrivateKey(keyPath);
    if (!key) return key.status();
    return pki::Authority::load(*certificate, key->toPem());
  }
  if (certificate.status().code() != core::Status::Code::kNotFound) return certificate.status();

  auto authority = pki::Authority::create("nodewarden cluster CA", now, kCaValidity);
  if (!authority) return authority.status();
  // The key first: a CA certificate without its key would be useless.
  auto key = pki::PrivateKey::fromPem(authority->keyPem());
  if (!key) return key.status();
  if (core::Status s = pki::writePrivateKey(keyPath, *key); !s) return s;
  if (core::Status s =
          core::writeFileAtomic(certificatePath, authority->certificate().toPem(), {.mode = 0644});
      !s) {
    return s;
  }
  NW_LOG(kLog, info, "Created the cluster CA in {}; its pin is {}", directory,
         authority->certificate().publicKeyPin());
  return authority;
}

}  // namespace

std::vector<std::string> defaultServerNames() {
  std::vector<std::string> names;
  char host[256] = {};
  if (gethostname(host, sizeof(host) - 1) == 0 && host[0] != '\0') names.emplace_back(host);
  names.emplace_back("localhost");
  names.emplace_back("127.0.0.1");
  return names;
}

core::Result<ServerIdentity> loadIdentity(const std::string& directory,
                                          const std::string& caCertificateFile,
                                          const std::string& caKeyFile,
                                          const std::vector<std::string>& names,
                                          std::chrono::system_clock::time_point now) {
  auto authority = loadOrCreateAuthority(directory, caCertificateFile, caKeyFile, now);
  if (!authority) return authority.status();

  const std::string keyPath = directory + "/server.key";
  auto key = pki::readPrivateKey(keyPath);
  if (!key && key.status().code() == core::Status::Code::kNotFound) {
    key = pki::PrivateKey::generate();
    if (key) {
      if (core::Status s = pki::writePrivateKey(keyPath, *key); !s) return s;
    }
  }
  if (!key) return key.status();
  auto certificate =
      authority->issueServerCertificate(*key, names, now, kServerCertificateValidity);
  if (!certificate) return certificate.status();
  return ServerIdentity{std::move(*authority), std::move(*certificate), key->toPem()};
}

}  // namespace nodewarden::server
