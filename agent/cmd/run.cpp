#include <signal.h>

#include <iostream>

#include <nlohmann/json.hpp>

#include "agent/cmd/arguments.h"
#include "agent/cmd/commands.h"
#include "agent/cmd/node_providers.h"
#include "agent/control/control_server.h"
#include "agent/core/log.h"
#include "agent/core/loop.h"
#include "agent/daemon/agent_config.h"
#include "agent/daemon/daemon.h"
#include "agent/daemon/file_watcher.h"
#include "agent/daemon/service_notifier.h"
#include "agent/fleet/fleet_client.h"
#include "agent/fleet/reports.h"
#include "agent/fleet/state_cache.h"
#include "agent/heal/kernel_log.h"
#include "agent/heal/node_prober.h"
#include "agent/metrics/metrics.h"
#include "agent/systemd/bus_systemd_manager.h"

namespace nodewarden::cmd {

namespace {

constexpr char kUsage[] = R"(Usage: nodewarden-agent run [--config FILE]

Runs the agent daemon: converges the node to its desired state at start, when
the state file changes, on SIGHUP (which also rereads the config) and at every
drift-check interval. Meant to run under systemd (nodewarden-agent.service).

  --config FILE   Agent configuration (default /etc/nodewarden/agent.yaml)
)";

constexpr char kDefaultConfig[] = "/etc/nodewarden/agent.yaml";
// In the state directory: the server's last desired state and its version.
constexpr char kServerStateName[] = "server-state.json";
constexpr char kServerStateVersionName[] = "server-state.version";

}  // namespace

