#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "agent/core/clock.h"
#include "agent/state/validate_health.h"

namespace nodewarden::v1 {
class Unit;
}

namespace nodewarden::heal {

// One unit's health check, with every default applied: what Probe in the
// desired state says, in the types the prober uses.
struct ProbeSpec {
  enum class Kind { kHttp, kTcp, kExec };

  Kind kind = Kind::kHttp;
  // kHttp: a GET of `url`, healthy on one of expectedStatuses (empty: any
  // 2xx). A redirect is an answer like any other, never followed.
  std::string url;
  std::vector<uint32_t> expectedStatuses;
  std::string caFile;
  std::string clientCertificate;
  std::string clientKey;
  // kTcp: "host:port" or "unix:/path"; healthy when a connection is accepted.
  std::string address;
  // kExec: argv, run without a shell; healthy on exit status 0.
  std::vector<std::string> command;

  core::Duration interval = state::kDefaultProbeInterval;
  core::Duration timeout = state::kDefaultProbeTimeout;
  core::Duration initialDelay = state::kDefaultProbeInitialDelay;
  uint32_t failureThreshold = state::kDefaultFailureThreshold;
  uint32_t successThreshold = state::kDefaultSuccessThreshold;

  // "HTTP GET http://127.0.0.1:10248/healthz", "TCP connect
  // unix:/run/containerd/containerd.sock", "exec /usr/bin/crictl info".
  std::string describe() const;
  // Whether an HTTP answer with `status` counts as healthy.
  bool accepts(long status) const;

  bool operator==(const ProbeSpec&) const = default;
};

// The built-in probes, for units that name none:
//   kubelet.service     HTTP GET http://127.0.0.1:10248/healthz (kubelet's
//                       healthzPort), timeout 5s, initialDelay 60s: kubelet
//                       answers slowly on a loaded node, and after a start
//                       it loads its certificates, reaches the runtime and
//                       starts static pods before it reports healthy.
//   containerd.service  connect to unix:/run/containerd/containerd.sock,
//                       initialDelay 30s: containerd reloads its containers
//                       and snapshots before it listens.
// Both check every 10s and restart after 3 failures in a row.
inline constexpr char kKubeletHealthzUrl[] = "http://127.0.0.1:10248/healthz";
inline constexpr char kContainerdSocket[] = "unix:/run/containerd/containerd.sock";

// The probe of a unit from the desired state: its own, with defaults applied,
// or the built-in one for kubelet and containerd. None when it is disabled or
// when the unit is not kept running (only those are probed and restarted).
// The unit is expected to have passed validation; a duration that does not
// parse there keeps its default here.
std::optional<ProbeSpec> probeFor(const v1::Unit& unit);

// The outcome of one check. `message` says what was seen, and on a failure
// why: "HTTP 500 from http://127.0.0.1:10248/healthz", "connect
// 127.0.0.1:10250: Connection refused", "exit status 3", "timed out after 2s".
struct ProbeResult {
  bool ok = false;
  std::string message;
  core::Duration duration{};
};

// Runs checks. The real one (NodeProber) uses the loop; tests use a fake.
class Prober {
 public:
  using Callback = std::function<void(ProbeResult)>;

  virtual ~Prober() = default;
  // Starts one check of `spec`; `done` runs later on the loop thread, never
  // inside check(), exactly once unless the prober is destroyed first.
  virtual void check(const ProbeSpec& spec, Callback done) = 0;
};

}  // namespace nodewarden::heal
