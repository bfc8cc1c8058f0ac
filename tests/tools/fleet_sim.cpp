// fleet-sim: a client of the control plane for tests and bench/fleet. It
// makes the single raw calls the security tests judge (probe), enrolls one
// node as the agent does (enroll), and simulates a fleet of agents in one
// process (load).

#include <grpcpp/grpcpp.h>
#include <poll.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstring>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "agent/cmd/arguments.h"
#include "agent/cmd/commands.h"
#include "agent/core/atomic_file.h"
#include "agent/core/duration.h"
#include "agent/pki/csr.h"
#include "agent/pki/key.h"
#include "nodewarden/v1/control.grpc.pb.h"
#include "tests/tools/simulated_fleet.h"

namespace nodewarden::fleetsim {
namespace {

using cmd::Arguments;
using cmd::kExitInvalid;
using cmd::kExitOk;
using cmd::kExitUsage;
using cmd::OptionSpec;

constexpr char kUsage[] = R"(Usage: fleet-sim probe|enroll|load [OPTIONS]

  fleet-sim probe --server HOST:PORT --ca CA.pem [--cert C --key K] --case CASE
                  [--node NAME] [--token TOKEN]
      One call, over TLS verified with CA.pem, with the client certificate
      when --cert is given. Prints {"code": "...", "message": "..."} and
      exits 0 whatever the status. Cases:
        connect        Node.Connect: a hello, then the first server message
                       or the stream's status
        desired-state  Node.GetDesiredState for --node
        enroll         Enrollment.Enroll for --node with --token and a CSR
                       for a new key (no GetClusterInfo first)

  fleet-sim enroll --server HOST:PORT --token TOKEN --ca-pin PIN --name NAME
                   --dir DIR
      Enrolls NAME as the agent does; writes DIR/node.key, node.crt, ca.crt.

  fleet-sim load --server HOST:PORT --token TOKEN --ca-pin PIN --agents N
                 [--report-interval 30s] [--duration 1h] --state-dir DIR
      Simulates N agents named sim-00001... (identities kept in DIR/NAME and
      reused). Reads commands on stdin, answers each with one JSON line:
        stats   agents connected, report latency (p50_ms, p99_ms), pushes
        reset   forget the latencies measured so far
        mark    start the clock for the next push (pushed_since_mark, push_all_s)
        quit    close every stream and exit (so does the end of --duration)
)";

constexpr auto kCallTimeout = std::chrono::seconds(15);
constexpr size_t kMaxPemBytes = 1 << 20;

void printJson(const nlohmann::json& value) {
  std::cout << value.dump() << std::endl;  // flushed: the reader waits for the line
}

int fail(const std::string& message) {
  std::cerr << "fleet-sim: " << message << "\n";
  return kExitInvalid;
}

std::optional<std::string> readPem(const std::optional<std::string>& path, std::string& error) {
  if (!path) return std::string();
  auto pem = core::readFile(*path, kMaxPemBytes);
  if (!pem) {
    error = pem.status().message();
    return std::nullopt;
  }
  return std::move(*pem);
}

// ------------------------------------------------------------------ probe

grpc::Status probeConnect(v1::Node::Stub& stub, const std::string& node, std::string& answer) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + kCallTimeout);
  auto stream = stub.Connect(&context);
  v1::AgentMessage hello;
  hello.mutable_hello()->mutable_facts()->set_hostname(node);
  // A write to a stream the server already ended fails; its status says why.
  if (stream->Write(hello)) {
    v1::ServerMessage first;
    if (stream->Read(&first)) {
      answer = first.has_ack() ? "ack " + std::to_string(first.ack().sequence())
                               : "desired state " + first.desired_state().version();
      // Finish() waits for every message to be read: the desired state may follow.
      stream->WritesDone();
      for (v1::ServerMessage more; stream->Read(&more);) {
      }
    }
  }
  return stream->Finish();
}

