#pragma once

#include <map>
#include <memory>
#include <string>

#include "agent/core/status.h"

namespace grpc {
class Channel;
}

namespace nodewarden::fleet {

// Where the node's identity lives: /var/lib/nodewarden/pki.
struct IdentityFiles {
  std::string key;          // node.key, 0600, made on the node
  std::string certificate;  // node.crt, from the server
  std::string ca;           // ca.crt, the cluster CA the pin vouched for
};
IdentityFiles identityFiles(const std::string& stateDirectory);

// The node's credentials for mutual TLS, PEM.
struct Identity {
  std::string key;
  std::string certificate;
  std::string ca;
};

// A channel to the server's node service, authenticated with `identity`,
// with the keepalive the server expects (keepalive.h) and no retries of its
// own: the client reconnects with its own backoff.
std::shared_ptr<grpc::Channel> nodeChannel(const std::string& server, const Identity& identity);

// The identity enrolled earlier, if the files are there and agree.
core::Result<Identity> readIdentity(const IdentityFiles& files);

struct EnrollOptions {
  std::string server;      // host:port
  std::string token;       // abcdef.0123456789abcdef
  std::string caCertHash;  // sha256:<hex of the CA's SubjectPublicKeyInfo>
  std::string nodeName;
  std::map<std::string, std::string> labels;
};

// Enrolls the way `kubeadm join` does: fetches the cluster's CA over TLS
// without verification, accepts it only if its signature checks out with the
// token and its key matches the pin, then sends a CSR for a key made here
// (kept, 0600; it never leaves the node) over TLS verified with that CA, and
// stores the certificate it gets. Blocking, with a deadline on each call:
// run it off the loop. Errors say which step failed and why.
core::Result<Identity> enroll(const EnrollOptions& options, const IdentityFiles& files);

}  // namespace nodewarden::fleet
