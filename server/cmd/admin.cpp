// The admin commands: each asks the running server over its root-only Unix
// socket and prints the answer as a table, or as JSON with --json.

#include <unistd.h>

#include <google/protobuf/util/json_util.h>
#include <grpcpp/grpcpp.h>

#include <cerrno>
#include <cstring>
#include <iostream>

#include <fmt/chrono.h>
#include <fmt/format.h>

#include "agent/cmd/arguments.h"
#include "agent/cmd/commands.h"
#include "agent/core/atomic_file.h"
#include "agent/core/duration.h"
#include "nodewarden/v1/control.grpc.pb.h"
#include "server/cmd/commands.h"
#include "server/cmd/server_config.h"

namespace nodewarden::server::cmd {

namespace {

using nodewarden::cmd::Arguments;
using nodewarden::cmd::kExitInvalid;
using nodewarden::cmd::kExitOk;
using nodewarden::cmd::kExitUsage;
using nodewarden::cmd::OptionSpec;

constexpr auto kCallTimeout = std::chrono::seconds(30);
constexpr size_t kMaxStateBytes = 16 << 20;

int fail(const std::string& message) {
  std::cerr << "nodewarden-server: " << message << "\n";
  return kExitInvalid;
}

// A stub on the admin socket, or the reason there is none.
std::unique_ptr<v1::Admin::Stub> connect(const Arguments& args, std::string& error) {
  const std::string socket = args.value("socket").value_or(std::string(kDefaultAdminSocket));
  if (access(socket.c_str(), R_OK | W_OK) != 0) {
    if (errno == EACCES) {
      error = "permission denied on " + socket + ": the admin socket is root only; run as root";
    } else if (errno == ENOENT) {
      error = "no server is running here (" + socket + " does not exist)";
    } else {
      error = socket + ": " + std::strerror(errno);
    }
    return nullptr;
  }
  return v1::Admin::NewStub(
      grpc::CreateChannel("unix:" + socket, grpc::InsecureChannelCredentials()));
}

std::unique_ptr<grpc::ClientContext> context() {
  auto out = std::make_unique<grpc::ClientContext>();
  out->set_deadline(std::chrono::system_clock::now() + kCallTimeout);
  return out;
}

int failed(const grpc::Status& status) {
  if (status.error_code() == grpc::StatusCode::UNAVAILABLE) {
    return fail("the server does not answer: " + status.error_message());
  }
  return fail(status.error_message());
}

int printJson(const google::protobuf::Message& message) {
  std::string out;
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = true;
  options.preserve_proto_field_names = false;
  (void)google::protobuf::util::MessageToJsonString(message, &out, options);
  std::cout << out;
  if (!out.ends_with('\n')) std::cout << "\n";
  return kExitOk;
}

std::string when(int64_t micros) {
  if (micros == 0) return "-";
  const auto time = std::chrono::system_clock::time_point(std::chrono::microseconds(micros));
  return fmt::format("{:%Y-%m-%d %H:%M:%S} UTC",
                     fmt::gmtime(std::chrono::system_clock::to_time_t(time)));
}

std::string ago(int64_t micros) {
  if (micros == 0) return "never";
  const auto time = std::chrono::system_clock::time_point(std::chrono::microseconds(micros));
  auto elapsed =
      std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now() - time);
  if (elapsed.count() < 0) elapsed = std::chrono::seconds(0);
  return core::formatDuration(elapsed) + " ago";
}

std::string labelsText(const google::protobuf::Map<std::string, std::string>& labels) {
  std::map<std::string, std::string> sorted(labels.begin(), labels.end());
  std::string out;
  for (const auto& [key, value] : sorted) out += (out.empty() ? "" : ",") + key + "=" + value;
  return out.empty() ? "-" : out;
}

std::string conditionsText(const v1::NodeInfo& node) {
  std::string out;
  for (const auto& condition : node.conditions()) {
    if (!condition.status() || condition.type() == "Healthy") continue;
    out += (out.empty() ? "" : ",") + condition.type() +
           (condition.subject() == "node" ? "" : "(" + condition.subject() + ")");
  }
  return out.empty() ? "-" : out;
}

}  // namespace

