#include "agent/control/status_text.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <sstream>

#include "agent/heal/health.h"

namespace nodewarden::control {
namespace {

using nlohmann::json;

// A status as the agent sends it: a crash-looping containerd, kubelet paused
// by an operator and healthy.
const json kSample = json::parse(R"(
{"agent": {"version": "0.1.0", "pid": 812, "since": "2026-11-22T07:15:00Z"},
 "paused": {"node": null,
            "units": {"kubelet.service": {"reason": "debugging cgroups", "since": "2026-11-22T09:20:00Z",
                                          "until": "2026-11-22T09:50:00Z"}}},
 "converge": {"lastCheck": "2026-11-22T09:28:00Z", "result": "ok", "changed": 3, "failed": 0,
              "durationMs": 120, "message": ""},
 "conditions": [
   {"subject": "node", "type": "DiskPressure", "status": false, "reason": "Ok",
    "message": "/var at 41%", "since": "2026-11-22T07:15:00Z"},
   {"subject": "containerd.service", "type": "CrashLooping", "status": true,
    "reason": "RestartedTooOften", "message": "5 restarts in 10m", "since": "2026-11-22T09:25:00Z"},
   {"subject": "kubelet.service", "type": "Healthy", "status": true, "reason": "Running",
    "message": "", "since": "2026-11-22T07:15:02Z"}],
 "components": [
   {"unit": "containerd.service", "activeState": "failed", "subState": "failed", "mainPid": 0,
    "restarts": 5, "nextRestart": "2026-11-22T09:32:30Z",
    "probe": {"check": "connect /run/containerd/containerd.sock", "failing": true,
              "consecutiveFailures": 3, "lastResult": "connection refused",
              "lastCheck": "2026-11-22T09:29:50Z"}},
   {"unit": "kubelet.service", "activeState": "active", "subState": "running", "mainPid": 1234,
    "restarts": 0, "nextRestart": null,
    "probe": {"check": "HTTP GET http://127.0.0.1:10248/healthz", "failing": false,
              "consecutiveFailures": 0, "lastResult": "ok", "lastCheck": "2026-11-22T09:29:55Z"}},
   {"unit": "nodewarden-peers.service", "activeState": "active", "subState": "running",
    "mainPid": 901, "restarts": 1, "probe": null}],
 "events": [
   {"time": "2026-11-22T09:00:00Z", "subject": "node", "reason": "Converged", "message": "3 changed", "type": "Normal"},
   {"time": "2026-11-22T09:20:00Z", "subject": "kubelet.service", "reason": "Paused", "message": "debugging cgroups", "type": "Normal"},
   {"time": "2026-11-22T09:21:00Z", "subject": "containerd.service", "reason": "Restarted", "message": "main process exited, code=killed, status=9/KILL", "type": "Normal"},
   {"time": "2026-11-22T09:25:00Z", "subject": "containerd.service", "reason": "CrashLooping", "message": "5 restarts in 10m; next in 5m", "type": "Warning"}]})");

core::WallTime at(const std::string& time) { return *heal::parseTime(time); }

std::string render(const json& status, bool colour = false, size_t events = 10) {
  std::ostringstream out;
  printStatus(status, out, {.colour = colour, .events = events, .now = at("2026-11-22T09:30:00Z")});
  return out.str();
}

TEST(StatusTextTest, ReadsLikeSystemctlStatusWithoutColourOffATerminal) {
  EXPECT_EQ(render(kSample, /*colour=*/false, /*events=*/3),
            R"(● nodewarden-agent - failed (containerd.service CrashLooping)
     Agent: 0.1.0, pid 812, since 2026-11-22 07:15:00 UTC; 2h15m ago
    Paused: kubelet.service: debugging cgroups
            since 2026-11-22 09:20:00 UTC; 10m ago, until 2026-11-22 09:50:00 UTC; in 20m
  Converge: ok, last check 2026-11-22 09:28:00 UTC; 2m ago (3 changed, 0 failed, 120 ms)

Conditions:
  SUBJECT             TYPE          STATUS  REASON             SINCE                MESSAGE
  node                DiskPressure  False   Ok                 2026-11-22 07:15:00  /var at 41%
  containerd.service  CrashLooping  True    RestartedTooOften  2026-11-22 09:25:00  5 restarts in 10m
  kubelet.service     Healthy       True    Running            2026-11-22 07:15:02

Components:
  UNIT                      STATE             PID   RESTARTS          PROBE
  containerd.service        failed (failed)   -     5, next in 2m30s  failing 3 times: connection refused (connect /run/containerd/containerd.sock)
  kubelet.service           active (running)  1234  0                 ok (HTTP GET http://127.0.0.1:10248/healthz)
  nodewarden-peers.service  active (running)  901   1                 -

Events (last 3 of 4):
Nov 22 09:20:00 kubelet.service Paused: debugging cgroups
Nov 22 09:21:00 containerd.service Restarted: main process exited, code=killed, status=9/KILL
Nov 22 09:25:00 containerd.service CrashLooping: 5 restarts in 10m; next in 5m
)");
  EXPECT_EQ(render(kSample).find('\033'), std::string::npos);
}

TEST(StatusTextTest, ColoursTheDotAndWarningsOnATerminal) {
  const std::string text = render(kSample, /*colour=*/true);
  EXPECT_TRUE(text.starts_with("\033[0;1;31m●\033[0m nodewarden-agent - \033[0;1;31mfailed\033[0m"))
      << text;
  EXPECT_NE(text.find("\033[1m\033[0;1;33mNov 22 09:25:00 containerd.service CrashLooping"),
            std::string::npos)
      << text;
  // Normal events stay plain.
  EXPECT_NE(text.find("\nNov 22 09:21:00 containerd.service Restarted"), std::string::npos);
}

TEST(StatusTextTest, ShowsAllEventsWhenThereAreFewerThanAsked) {
  const std::string text = render(kSample, false, 10);
  EXPECT_NE(text.find("\nEvents:\nNov 22 09:00:00 node Converged: 3 changed\n"), std::string::npos)
      << text;
  EXPECT_EQ(render(kSample, false, 0).find("Events"), std::string::npos);
}

std::string header(const json& status, bool colour = true) {
  const std::string text = render(status, colour);
  return text.substr(0, text.find('\n'));
}

TEST(StatusTextTest, TheHeaderSaysHowTheAgentIsDoingInItsColour) {
  EXPECT_EQ(header(json::object()),
            "\033[0;1;32m●\033[0m nodewarden-agent - \033[0;1;32mhealthy\033[0m");
  EXPECT_EQ(header({{"paused", {{"node", {{"reason", "r"}}}, {"units", json::object()}}}}, false),
            "● nodewarden-agent - paused (node)");
  EXPECT_EQ(header({{"paused",
                     {{"node", nullptr}, {"units", {{"kubelet.service", {{"reason", "r"}}}}}}}}),
            "\033[0;1;33m●\033[0m nodewarden-agent - \033[0;1;33mpaused\033[0m (kubelet.service)");
  EXPECT_EQ(
      header({{"conditions", {{{"subject", "node"}, {"type", "DiskPressure"}, {"status", true}}}}},
             false),
      "● nodewarden-agent - degraded (node DiskPressure)");
  EXPECT_EQ(
      header({{"components", {{{"unit", "kubelet.service"}, {"probe", {{"failing", true}}}}}}},
             false),
      "● nodewarden-agent - degraded (kubelet.service ProbeFailing)");
  EXPECT_EQ(header({{"converge", {{"result", "rejected"}}}}, false),
            "● nodewarden-agent - degraded (converge rejected)");
  EXPECT_EQ(header({{"components", {{{"unit", "etcd.service"}, {"activeState", "failed"}}}},
                    {"paused", {{"node", {{"reason", "r"}}}}}},
                   false),
            "● nodewarden-agent - failed (etcd.service failed)");
}

TEST(StatusTextTest, CopesWithMissingAndMistypedFields) {
  EXPECT_EQ(render(json::object(), false), "● nodewarden-agent - healthy\n");
  EXPECT_EQ(render(json("not a status"), false), "● nodewarden-agent - healthy\n");
  const json odd = {{"agent", 5},
                    {"paused", {{"node", nullptr}, {"units", json::object()}}},
                    {"converge", {{"lastCheck", nullptr}, {"result", "pending"}}},
                    {"conditions", "none"},
                    {"components", {{{"unit", "x.service"}, {"mainPid", "?"}, {"probe", 3}}}},
                    {"events", {{{"time", "yesterday"}, {"reason", "Odd"}}, 7}}};
  EXPECT_EQ(render(odd, false), R"(● nodewarden-agent - healthy
    Paused: no
  Converge: pending, no check yet

Components:
  UNIT       STATE  PID  RESTARTS  PROBE
  x.service  -      -    0         -

Events:
yesterday - Odd
- - -
)");
}

TEST(StatusTextTest, DescribesTimesAheadAndPast) {
  const core::WallTime now = at("2026-11-22T09:30:00Z");
  EXPECT_EQ(describeTime("2026-11-22T09:29:55Z", now), "2026-11-22 09:29:55 UTC; 5s ago");
  EXPECT_EQ(describeTime("2026-11-23T11:45:10Z", now), "2026-11-23 11:45:10 UTC; in 1d2h15m");
  EXPECT_EQ(describeTime("soon", now), "soon");
}

}  // namespace
}  // namespace nodewarden::control