int run(int argc, char** argv) {
  static constexpr OptionSpec kOptions[] = {{"config", /*takesValue=*/true}};
  auto parsed = Arguments::parse(argc, argv, kOptions, 0, kUsage);
  if (const int* exit = std::get_if<int>(&parsed)) return *exit;
  const std::string configPath =
      std::get<Arguments>(parsed).value("config").value_or(kDefaultConfig);
  auto log = core::log::category("agent");

  auto config = daemon::loadAgentConfig(configPath);
  if (!config) {
    NW_LOG(log, critical, "Failed to load {}: {}", configPath, config.status().message());
    return kExitInvalid;
  }
  core::log::setUp(core::log::Destination::kAuto, config->logLevel);
  auto stateDir = daemon::stateDirectory();
  if (!stateDir) {
    NW_LOG(log, critical, "Failed to set up the state directory: {}", stateDir.status().message());
    return kExitInvalid;
  }

  auto loop = core::Loop::create();
  if (!loop) {
    NW_LOG(log, critical, "Failed to set up the event loop: {}", loop.status().message());
    return kExitInvalid;
  }
  if (core::Status s = (*loop)->exitOnTerminationSignals(); !s) {
    NW_LOG(log, critical, "Failed to set up signals: {}", s.message());
    return kExitInvalid;
  }
  if (core::Status s = (*loop)->enableWatchdog(); !s) {
    NW_LOG(log, warn, "Failed to enable the watchdog: {}, ignoring", s.message());
  }
  core::LoopClock clock(**loop);
  auto systemd = systemd::BusSystemdManager::connect(**loop, clock, config->jobTimeout);
  if (!systemd) {
    NW_LOG(log, critical, "Failed to connect to systemd: {}", systemd.status().message());
    return kExitInvalid;
  }
  NW_LOG(log, debug, "Connected to systemd through {}", (*systemd)->address());

  auto node = NodeProviders::create(**loop, clock);
  if (!node) {
    NW_LOG(log, critical, "Failed to start: {}", node.status().message());
    return kExitInvalid;
  }

  std::unique_ptr<metrics::Metrics> metrics = metrics::Metrics::disabled();
  if (config->metrics.enabled) {
    auto served = metrics::Metrics::serve(config->metrics.address);
    if (!served) {
      NW_LOG(log, critical, "Failed to serve metrics: {}", served.status().message());
      return kExitInvalid;
    }
    metrics = std::move(*served);
    NW_LOG(log, info, "Serving metrics at http://{}/metrics", metrics->address());
  }
  heal::NodeProber prober(**loop, clock, (*node)->http(), (*node)->processes());

  // With a server, the state enforced is the last one it sent, cached here.
  const daemon::ServerConnection connection = config->connection;
  daemon::Daemon* daemonPointer = nullptr;
  std::unique_ptr<fleet::StateCache> cache;
  std::unique_ptr<fleet::FleetClient> fleetClient;
  if (!connection.server.empty()) {
    cache = std::make_unique<fleet::StateCache>(*stateDir + "/" + kServerStateName,
                                                *stateDir + "/" + kServerStateVersionName,
                                                [&daemonPointer](const std::string& reason) {
                                                  if (daemonPointer != nullptr)
                                                    daemonPointer->requestConverge(reason);
                                                });
    config->stateFile = cache->documentPath();
    auto spool = fleet::Spool::open(*stateDir + "/spool", {});
    if (!spool) {
      NW_LOG(log, critical, "Failed to open the report spool: {}", spool.status().message());
      return kExitInvalid;
    }
    fleetClient = std::make_unique<fleet::FleetClient>(
        **loop, clock,
        fleet::FleetConfig{connection.server, connection.bootstrapToken, connection.caCertHash,
                           connection.nodeName, connection.labels, connection.usageInterval},
        *stateDir, std::move(*spool), *cache);
  }

  std::function<nlohmann::json()> serverStatus;
  if (fleetClient) {
    serverStatus = [&]() -> nlohmann::json {
      const std::string version = cache->enforcedVersion();
      return {{"address", connection.server},
              {"node", connection.nodeName},
              {"connected", fleetClient->connected()},
              {"status", fleetClient->status()},
              {"enforcing", version.empty() ? nlohmann::json() : nlohmann::json(version)},
              {"spooled", fleetClient->spooled()}};
    };
  }

  daemon::SdServiceNotifier notifier;
  daemon::InotifyFileWatcher watcher(**loop);
  daemon::Daemon agent(clock, **systemd, notifier, watcher,
                       {.config = std::move(*config),
                        .stateDirectory = *stateDir,
                        .providers = (*node)->providers(),
                        .prober = &prober,
                        .metrics = metrics.get(),
                        .converged =
                            [&](const std::string& result, const std::string& error,
                                const converge::Report* report) {
                              if (fleetClient)
                                fleetClient->report(fleet::convergeReport(
                                    cache->enforcedVersion(), result, error, report, clock));
                            },
                        .serverStatus = serverStatus});
  daemonPointer = &agent;
  std::unique_ptr<fleet::HealthReporter> healthReporter;
  if (fleetClient) {
    healthReporter = std::make_unique<fleet::HealthReporter>(clock, agent.health(), *fleetClient);
  }
  // Processes of managed units killed by the OOM killer, from the kernel's
  // messages in the journal (a container may have none).
  auto kernelLog = heal::KernelLog::open(
      **loop, [&agent](const heal::OomKill& kill) { agent.oomKilled(kill.unit, kill.describe()); });
  if (!kernelLog) {
    NW_LOG(log, warn,
           "Failed to follow the kernel's messages: {}; OOM kills are seen only "
           "through units' results",
           kernelLog.status().message());
  }
  auto control = control::ControlServer::start(**loop, clock, agent, {});
  if (!control) {
    NW_LOG(log, err,
           "Failed to open the control socket: {}; status, pause and resume "
           "are unavailable",
           control.status().message());
  }
  auto hangup = (*loop)->addSignal(SIGHUP, [&] {
    NW_LOG(log, info, "Reloading configuration from {}", configPath);
    auto reread = daemon::loadAgentConfig(configPath);
    if (!reread) {
      NW_LOG(log, err, "Failed to reload {}: {}; keeping the running configuration", configPath,
             reread.status().message());
      return agent.requestConverge("reload");
    }
    if (cache) {
      // The server's state stays the one enforced; a new server or token
      // needs a restart (the stream and the identity are set up once).
      reread->stateFile = cache->documentPath();
      if (reread->connection != connection) {
        NW_LOG(log, warn,
               "Changes to server, bootstrapToken, caCertHash, nodeName, labels or "
               "usageInterval take effect when the agent restarts");
      }
    }
    core::log::setUp(core::log::Destination::kAuto, reread->logLevel);
    agent.reload(std::move(*reread));
  });
  if (!hangup) {
    NW_LOG(log, critical, "Failed to start: {}", hangup.status().message());
    return kExitInvalid;
  }
  agent.start();
  if (fleetClient) fleetClient->start();
  NW_LOG(log, info, "nodewarden-agent {} running with {}", NODEWARDEN_VERSION, configPath);
  const int code = (*loop)->run();
  notifier.stopping();
  return code;
}

}  // namespace nodewarden::cmd
