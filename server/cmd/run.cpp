#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <grpcpp/grpcpp.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "agent/cmd/arguments.h"
#include "agent/cmd/commands.h"
#include "agent/core/curl_http_client.h"
#include "agent/core/log.h"
#include "agent/core/loop.h"
#include "agent/daemon/service_notifier.h"
#include "agent/fleet/keepalive.h"
#include "server/cmd/commands.h"
#include "server/cmd/server_config.h"
#include "server/service/admin_service.h"
#include "server/service/alert_monitor.h"
#include "server/service/desired_states.h"
#include "server/service/enrollment_service.h"
#include "server/service/identity.h"
#include "server/service/node_service.h"
#include "server/store/sqlite_store.h"

namespace nodewarden::server::cmd {

namespace {

using nodewarden::cmd::Arguments;
using nodewarden::cmd::kExitInvalid;
using nodewarden::cmd::OptionSpec;

constexpr char kUsage[] = R"(Usage: nodewarden-server run [--config FILE]

Serves the control plane: nodes enroll with bootstrap tokens and connect over
mutual TLS to get their desired state and send reports; the admin commands
reach it over its root-only socket. Meant to run under systemd
(nodewarden-server.service).

  --config FILE   Server configuration (default /etc/nodewarden/server.yaml)
)";

constexpr auto kShutdownGrace = std::chrono::seconds(5);

core::Status makePrivateDirectory(const std::string& path) {
  std::error_code error;
  std::filesystem::create_directories(path, error);
  if (error) return core::Status::internal("create " + path + ": " + error.message());
  if (chmod(path.c_str(), 0700) != 0) return core::Status::fromErrno(errno, "chmod " + path);
  return core::Status::ok();
}

}  // namespace

