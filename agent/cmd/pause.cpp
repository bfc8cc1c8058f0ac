#include <iostream>
#include <nlohmann/json.hpp>

#include "agent/cmd/arguments.h"
#include "agent/cmd/commands.h"
#include "agent/control/control_client.h"
#include "agent/control/control_server.h"
#include "agent/control/status_text.h"
#include "agent/core/duration.h"
#include "agent/heal/pause.h"

namespace nodewarden::cmd {

namespace {

constexpr char kPauseUsage[] =
    R"(Usage: nodewarden-agent pause --reason TEXT [--for DURATION] [--unit UNIT] [--socket PATH]

Stops the running agent from enforcing the desired state and from healing, on
the whole node or for one unit, until 'nodewarden-agent resume' or until
DURATION has passed. The agent still observes and reports, and the pause
holds across agent restarts.

  --reason TEXT     Why, for whoever looks at this node next (required)
  --for DURATION    Lift the pause on its own after DURATION (90s, 30m, 2h, 1d)
  --unit UNIT       Pause this unit only ("kubelet" stands for kubelet.service)
  --socket PATH     The agent's control socket (default /run/nodewarden/agent.sock)
)";

constexpr char kResumeUsage[] = R"(Usage: nodewarden-agent resume [--unit UNIT] [--socket PATH]

Lifts a pause: the agent enforces the desired state and heals again, and
repairs at once what drifted or failed meanwhile. Without --unit, lifts the
node's pause; a unit's own pause is lifted with --unit.

  --unit UNIT       Lift this unit's pause ("kubelet" stands for kubelet.service)
  --socket PATH     The agent's control socket (default /run/nodewarden/agent.sock)
)";

// As systemctl reads a unit name: without a suffix it is a service.
std::optional<std::string> unitOption(const Arguments& arguments) {
  auto unit = arguments.value("unit");
  if (unit && !unit->empty() && unit->find('.') == std::string::npos) *unit += ".service";
  return unit;
}

std::string subjectText(const std::optional<std::string>& unit) {
  return unit ? *unit : "the node";
}

std::string resumeCommand(const std::optional<std::string>& unit) {
  return unit ? "nodewarden-agent resume --unit " + *unit : "nodewarden-agent resume";
}

const nlohmann::json& entry(const nlohmann::json& paused, const std::optional<std::string>& unit) {
  static const nlohmann::json kNull;
  if (!paused.is_object()) return kNull;
  if (!unit) return paused.contains("node") ? paused["node"] : kNull;
  if (!paused.contains("units") || !paused["units"].is_object()) return kNull;
  const auto& units = paused["units"];
  return units.contains(*unit) ? units[*unit] : kNull;
}

}  // namespace

int pause(int argc, char** argv) {
  static constexpr OptionSpec kOptions[] = {{"reason", /*takesValue=*/true},
                                            {"for", /*takesValue=*/true},
                                            {"unit", /*takesValue=*/true},
                                            {"socket", /*takesValue=*/true}};
  auto parsed = Arguments::parse(argc, argv, kOptions, 0, kPauseUsage);
  if (const int* exit = std::get_if<int>(&parsed)) return *exit;
  const Arguments& arguments = std::get<Arguments>(parsed);

  const std::string reason = arguments.value("reason").value_or("");
  if (core::Status s = heal::validatePauseReason(reason); !s) {
    std::cerr << "nodewarden-agent pause: " << s.message() << "\n\n" << kPauseUsage;
    return kExitUsage;
  }
  const std::optional<std::string> unit = unitOption(arguments);
  if (unit) {
    if (core::Status s = heal::validatePauseUnit(*unit); !s) {
      std::cerr << "nodewarden-agent pause: --unit: " << s.message() << "\n";
      return kExitUsage;
    }
  }
  nlohmann::json request = {{"command", control::command::kPause}, {"reason", reason}};
  if (unit) request["unit"] = *unit;
  if (auto duration = arguments.value("for")) {
    if (auto checked = core::parseDuration(*duration); !checked) {
      std::cerr << "nodewarden-agent pause: --for: " << checked.status().message() << "\n";
      return kExitUsage;
    }
    request["for"] = *duration;
  }

  const control::ControlClient client(
      arguments.value("socket").value_or(control::kDefaultSocketPath));
  auto result = client.call(request);
  if (!result) {
    std::cerr << "nodewarden-agent: " << result.status().message() << "\n";
    return kExitInvalid;
  }
  const auto now = std::chrono::system_clock::now();
  const nlohmann::json paused =
      result->is_object() ? result->value("paused", nlohmann::json()) : nlohmann::json();
  const nlohmann::json& pause = entry(paused, unit);
  std::string until = "until resumed";
  if (pause.is_object() && pause.contains("until") && pause["until"].is_string()) {
    until = "until " + control::describeTime(pause["until"].get<std::string>(), now);
  }
  std::cout << "Paused " << subjectText(unit) << " " << until << ".\n"
            << "Reason: " << reason << "\n"
            << "The agent observes and reports but changes nothing "
            << (unit ? "of " + *unit : "on this node") << ". Lift the pause with '"
            << resumeCommand(unit) << "'.\n";
  return kExitOk;
}

int resume(int argc, char** argv) {
  static constexpr OptionSpec kOptions[] = {{"unit", /*takesValue=*/true},
                                            {"socket", /*takesValue=*/true}};
  auto parsed = Arguments::parse(argc, argv, kOptions, 0, kResumeUsage);
  if (const int* exit = std::get_if<int>(&parsed)) return *exit;
  const Arguments& arguments = std::get<Arguments>(parsed);

  const std::optional<std::string> unit = unitOption(arguments);
  nlohmann::json request = {{"command", control::command::kResume}};
  if (unit) request["unit"] = *unit;
  const control::ControlClient client(
      arguments.value("socket").value_or(control::kDefaultSocketPath));
  auto result = client.call(request);
  if (!result) {
    std::cerr << "nodewarden-agent: " << result.status().message() << "\n";
    return kExitInvalid;
  }
  const bool resumed = result->is_object() && result->value("resumed", false);
  if (resumed) {
    std::cout << "Resumed " << subjectText(unit) << ": the agent enforces and heals "
              << (unit ? "it" : "the node") << " again.\n";
  } else {
    std::cout << (unit ? *unit : "The node") << " was not paused.\n";
  }
  // What still holds, so that nobody takes one resume for the end of all pauses.
  const nlohmann::json paused =
      result->is_object() ? result->value("paused", nlohmann::json()) : nlohmann::json();
  if (unit && entry(paused, std::nullopt).is_object()) {
    std::cout << "The node as a whole is still paused: lift that with 'nodewarden-agent resume'.\n";
  }
  if (!unit && paused.is_object() && paused.contains("units") && paused["units"].is_object()) {
    for (const auto& [name, pause] : paused["units"].items()) {
      std::cout << name << " is still paused: lift that with '" << resumeCommand(name) << "'.\n";
    }
  }
  return kExitOk;
}

}  // namespace nodewarden::cmd
