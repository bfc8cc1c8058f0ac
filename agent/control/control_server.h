#pragma once

#include <sys/types.h>

#include <cstddef>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "agent/core/clock.h"
#include "agent/core/loop.h"
#include "agent/core/status.h"

namespace nodewarden::control {

// Where the running agent answers `nodewarden-agent status`, `pause` and
// `resume`. systemd makes the directory (RuntimeDirectory=nodewarden).
inline constexpr char kDefaultSocketPath[] = "/run/nodewarden/agent.sock";

// The protocol, one exchange per connection: the client sends one JSON object
// on one line, the agent answers with one JSON object on one line and closes.
//
//   {"command": "status"}
//   {"command": "pause", "reason": "kernel upgrade", "for": "30m", "unit": "kubelet.service"}
//       ("for" and "unit" are optional; without "unit" the whole node is paused)
//   {"command": "resume", "unit": "kubelet.service"}   ("unit" optional)
//
//   {"ok": true, "result": {...}}   or   {"ok": false, "error": "message for the operator"}
//
// Results. "status" answers with the agent's status; every field may be
// missing or null when the agent does not know it (yet), and readers cope:
//
//   {"agent": {"version": "0.1.0", "pid": 812, "since": "2026-11-22T07:00:00Z"},
//    "paused": {"node": {"reason": "…", "since": "…", "until": "…"|null}|null,
//               "units": {"kubelet.service": {"reason": …, "since": …, "until": …}}},
//    "converge": {"lastCheck": "…"|null,
//                 "result": "ok"|"failed"|"rejected"|"pending"|"applying"|"paused",
//                 "changed": 3, "failed": 0, "durationMs": 120, "message": "…"},
//    "conditions": [{"subject": "node"|"kubelet.service", "type": "Healthy", "status": true,
//                    "reason": "Running", "message": "…", "since": "…"}],
//    "components": [{"unit": "kubelet.service", "activeState": "active",
//                    "subState": "running", "mainPid": 1234, "restarts": 0,
//                    "nextRestart": "…"|null,
//                    "probe": {"check": "HTTP GET http://127.0.0.1:10248/healthz",
//                              "failing": false, "consecutiveFailures": 0,
//                              "lastResult": "ok"|"<what failed>", "lastCheck": "…"}|null}],
//    "events": [{"time": "…", "subject": "…", "reason": "Restarted", "message": "…",
//                "type": "Normal"|"Warning"}],
//    "disk": {"mounts": [{"mount": "/", "percent": 41.5|null, "error": ""}],
//             "lastCleanup": "…"|null}}   (only while diskPressure is configured)
//
// Times are RFC 3339 UTC (heal::formatTime); "paused" is heal::PauseStore::toJson(),
// "conditions" and "events" are heal::HealthBoard::toJson()'s, oldest event first.
// "pause" and "resume" answer with the pauses after the change, and "resume"
// says whether there was anything to lift:
//
//   pause:  {"paused": <as in status>}
//   resume: {"resumed": true|false, "paused": <as in status>}
namespace command {
inline constexpr char kStatus[] = "status";
inline constexpr char kPause[] = "pause";
inline constexpr char kResume[] = "resume";
}  // namespace command

// A pause asked for by the operator, checked for form but not yet for sense
// (the handler checks the reason and the unit).
struct PauseRequest {
  std::string reason;
  std::optional<core::Duration> duration;  // "for"; unset: until resumed
  std::optional<std::string> unit;         // unset: the whole node
};

// What the agent does for each command; implemented by the daemon. Called on
// the loop thread, and expected to answer at once.
class ControlHandler {
 public:
  virtual ~ControlHandler() = default;
  virtual nlohmann::json status() = 0;
  virtual core::Result<nlohmann::json> pause(const PauseRequest& request) = 0;
  virtual core::Result<nlohmann::json> resume(const std::optional<std::string>& unit) = 0;
};

// Serves the control protocol on a Unix socket that only root may use: the
// socket is 0600 in a 0700 directory, and each request's peer must be uid 0
// as well (SO_PEERCRED). Every connection is bounded in size, in time and in
// number, so a client that stalls or floods holds nothing for long. Lives on
// the loop thread; destroying it closes every connection and removes the
// socket.
class ControlServer final {
 public:
  struct Options {
    std::string path = kDefaultSocketPath;
    // From accepting a connection to its answer being written.
    core::Duration timeout = std::chrono::seconds(5);
    size_t maxRequestBytes = 64 * 1024;
    // Connections past this are answered with an error at once.
    size_t maxConnections = 16;
    // Only this user may ask; tests may name their own.
    uid_t allowedUid = 0;
  };

  // Binds the socket, replacing one left by an agent that is gone, and starts
  // accepting. Fails when another agent is listening on it.
  static core::Result<std::unique_ptr<ControlServer>> start(core::Loop& loop, core::Clock& clock,
                                                            ControlHandler& handler,
                                                            Options options);
  ~ControlServer();

  ControlServer(const ControlServer&) = delete;
  ControlServer& operator=(const ControlServer&) = delete;

  const std::string& path() const { return options_.path; }
  size_t connections() const { return connections_.size(); }

 private:
  class Connection;

  ControlServer(core::Loop& loop, core::Clock& clock, ControlHandler& handler, Options options);
  core::Status listen();
  void acceptAll();
  void close(Connection* connection);
  nlohmann::json dispatch(const std::string& line, uid_t peerUid);

  core::Loop& loop_;
  core::Clock& clock_;
  ControlHandler& handler_;
  const Options options_;
  core::UniqueFd listenFd_;
  core::EventSource listenSource_;
  std::unique_ptr<core::Timer> acceptRetryTimer_;
  // The socket file this server made, to remove only that one at the end.
  dev_t socketDevice_ = 0;
  ino_t socketInode_ = 0;
  std::map<Connection*, std::unique_ptr<Connection>> connections_;
  // Closed connections wait here until the loop is out of their callbacks.
  std::vector<std::unique_ptr<Connection>> closed_;
  core::EventSource reaper_;
};

// {"ok": true, "result": result} and {"ok": false, "error": message}: the
// answers as the server writes them.
nlohmann::json okResponse(nlohmann::json result);
nlohmann::json errorResponse(const std::string& message);

}  // namespace nodewarden::control
