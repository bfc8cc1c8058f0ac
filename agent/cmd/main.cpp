#include <stdlib.h>

#include <cstring>
#include <iostream>
#include <string_view>

#include "agent/cmd/commands.h"
#include "agent/core/log.h"

namespace {

constexpr std::string_view kUsage = R"(Usage: nodewarden-agent COMMAND [OPTIONS]

Keeps this node in its desired state.

Commands:
  validate FILE            Check a desired-state file; print every error
  apply [--dry-run] FILE   Converge the node to FILE once; print the plan and result
  run                      Run as the node's agent daemon (under systemd)
  status [--json]          Show the running agent's conditions, components and events
  pause --reason TEXT      Stop enforcing and healing, node-wide or for one --unit,
        [--for DURATION]   until resumed or for DURATION
  resume                   Lift a pause
  version                  Print the version

Run 'nodewarden-agent COMMAND --help' for a command's options.
)";

}  // namespace

int main(int argc, char** argv) {
  using namespace nodewarden;
  // Set by the unit for the agent's own start-up only (see
  // nodewarden-agent.service); apt, dpkg and the other programs it runs get
  // their usual environment.
  unsetenv("GNUTLS_NO_IMPLICIT_INIT");
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
    std::cout << "nodewarden-agent " << NODEWARDEN_VERSION << "\n";
    return cmd::kExitOk;
  }
  core::log::setUp(core::log::Destination::kAuto, spdlog::level::info);
  if (command == "validate") return cmd::validate(argc - 1, argv + 1);
  if (command == "apply") return cmd::apply(argc - 1, argv + 1);
  if (command == "run") return cmd::run(argc - 1, argv + 1);
  if (command == "status") return cmd::status(argc - 1, argv + 1);
  if (command == "pause") return cmd::pause(argc - 1, argv + 1);
  if (command == "resume") return cmd::resume(argc - 1, argv + 1);
  std::cerr << "nodewarden-agent: unknown command \"" << command << "\"\n\n" << kUsage;
  return cmd::kExitUsage;
}