// --------------------------------------------------------------------- token

constexpr char kTokenUsage[] =
    R"(Usage: nodewarden-server token create --group GROUP [--ttl DURATION] [--uses N]
                                      [--labels k=v,...] [--description TEXT] [--json]
       nodewarden-server token list [--json]

Bootstrap tokens, in kubeadm's format (abcdef.0123456789abcdef): a node
enrolls into GROUP with one, as often as --uses allows (default: no limit),
until its TTL runs out (default 24h).
)";

int token(int argc, char** argv) {
  static constexpr OptionSpec kOptions[] = {
      {"group", true},       {"ttl", true},   {"uses", true},  {"labels", true},
      {"description", true}, {"json", false}, {"socket", true}};
  auto parsed = Arguments::parse(argc, argv, kOptions, 1, kTokenUsage);
  if (const int* exit = std::get_if<int>(&parsed)) return *exit;
  const Arguments& args = std::get<Arguments>(parsed);
  const std::string& verb = args.operands().front();
  std::string error;
  auto admin = connect(args, error);

  if (verb == "create") {
    v1::CreateTokenRequest request;
    if (!args.value("group")) return fail("token create needs --group");
    request.set_group(*args.value("group"));
    if (auto ttl = args.value("ttl")) {
      auto parsedTtl = core::parsePositiveDuration(*ttl);
      if (!parsedTtl) return fail("--ttl: " + parsedTtl.status().message());
      request.set_ttl_seconds(std::chrono::duration_cast<std::chrono::seconds>(*parsedTtl).count());
    }
    if (auto uses = args.value("uses")) {
      char* end = nullptr;
      const unsigned long n = std::strtoul(uses->c_str(), &end, 10);
      if (uses->empty() || *end != '\0' || n == 0 || n > UINT32_MAX) {
        return fail("--uses: \"" + *uses + "\" is not a positive number");
      }
      request.set_usage_limit(static_cast<uint32_t>(n));
    }
    if (auto labels = args.value("labels")) {
      std::string_view rest = *labels;
      while (!rest.empty()) {
        const size_t comma = rest.find(',');
        const std::string_view pair = rest.substr(0, comma);
        const size_t equals = pair.find('=');
        if (equals == std::string_view::npos || equals == 0) {
          return fail("--labels: \"" + std::string(pair) + "\" is not key=value");
        }
        (*request.mutable_labels())[std::string(pair.substr(0, equals))] =
            std::string(pair.substr(equals + 1));
        rest = comma == std::string_view::npos ? "" : rest.substr(comma + 1);
      }
    }
    request.set_description(args.value("description").value_or(""));
    if (!admin) return fail(error);
    v1::TokenInfo created;
    if (auto status = admin->CreateToken(context().get(), request, &created); !status.ok()) {
      return failed(status);
    }
    if (args.has("json")) return printJson(created);
    std::cout << created.token() << "\n";
    return kExitOk;
  }
  if (verb == "list") {
    if (!admin) return fail(error);
    v1::ListTokensResponse response;
    if (auto status = admin->ListTokens(context().get(), {}, &response); !status.ok()) {
      return failed(status);
    }
    if (args.has("json")) return printJson(response);
    std::cout << fmt::format("{:<8} {:<16} {:<24} {:<9} {}\n", "ID", "GROUP", "EXPIRES", "USES",
                             "LABELS");
    for (const auto& t : response.tokens()) {
      std::cout << fmt::format("{:<8} {:<16} {:<24} {:<9} {}\n", t.id(), t.group(),
                               when(t.expires_us()),
                               std::to_string(t.uses()) + "/" +
                                   (t.usage_limit() == 0 ? "-" : std::to_string(t.usage_limit())),
                               labelsText(t.labels()));
    }
    return kExitOk;
  }
  std::cerr << "nodewarden-server token: unknown verb \"" << verb << "\"\n\n" << kTokenUsage;
  return kExitUsage;
}

