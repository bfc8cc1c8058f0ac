#pragma once

#include <grpcpp/support/status.h>

#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "agent/core/status.h"
#include "agent/fleet/enroller.h"

namespace nodewarden::fleetsim {

// "PERMISSION_DENIED": the name gRPC's documentation and other clients use.
std::string_view statusCodeName(grpc::StatusCode code);

// Where a simulated node's identity lives: DIR/node.key, DIR/node.crt, DIR/ca.crt.
fleet::IdentityFiles identityFilesIn(const std::string& directory);

struct EnrollTarget {
  std::string server;  // host:port
  std::string token;
  std::string caPin;  // sha256:<hex>
};

// Enrolls `name` the way the agent does (fleet::enroll) into `directory`,
// which it creates. With `reuse`, an identity already there from the CA the
// pin names is returned as it is, and the server is not asked. Blocking.
core::Result<fleet::Identity> enrollInto(const EnrollTarget& target, const std::string& name,
                                         const std::string& directory, bool reuse);

// The threads and the bookkeeping behind SimulatedFleet.
class LoadDriver;

struct LoadOptions {
  EnrollTarget target;
  size_t agents = 0;
  std::chrono::milliseconds reportInterval = std::chrono::seconds(30);
  // One directory per node under it, and the nodes' last sequence numbers:
  // a second run skips enrollment and numbers on, as a restarted agent does.
  std::string stateDirectory;
};

struct LoadStats {
  size_t enrolled = 0;
  size_t connected = 0;
  // Reports acknowledged since the start or the last resetLatencies(), and
  // their latency from StartWrite to the Ack naming their sequence.
  size_t reports = 0;
  std::optional<double> p50Ms;
  std::optional<double> p99Ms;
  // Reports written and not acknowledged yet.
  size_t unacknowledged = 0;
  // Agents that got a desired-state version new to them since mark(), and
  // the time from mark() until the last of all agents did.
  size_t pushedSinceMark = 0;
  std::optional<double> pushAllSeconds;
  size_t enrollFailures = 0;
  size_t failedConnects = 0;  // streams that ended before the server answered the hello
  size_t disconnects = 0;     // streams that ended after it did
  std::string lastError;
};

// N agents in one process, each with its own identity, channel (its own TCP
// connection) and stream, driven by gRPC's callback API: a few threads in
// all, none per agent. Each agent says hello, then sends a ConvergeReport
// every report interval, the agents' reports spread evenly over the interval.
// A stream that ends is opened again after a backoff, as the agent does.
class SimulatedFleet final {
 public:
  explicit SimulatedFleet(LoadOptions options);
  ~SimulatedFleet();
  SimulatedFleet(const SimulatedFleet&) = delete;
  SimulatedFleet& operator=(const SimulatedFleet&) = delete;

  // Enrolls (a few threads) and connects (a bounded number of handshakes at
  // a time) in the background.
  void start();
  // Starts the clock for pushedSinceMark and pushAllSeconds.
  void mark();
  // Forgets the latencies measured so far: the ramp-up's are not the steady state's.
  void resetLatencies();
  LoadStats stats() const;
  // Cancels every stream and waits for them to end. False when some did not
  // end in time: the process should then exit without destroying the fleet.
  [[nodiscard]] bool stop();

 private:
  std::unique_ptr<LoadDriver> driver_;
};

}  // namespace nodewarden::fleetsim