int probe(int argc, char** argv) {
  static constexpr OptionSpec kOptions[] = {{"server", true}, {"ca", true},   {"cert", true},
                                            {"key", true},    {"case", true}, {"node", true},
                                            {"token", true}};
  auto parsed = Arguments::parse(argc, argv, kOptions, 0, kUsage);
  if (const int* exit = std::get_if<int>(&parsed)) return *exit;
  const Arguments& args = std::get<Arguments>(parsed);
  if (!args.value("server") || !args.value("ca") || !args.value("case")) {
    return fail("probe needs --server, --ca and --case");
  }
  if (args.has("cert") != args.has("key")) return fail("--cert and --key go together");
  std::string error;
  auto ca = readPem(args.value("ca"), error);
  auto certificate = readPem(args.value("cert"), error);
  auto key = readPem(args.value("key"), error);
  if (!ca || !certificate || !key) return fail(error);

  grpc::SslCredentialsOptions tls;
  tls.pem_root_certs = *ca;
  tls.pem_cert_chain = *certificate;
  tls.pem_private_key = *key;
  auto channel = grpc::CreateChannel(*args.value("server"), grpc::SslCredentials(tls));
  const std::string node = args.value("node").value_or("");
  const std::string which = *args.value("case");

  grpc::Status status;
  std::string answer;
  if (which == "connect") {
    status = probeConnect(*v1::Node::NewStub(channel), node, answer);
  } else if (which == "desired-state") {
    if (node.empty()) return fail("--case desired-state needs --node");
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + kCallTimeout);
    v1::DesiredStateRequest request;
    request.set_node_name(node);
    v1::DesiredState state;
    status = v1::Node::NewStub(channel)->GetDesiredState(&context, request, &state);
    answer = "desired state " + state.version();
  } else if (which == "enroll") {
    if (node.empty() || !args.value("token")) return fail("--case enroll needs --node and --token");
    auto newKey = pki::PrivateKey::generate();
    if (!newKey) return fail(newKey.status().message());
    auto csr = pki::makeCsr(*newKey, node);
    if (!csr) return fail(csr.status().message());
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + kCallTimeout);
    v1::EnrollRequest request;
    request.set_token(*args.value("token"));
    request.set_node_name(node);
    request.set_csr(*csr);
    v1::EnrollResponse response;
    status = v1::Enrollment::NewStub(channel)->Enroll(&context, request, &response);
    answer = "enrolled in group " + response.group();
  } else {
    return fail("--case: \"" + which + "\" is not connect, desired-state or enroll");
  }
  printJson({{"code", statusCodeName(status.error_code())},
             {"message", status.ok() ? answer : status.error_message()}});
  return kExitOk;
}

// ----------------------------------------------------------------- enroll

int enroll(int argc, char** argv) {
  static constexpr OptionSpec kOptions[] = {
      {"server", true}, {"token", true}, {"ca-pin", true}, {"name", true}, {"dir", true}};
  auto parsed = Arguments::parse(argc, argv, kOptions, 0, kUsage);
  if (const int* exit = std::get_if<int>(&parsed)) return *exit;
  const Arguments& args = std::get<Arguments>(parsed);
  for (const char* required : {"server", "token", "ca-pin", "name", "dir"}) {
    if (!args.value(required)) return fail(std::string("enroll needs --") + required);
  }
  const std::string name = *args.value("name");
  const std::string directory = *args.value("dir");
  auto identity = enrollInto({*args.value("server"), *args.value("token"), *args.value("ca-pin")},
                             name, directory, /*reuse=*/false);
  if (!identity) return fail("Failed to enroll " + name + ": " + identity.status().message());
  const fleet::IdentityFiles files = identityFilesIn(directory);
  printJson(
      {{"node", name}, {"key", files.key}, {"certificate", files.certificate}, {"ca", files.ca}});
  return kExitOk;
}

// ------------------------------------------------------------------- load

// Lines from stdin, waiting no later than a deadline. After the end of
// input it only waits: the run ends at the deadline or on `quit`.
class LineReader final {
 public:
  std::optional<std::string> next(std::chrono::steady_clock::time_point deadline) {
    for (;;) {
      if (const size_t newline = buffer_.find('\n'); newline != std::string::npos) {
        std::string line = buffer_.substr(0, newline);
        buffer_.erase(0, newline + 1);
        return line;
      }
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return std::nullopt;
      pollfd input{STDIN_FILENO, POLLIN, 0};
      const int ready = poll(eof_ ? nullptr : &input, eof_ ? 0 : 1,
                             static_cast<int>(std::min<int64_t>(left.count(), 1000)));
      if (ready <= 0) continue;  // timeout, or EINTR
      char chunk[4096];
      const ssize_t n = read(STDIN_FILENO, chunk, sizeof(chunk));
      if (n > 0) {
        buffer_.append(chunk, static_cast<size_t>(n));
      } else if (n == 0 || errno != EINTR) {
        eof_ = true;
      }
    }
  }

 private:
  std::string buffer_;
  bool eof_ = false;
};