// --------------------------------------------------------------------- state

constexpr char kStateUsage[] =
    R"(Usage: nodewarden-server state set (--group GROUP | --node NODE) FILE
       nodewarden-server state show [--group GROUP | --node NODE] [--json]

The desired state of a group of nodes, or one node's overrides merged on top
of its group's. `set` validates FILE as the agent would (errors name its
line and column), stores it as the next revision and sends it to the
connected nodes it concerns.
)";

int state(int argc, char** argv) {
  static constexpr OptionSpec kOptions[] = {
      {"group", true}, {"node", true}, {"json", false}, {"socket", true}};
  auto parsed = Arguments::parse(argc, argv, kOptions, nodewarden::cmd::kAnyOperands, kStateUsage);
  if (const int* exit = std::get_if<int>(&parsed)) return *exit;
  const Arguments& args = std::get<Arguments>(parsed);
  if (args.operands().empty()) {
    std::cerr << kStateUsage;
    return kExitUsage;
  }
  const std::string& verb = args.operands().front();
  std::string error;
  auto admin = connect(args, error);

  if (verb == "set") {
    if (args.operands().size() != 2 || args.has("group") == args.has("node")) {
      std::cerr << kStateUsage;
      return kExitUsage;
    }
    const std::string& file = args.operands()[1];
    auto document = core::readFile(file, kMaxStateBytes);
    if (!document) return fail(document.status().message());
    v1::SetStateRequest request;
    request.set_group(args.value("group").value_or(""));
    request.set_node(args.value("node").value_or(""));
    request.set_document(*document);
    request.set_file_name(file);
    if (!admin) return fail(error);
    v1::SetStateResponse response;
    if (auto status = admin->SetState(context().get(), request, &response); !status.ok()) {
      if (status.error_code() == grpc::StatusCode::INVALID_ARGUMENT) {
        std::cerr << status.error_message() << "\n";
        return fail("state rejected; nothing changed");
      }
      return failed(status);
    }
    std::cout << fmt::format("Stored revision {} of {} {}; sent to {} connected node{}\n",
                             response.revision(), args.has("group") ? "group" : "node",
                             request.group().empty() ? request.node() : request.group(),
                             response.pushed(), response.pushed() == 1 ? "" : "s");
    return kExitOk;
  }
  if (verb == "show") {
    if (args.operands().size() != 1) {
      std::cerr << kStateUsage;
      return kExitUsage;
    }
    if (!admin) return fail(error);
    v1::GetStateRequest request;
    request.set_group(args.value("group").value_or(""));
    request.set_node(args.value("node").value_or(""));
    v1::GetStateResponse response;
    if (auto status = admin->GetState(context().get(), request, &response); !status.ok()) {
      return failed(status);
    }
    if (args.has("json")) return printJson(response);
    if (response.states().empty()) {
      std::cout << "No desired state stored"
                << (request.group().empty() && request.node().empty() ? "" : " for that") << "\n";
      return kExitOk;
    }
    for (const auto& s : response.states()) {
      std::cout << "# " << (s.node().empty() ? "group " + s.group() : "node " + s.node())
                << ", revision " << s.revision() << ", " << when(s.updated_us()) << "\n"
                << s.document();
      if (!s.document().ends_with('\n')) std::cout << "\n";
    }
    return kExitOk;
  }
  std::cerr << "nodewarden-server state: unknown verb \"" << verb << "\"\n\n" << kStateUsage;
  return kExitUsage;
}

// --------------------------------------------------------------------- nodes

