#include <unistd.h>

#include <charconv>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <nlohmann/json.hpp>

#include "agent/cmd/arguments.h"
#include "agent/cmd/commands.h"
#include "agent/control/control_client.h"
#include "agent/control/control_server.h"
#include "agent/control/status_text.h"

namespace nodewarden::cmd {

namespace {

constexpr char kUsage[] = R"(Usage: nodewarden-agent status [--json] [--events N] [--socket PATH]

Shows what the running agent sees: whether it is paused, its last converge,
the conditions of the node and of its components, and the latest events.
Asks the agent over its control socket, which only root may use.

  --json          Print the status as JSON, for scripts
  --events N      How many of the latest events to show (default 10)
  --socket PATH   The agent's control socket (default /run/nodewarden/agent.sock)
)";

// As systemd decides: a terminal that is not "dumb", unless NO_COLOR is set.
bool useColour() {
  if (::isatty(STDOUT_FILENO) != 1) return false;
  if (std::getenv("NO_COLOR") != nullptr) return false;
  const char* term = std::getenv("TERM");
  return term == nullptr || std::strcmp(term, "dumb") != 0;
}

}  // namespace

int status(int argc, char** argv) {
  static constexpr OptionSpec kOptions[] = {
      {"json"}, {"events", /*takesValue=*/true}, {"socket", /*takesValue=*/true}};
  auto parsed = Arguments::parse(argc, argv, kOptions, 0, kUsage);
  if (const int* exit = std::get_if<int>(&parsed)) return *exit;
  const Arguments& arguments = std::get<Arguments>(parsed);

  control::StatusTextOptions options{.colour = useColour()};
  if (auto events = arguments.value("events")) {
    const char* end = events->data() + events->size();
    auto [stop, error] = std::from_chars(events->data(), end, options.events);
    if (error != std::errc() || stop != end) {
      std::cerr << "nodewarden-agent status: --events wants a number, not \"" << *events << "\"\n";
      return kExitUsage;
    }
  }

  const control::ControlClient client(
      arguments.value("socket").value_or(control::kDefaultSocketPath));
  auto status = client.call({{"command", control::command::kStatus}});
  if (!status) {
    std::cerr << "nodewarden-agent: " << status.status().message() << "\n";
    return kExitInvalid;
  }
  if (arguments.has("json")) {
    std::cout << status->dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
    return kExitOk;
  }
  options.now = std::chrono::system_clock::now();
  control::printStatus(*status, std::cout, options);
  return kExitOk;
}

}  // namespace nodewarden::cmd
