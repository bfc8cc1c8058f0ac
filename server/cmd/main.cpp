#include <iostream>
#include <string_view>

#include "agent/cmd/commands.h"
#include "agent/core/log.h"
#include "server/cmd/commands.h"

namespace {

constexpr std::string_view kUsage = R"(Usage: nodewarden-server COMMAND [OPTIONS]

The nodewarden control plane: enrolls nodes, holds their desired state and
collects their reports.

Commands:
  run                 serve nodes and the admin socket (what the service runs)
  token create|list   bootstrap tokens nodes enroll with
  state set|show      the desired state of a group, or one node's overrides
  nodes list|show|revoke
  alerts list         limits the fleet is over
  version

Every command takes --help. The admin commands talk to the running server
over its root-only socket (--socket, default /run/nodewarden-server/admin.sock).
)";

}  // namespace

int main(int argc, char** argv) {
  using namespace nodewarden;
  if (argc < 2) {
    std::cerr << kUsage;
    return cmd::kExitUsage;
  }
  const std::string_view command = argv[1];
  if (command == "--help" || command == "-h" || command == "help") {
    std::cout << kUsage;
    return cmd::kExitOk;
  }
  if (command == "version" || command == "--version") {
    std::cout << "nodewarden-server " << NODEWARDEN_VERSION << "\n";
    return cmd::kExitOk;
  }
  core::log::setUp(core::log::Destination::kAuto, spdlog::level::info);
  if (command == "run") return server::cmd::run(argc - 1, argv + 1);
  if (command == "token") return server::cmd::token(argc - 1, argv + 1);
  if (command == "state") return server::cmd::state(argc - 1, argv + 1);
  if (command == "nodes") return server::cmd::nodes(argc - 1, argv + 1);
  if (command == "alerts") return server::cmd::alerts(argc - 1, argv + 1);
  std::cerr << "nodewarden-server: unknown command \"" << command << "\"\n\n" << kUsage;
  return cmd::kExitUsage;
}