constexpr char kNodesUsage[] = R"(Usage: nodewarden-server nodes list [--json]
       nodewarden-server nodes show NAME [--json]
       nodewarden-server nodes revoke NAME

Enrolled nodes: their group, when they were last seen, the desired state
they were sent and the one they applied, and their conditions. A revoked
node's certificate is refused from then on, and so is its name: a machine
comes back by enrolling under a new name.
)";

int nodes(int argc, char** argv) {
  static constexpr OptionSpec kOptions[] = {{"json", false}, {"socket", true}};
  auto parsed = Arguments::parse(argc, argv, kOptions, nodewarden::cmd::kAnyOperands, kNodesUsage);
  if (const int* exit = std::get_if<int>(&parsed)) return *exit;
  const Arguments& args = std::get<Arguments>(parsed);
  const auto& operands = args.operands();
  if (operands.empty() || (operands[0] == "list" && operands.size() != 1) ||
      (operands[0] != "list" && operands.size() != 2)) {
    std::cerr << kNodesUsage;
    return kExitUsage;
  }
  std::string error;
  auto admin = connect(args, error);
  if (!admin) return fail(error);
  const std::string& verb = operands[0];

  if (verb == "list") {
    v1::ListNodesResponse response;
    if (auto status = admin->ListNodes(context().get(), {}, &response); !status.ok()) {
      return failed(status);
    }
    if (args.has("json")) return printJson(response);
    std::cout << fmt::format("{:<24} {:<12} {:<14} {:<22} {:<9} {}\n", "NAME", "GROUP", "LAST SEEN",
                             "APPLIED", "RESULT", "CONDITIONS");
    for (const auto& n : response.nodes()) {
      std::string seen = n.revoked()     ? "revoked"
                         : n.connected() ? "connected"
                                         : ago(n.last_seen_us());
      std::string applied = n.applied_version().empty() ? "-" : n.applied_version();
      if (!n.desired_version().empty() && n.desired_version() != n.applied_version()) {
        applied += " (sent " + n.desired_version() + ")";
      }
      std::cout << fmt::format("{:<24} {:<12} {:<14} {:<22} {:<9} {}\n", n.name(), n.group(), seen,
                               applied, n.last_result().empty() ? "-" : n.last_result(),
                               conditionsText(n));
    }
    return kExitOk;
  }
  if (verb == "show") {
    v1::GetNodeRequest request;
    request.set_name(operands[1]);
    v1::NodeInfo n;
    if (auto status = admin->GetNode(context().get(), request, &n); !status.ok()) {
      return failed(status);
    }
    if (args.has("json")) return printJson(n);
    const auto& f = n.facts();
    std::cout << n.name() << (n.revoked() ? " (revoked)" : "") << "\n"
              << "  Group:        " << n.group() << "\n"
              << "  Labels:       " << labelsText(n.labels()) << "\n"
              << "  Connected:    "
              << (n.connected() ? "yes" : "no, last seen " + ago(n.last_seen_us())) << "\n"
              << "  Enrolled:     " << when(n.enrolled_us()) << "\n"
              << "  Certificate:  expires " << when(n.certificate_expires_us()) << "\n"
              << "  Desired:      " << (n.desired_version().empty() ? "-" : n.desired_version())
              << "\n"
              << "  Applied:      " << (n.applied_version().empty() ? "-" : n.applied_version())
              << (n.last_result().empty() ? "" : " (" + n.last_result() + ")") << "\n"
              << "  OS:           " << f.os() << ", kernel " << f.kernel() << "\n"
              << "  Machine:      " << f.cpus() << " CPUs, " << f.memory_bytes() / (1 << 20)
              << " MiB, machine-id " << f.machine_id() << "\n"
              << "  Agent:        " << f.agent_version() << "\n";
    if (n.dropped() > 0)
      std::cout << "  Dropped:      " << n.dropped() << " reports (spool full)\n";
    if (n.has_usage()) {
      const auto& u = n.usage();
      std::cout << fmt::format("  Usage:        CPU {:.1f}%, memory {} of {} MiB", u.cpu_percent(),
                               u.memory_used_bytes() >> 20, u.memory_total_bytes() >> 20);
      for (const auto& d : u.disks()) {
        if (d.size_bytes() > 0) {
          std::cout << fmt::format(", {} {:.0f}%", d.mount(),
                                   100.0 * double(d.used_bytes()) / double(d.size_bytes()));
        }
      }
      std::cout << "\n";
    }
    std::cout << "  Conditions:\n";
    for (const auto& c : n.conditions()) {
      std::cout << fmt::format("    {:<28} {:<14} {:<5} {}\n", c.subject(), c.type(),
                               c.status() ? "True" : "False", c.message());
    }
    if (n.has_last_report()) {
      const auto& r = n.last_report();
      std::cout << fmt::format("  Last converge: {} of {} at {}, {} ms\n", r.result(),
                               r.desired_version(), when(r.finished_at_us()),
                               r.duration_us() / 1000);
      for (const auto& res : r.resources()) {
        std::cout << fmt::format("    {} {}: {}{}\n", res.resource(), res.action(), res.outcome(),
                                 res.error().empty() ? "" : " (" + res.error() + ")");
      }
      if (!r.error().empty()) std::cout << "    " << r.error() << "\n";
    }
    if (!n.events().empty()) {
      std::cout << "  Events:\n";
      for (const auto& e : n.events()) {
        std::cout << fmt::format("    {} {} {}: {}\n", when(e.time_us()), e.subject(), e.reason(),
                                 e.message());
      }
    }
    return kExitOk;
  }
  if (verb == "revoke") {
    v1::RevokeNodeRequest request;
    request.set_name(operands[1]);
    v1::RevokeNodeResponse response;
    if (auto status = admin->RevokeNode(context().get(), request, &response); !status.ok()) {
      return failed(status);
    }
    std::cout << "Revoked node " << operands[1] << "\n";
    return kExitOk;
  }
  std::cerr << "nodewarden-server nodes: unknown verb \"" << verb << "\"\n\n" << kNodesUsage;
  return kExitUsage;
}

