#include "agent/daemon/agent_config.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>

#include <cerrno>
#include <cstdlib>

#include "agent/core/address.h"
#include "agent/core/atomic_file.h"
#include "agent/core/duration.h"
#include "agent/pki/bootstrap_token.h"
#include "agent/state/loader.h"
#include "nodewarden/v1/agent_config.pb.h"

namespace nodewarden::daemon {

namespace {

constexpr size_t kMaxConfigBytes = 1 << 20;

}  // namespace

core::Result<AgentConfig> loadAgentConfig(const std::string& path) {
  AgentConfig config;
  auto text = core::readFile(path, kMaxConfigBytes);
  if (!text) {
    if (text.status().code() == core::Status::Code::kNotFound) return config;
    return text.status();
  }
  v1::AgentConfig message;
  std::vector<state::Diagnostic> errors = state::loadMessage(*text, path, message);
  auto fail = [&](const std::string& field, const std::string& why) {
    errors.push_back({.file = path, .path = field, .message = why});
  };

  if (!message.state_file().empty()) {
    if (message.state_file().front() != '/') {
      fail("stateFile", "\"" + message.state_file() + "\" is not an absolute path");
    }
    config.stateFile = message.state_file();
  }
  auto duration = [&](const std::string& field, const std::string& value, core::Duration& out) {
    if (value.empty()) return;
    auto parsed = core::parsePositiveDuration(value);
    if (!parsed) return fail(field, parsed.status().message());
    out = *parsed;
  };
  duration("driftCheckInterval", message.drift_check_interval(), config.driftCheckInterval);
  duration("jobTimeout", message.job_timeout(), config.jobTimeout);
  const v1::Healing& healing = message.healing();
  duration("healing.restartBackoffCap", healing.restart_backoff_cap(),
           config.healing.restartBackoffCap);
  duration("healing.crashLoopWindow", healing.crash_loop_window(), config.healing.crashLoopWindow);
  duration("healing.backoffResetAfter", healing.backoff_reset_after(),
           config.healing.backoffResetAfter);
  if (healing.crash_loop_restarts() > 0) {
    config.healing.crashLoopRestarts = healing.crash_loop_restarts();
  }
  config.metrics.enabled = message.metrics().enabled();
  if (!message.metrics().address().empty()) {
    const std::string& address = message.metrics().address();
    if (!core::isHostPort(address)) {
      fail("metrics.address", "\"" + address + "\" is not host:port");
    }
    config.metrics.address = address;
  }
  if (!message.log_level().empty()) {
    config.logLevel = spdlog::level::from_str(message.log_level());
    if (config.logLevel == spdlog::level::off && message.log_level() != "off") {
      fail("logLevel", "\"" + message.log_level() +
                           "\" is not one of trace, debug, info, warn, error, critical, off");
    }
  }
  ServerConnection& connection = config.connection;
  if (!message.server().empty()) {
    const std::string& server = message.server();
    if (!core::isHostPort(server)) {
      fail("server", "\"" + server + "\" is not host:port");
    }
    connection.server = server;
  }
  if (!message.bootstrap_token().empty() && !message.bootstrap_token_file().empty()) {
    fail("bootstrapTokenFile", "give the token or a file holding it, not both");
  }
  connection.bootstrapToken = message.bootstrap_token();
  if (!message.bootstrap_token_file().empty()) {
    auto token = core::readFile(message.bootstrap_token_file(), 4096);
    if (!token) {
      fail("bootstrapTokenFile", token.status().message());
    } else {
      connection.bootstrapToken = *token;
      while (!connection.bootstrapToken.empty() &&
             std::isspace(static_cast<unsigned char>(connection.bootstrapToken.back()))) {
        connection.bootstrapToken.pop_back();
      }
    }
  }
  if (!connection.bootstrapToken.empty()) {
    if (!pki::parseBootstrapToken(connection.bootstrapToken)) {
      fail(message.bootstrap_token().empty() ? "bootstrapTokenFile" : "bootstrapToken",
           "a bootstrap token looks like abcdef.0123456789abcdef");
    }
  }
  connection.caCertHash = message.ca_cert_hash();
  if (!connection.caCertHash.empty()) {
    const std::string& hash = connection.caCertHash;
    if (!hash.starts_with("sha256:") || hash.size() != 7 + 64 ||
        hash.find_first_not_of("0123456789abcdef", 7) != std::string::npos) {
      fail("caCertHash", "\"" + hash + "\" is not sha256: and 64 lower-case hex digits");
    }
  } else if (!connection.server.empty()) {
    fail("caCertHash", "is needed with server: the pin of the cluster CA the node may trust");
  }
  connection.nodeName = message.node_name();
  if (connection.nodeName.empty()) {
    char host[256] = {};
    if (gethostname(host, sizeof(host) - 1) == 0) connection.nodeName = host;
    for (char& c : connection.nodeName) c = static_cast<char>(std::tolower(c));
  }
  connection.labels.insert(message.labels().begin(), message.labels().end());
  duration("usageInterval", message.usage_interval(), connection.usageInterval);

  if (errors.empty()) return config;
  std::string all = errors.front().toString();
  for (size_t i = 1; i < errors.size(); ++i) all += "; " + errors[i].toString();
  return core::Status::invalidArgument(all);
}

std::string stateDirectoryPath() {
  const char* fromSystemd = std::getenv("STATE_DIRECTORY");
  // systemd may pass several, colon-separated; the unit declares one.
  std::string directory = fromSystemd ? fromSystemd : "/var/lib/nodewarden";
  return directory.substr(0, directory.find(':'));
}

core::Result<std::string> stateDirectory() {
  std::string directory = stateDirectoryPath();
  if (::mkdir(directory.c_str(), 0700) < 0 && errno != EEXIST) {
    return core::Status::fromErrno(errno, "create " + directory);
  }
  return directory;
}

}  // namespace nodewarden::daemon
