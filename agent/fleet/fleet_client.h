#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "agent/core/clock.h"
#include "agent/core/loop.h"
#include "agent/fleet/enroller.h"
#include "agent/fleet/node_facts.h"
#include "agent/fleet/spool.h"
#include "nodewarden/v1/control.pb.h"

namespace nodewarden::fleet {

struct FleetConfig {
  std::string server;  // host:port; empty: no server, the local state file
  std::string bootstrapToken;
  std::string caCertHash;
  std::string nodeName;
  std::map<std::string, std::string> labels;
  core::Duration usageInterval = std::chrono::seconds(60);
};

// What the fleet client hands the rest of the agent, on the loop thread.
class FleetListener {
 public:
  virtual ~FleetListener() = default;
  // A desired state from the server. Returns why it was rejected, or "" once
  // it is validated and cached (and a converge is on its way).
  virtual std::string desiredState(const std::string& version, const std::string& document) = 0;
  virtual void convergeNow(const std::string& reason) = 0;
  // The version of the cached state the agent enforces ("" for none).
  virtual std::string enforcedVersion() const = 0;
};

// The agent's side of the control plane: enrolls once, then keeps one stream
// to the server open, reconnecting with backoff and jitter. Everything the
// agent reports goes through the spool, so what the server has not
// acknowledged is sent again, in order, after a reconnect or a restart.
// Lives on the loop thread; gRPC's threads reach it through Loop::post().
class FleetClient final {
 public:
  FleetClient(core::Loop& loop, core::Clock& clock, FleetConfig config, std::string stateDirectory,
              Spool spool, FleetListener& listener);
  ~FleetClient();

  void start();

  // Reports, spooled and sent in order.
  void report(v1::AgentMessage message);

  // "connected to host:port", "enrolling with …", "server unreachable: …".
  const std::string& status() const { return status_; }
  bool connected() const { return stream_ != nullptr && streamUp_; }
  // Reports waiting for the server's acknowledgement.
  size_t spooled() const { return spool_.size(); }

 private:
  class Stream;

  void enrollInBackground();
  void enrolled(core::Result<Identity> identity);
  void connect();
  void streamEnded(const std::string& error, bool refused);
  void received(v1::ServerMessage message);
  void writeNext();
  void retryLater(const std::string& why);
  void sampleUsage();

  core::Loop& loop_;
  core::Clock& clock_;
  FleetConfig config_;
  IdentityFiles files_;
  Spool spool_;
  FleetListener& listener_;
  UsageSampler usage_;

  std::optional<Identity> identity_;
  std::thread enrolling_;
  std::unique_ptr<Stream> stream_;
  bool streamUp_ = false;  // the hello was written
  core::MonotonicTime streamStarted_{};
  bool writing_ = false;
  uint64_t written_ = 0;  // the highest sequence written on this stream
  int failures_ = 0;
  std::string status_ = "starting";
  std::unique_ptr<core::Timer> retryTimer_;
  std::unique_ptr<core::Timer> usageTimer_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace nodewarden::fleet