// To a thousandth: more digits would be noise.
nlohmann::json rounded(const std::optional<double>& value) {
  if (!value) return nullptr;
  return std::round(*value * 1000) / 1000;
}

nlohmann::json statsJson(const LoadStats& stats) {
  return {
      {"agents_connected", stats.connected},
      {"reports", stats.reports},
      {"p50_ms", rounded(stats.p50Ms)},
      {"p99_ms", rounded(stats.p99Ms)},
      {"pushed_since_mark", stats.pushedSinceMark},
      {"push_all_s", rounded(stats.pushAllSeconds)},
      {"agents_enrolled", stats.enrolled},
      {"unacknowledged", stats.unacknowledged},
      {"enroll_failures", stats.enrollFailures},
      {"failed_connects", stats.failedConnects},
      {"disconnects", stats.disconnects},
      {"last_error", stats.lastError},
  };
}

// Every agent has its own connection: as many descriptors as agents, and more.
void raiseFileLimit(size_t agents) {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &limit) != 0) {
      std::cerr << "fleet-sim: Failed to raise the open files limit: " << std::strerror(errno)
                << ", ignoring\n";
    }
  }
  if (limit.rlim_cur != RLIM_INFINITY && limit.rlim_cur < agents + 100) {
    std::cerr << "fleet-sim: the open files limit (" << limit.rlim_cur << ") is below what "
              << agents << " agents need; some will fail to connect\n";
  }
}

int load(int argc, char** argv) {
  static constexpr OptionSpec kOptions[] = {
      {"server", true},          {"token", true},    {"ca-pin", true},   {"agents", true},
      {"report-interval", true}, {"duration", true}, {"state-dir", true}};
  auto parsed = Arguments::parse(argc, argv, kOptions, 0, kUsage);
  if (const int* exit = std::get_if<int>(&parsed)) return *exit;
  const Arguments& args = std::get<Arguments>(parsed);
  for (const char* required : {"server", "token", "ca-pin", "agents", "state-dir"}) {
    if (!args.value(required)) return fail(std::string("load needs --") + required);
  }
  LoadOptions options;
  options.target = {*args.value("server"), *args.value("token"), *args.value("ca-pin")};
  options.stateDirectory = *args.value("state-dir");
  char* end = nullptr;
  const std::string agents = *args.value("agents");
  options.agents = std::strtoul(agents.c_str(), &end, 10);
  if (agents.empty() || *end != '\0' || options.agents == 0 || options.agents > 99999) {
    return fail("--agents: \"" + agents + "\" is not a number from 1 to 99999");
  }
  auto interval = core::parsePositiveDuration(args.value("report-interval").value_or("30s"));
  if (!interval) return fail("--report-interval: " + interval.status().message());
  options.reportInterval = std::chrono::duration_cast<std::chrono::milliseconds>(*interval);
  auto duration = core::parsePositiveDuration(args.value("duration").value_or("1h"));
  if (!duration) return fail("--duration: " + duration.status().message());

  raiseFileLimit(options.agents);
  const auto deadline = std::chrono::steady_clock::now() + *duration;
  SimulatedFleet fleet(std::move(options));
  fleet.start();
  LineReader input;
  while (auto line = input.next(deadline)) {
    if (*line == "stats") {
      printJson(statsJson(fleet.stats()));
    } else if (*line == "mark") {
      fleet.mark();
      printJson({{"marked", true}});
    } else if (*line == "reset") {
      fleet.resetLatencies();
      printJson({{"reset", true}});
    } else if (*line == "quit") {
      break;
    } else if (!line->empty()) {
      printJson({{"error", "unknown command \"" + *line + "\": stats, reset, mark or quit"}});
    }
  }
  if (!fleet.stop()) {
    std::cerr << "fleet-sim: some streams did not end in time; exiting without them\n";
    std::cout.flush();
    std::_Exit(kExitInvalid);
  }
  return kExitOk;
}

}  // namespace
}  // namespace nodewarden::fleetsim

int main(int argc, char** argv) {
  using namespace nodewarden::fleetsim;
  const std::string mode = argc > 1 ? argv[1] : "";
  if (mode == "probe") return probe(argc - 1, argv + 1);
  if (mode == "enroll") return enroll(argc - 1, argv + 1);
  if (mode == "load") return load(argc - 1, argv + 1);
  if (mode == "--help" || mode == "-h") {
    std::cout << kUsage;
    return kExitOk;
  }
  std::cerr << kUsage;
  return kExitUsage;
}