int run(int argc, char** argv) {
  static constexpr OptionSpec kOptions[] = {{"config", /*takesValue=*/true}};
  auto parsed = Arguments::parse(argc, argv, kOptions, 0, kUsage);
  if (const int* exit = std::get_if<int>(&parsed)) return *exit;
  const std::string configPath =
      std::get<Arguments>(parsed).value("config").value_or(std::string(kDefaultConfigPath));
  auto log = core::log::category("server");

  auto config = loadServerConfig(configPath);
  if (!config) {
    NW_LOG(log, critical, "Failed to load {}: {}", configPath, config.status().message());
    return kExitInvalid;
  }
  core::log::setUp(core::log::Destination::kAuto, config->logLevel);
  if (core::Status s = makePrivateDirectory(config->stateDirectory); !s) {
    NW_LOG(log, critical, "Failed to set up the state directory: {}", s.message());
    return kExitInvalid;
  }
  // Signals are blocked here, before gRPC starts its threads, so that they
  // inherit the mask and SIGTERM reaches the loop rather than ending the
  // process wherever it lands.
  auto loop = core::Loop::create();
  if (!loop) {
    NW_LOG(log, critical, "Failed to set up the event loop: {}", loop.status().message());
    return kExitInvalid;
  }
  if (core::Status s = (*loop)->exitOnTerminationSignals(); !s) {
    NW_LOG(log, critical, "Failed to set up signals: {}", s.message());
    return kExitInvalid;
  }
  auto hangup = (*loop)->addSignal(SIGHUP, [&] {
    NW_LOG(log, info, "Nothing is reloaded on SIGHUP; restart the server to apply {}", configPath);
  });
  if (!hangup) {
    NW_LOG(log, critical, "Failed to set up signals: {}", hangup.status().message());
    return kExitInvalid;
  }
  if (core::Status s = (*loop)->enableWatchdog(); !s) {
    NW_LOG(log, warn, "Failed to enable the watchdog: {}, ignoring", s.message());
  }

  auto store = SqliteStore::open(config->stateDirectory + "/store.db");
  if (!store) {
    NW_LOG(log, critical, "Failed to open the store: {}", store.status().message());
    return kExitInvalid;
  }
  const std::vector<std::string> names =
      config->serverNames.empty() ? defaultServerNames() : config->serverNames;
  auto identity = loadIdentity(config->stateDirectory, config->caCertificateFile, config->caKeyFile,
                               names, std::chrono::system_clock::now());
  if (!identity) {
    NW_LOG(log, critical, "Failed to set up the cluster CA: {}", identity.status().message());
    return kExitInvalid;
  }
  DesiredStates states(**store);
  if (core::Status s = states.load(); !s) {
    NW_LOG(log, critical, "Failed to read the desired states: {}", s.message());
    return kExitInvalid;
  }
  NodeRegistry registry;
  EnrollmentService enrollment(**store, identity->authority, config->nodeCertificateValidity);
  NodeService nodeService(**store, states, registry);
  AdminService admin(**store, states, registry);

  // Enrollment and the node streams: TLS, with a client certificate from the
  // cluster CA verified when one is presented (enrollment has none yet; the
  // node service refuses calls without one).
  grpc::SslServerCredentialsOptions tls(GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_AND_VERIFY);
  tls.pem_root_certs = identity->authority.certificate().toPem();
  tls.pem_key_cert_pairs.push_back({identity->keyPem, identity->certificatePem});
  grpc::ServerBuilder nodesBuilder;
  int port = 0;
  nodesBuilder.AddListeningPort(config->listen, grpc::SslServerCredentials(tls), &port);
  nodesBuilder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS,
                                  fleet::keepalive::kServerPingInterval.count());
  nodesBuilder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS,
                                  fleet::keepalive::kServerPingTimeout.count());
  nodesBuilder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  nodesBuilder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS,
                                  fleet::keepalive::kMinPingInterval.count());
  nodesBuilder.AddChannelArgument(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
  nodesBuilder.RegisterService(&enrollment);
  nodesBuilder.RegisterService(&nodeService);
  std::unique_ptr<grpc::Server> nodesServer = nodesBuilder.BuildAndStart();
  if (!nodesServer || port == 0) {
    NW_LOG(log, critical, "Failed to listen on {} (in use, or not an address of this host)",
           config->listen);
    return kExitInvalid;
  }

  // The admin socket: in a directory only root may enter, itself 0600.
  const std::string socketDirectory = std::filesystem::path(config->adminSocket).parent_path();
  if (core::Status s = makePrivateDirectory(socketDirectory); !s) {
    NW_LOG(log, critical, "Failed to set up the admin socket: {}", s.message());
    return kExitInvalid;
  }
  unlink(config->adminSocket.c_str());
  grpc::ServerBuilder adminBuilder;
  adminBuilder.AddListeningPort("unix:" + config->adminSocket, grpc::InsecureServerCredentials());
  adminBuilder.RegisterService(&admin);
  std::unique_ptr<grpc::Server> adminServer = adminBuilder.BuildAndStart();
  if (!adminServer || chmod(config->adminSocket.c_str(), 0600) != 0) {
    NW_LOG(log, critical, "Failed to listen on {}: {}", config->adminSocket,
           adminServer ? std::strerror(errno) : "gRPC refused the address");
    return kExitInvalid;
  }

  core::LoopClock clock(**loop);
  daemon::SdServiceNotifier notifier;
  std::unique_ptr<core::CurlHttpClient> webhook;
  if (!config->webhookUrl.empty()) {
    auto client = core::CurlHttpClient::create(**loop);
    if (!client) {
      NW_LOG(log, critical, "Failed to set up the alert webhook: {}", client.status().message());
      return kExitInvalid;
    }
    webhook = std::move(*client);
  }
  AlertMonitor alerts(clock, **store, registry, *config, webhook.get());
  alerts.start();

  NW_LOG(log, info, "nodewarden-server {} serving nodes on {} (CA pin {}), admin on {}",
         NODEWARDEN_VERSION, config->listen, identity->authority.certificate().publicKeyPin(),
         config->adminSocket);
  notifier.ready("Serving nodes on " + config->listen);
  const int code = (*loop)->run();
  notifier.stopping();
  NW_LOG(log, info, "Stopping: closing {} node streams", registry.size());
  const auto deadline = std::chrono::system_clock::now() + kShutdownGrace;
  adminServer->Shutdown(deadline);
  unlink(config->adminSocket.c_str());
  nodesServer->Shutdown(deadline);
  return code;
}

}  // namespace nodewarden::server::cmd