// -------------------------------------------------------------------- alerts

constexpr char kAlertsUsage[] = R"(Usage: nodewarden-server alerts list [--all] [--json]

Alerts raised by the limits of each node's group (disk usage, a node not
seen, a component crash-looping); --all shows resolved ones too.
)";

int alerts(int argc, char** argv) {
  static constexpr OptionSpec kOptions[] = {{"all", false}, {"json", false}, {"socket", true}};
  auto parsed = Arguments::parse(argc, argv, kOptions, 1, kAlertsUsage);
  if (const int* exit = std::get_if<int>(&parsed)) return *exit;
  const Arguments& args = std::get<Arguments>(parsed);
  if (args.operands().front() != "list") {
    std::cerr << kAlertsUsage;
    return kExitUsage;
  }
  std::string error;
  auto admin = connect(args, error);
  if (!admin) return fail(error);
  v1::ListAlertsRequest request;
  request.set_all(args.has("all"));
  v1::ListAlertsResponse response;
  if (auto status = admin->ListAlerts(context().get(), request, &response); !status.ok()) {
    return failed(status);
  }
  if (args.has("json")) return printJson(response);
  std::cout << fmt::format("{:<24} {:<12} {:<13} {:<24} {}\n", "NODE", "GROUP", "KIND", "SINCE",
                           "MESSAGE");
  for (const auto& a : response.alerts()) {
    std::cout << fmt::format(
        "{:<24} {:<12} {:<13} {:<24} {}{}\n", a.node(), a.group(), a.kind(), when(a.since_us()),
        a.message(), a.resolved_us() == 0 ? "" : " (resolved " + when(a.resolved_us()) + ")");
  }
  return kExitOk;
}

}  // namespace nodewarden::server::cmd
