#pragma once

#include <cstddef>
#include <memory>
#include <string>

#include "agent/core/clock.h"
#include "agent/core/status.h"

namespace nodewarden::metrics {

// Restart reasons, the values of nodewarden_unit_restarts_total's "reason".
namespace restart_reason {
inline constexpr char kFailed[] = "failed";          // the unit failed or stopped
inline constexpr char kProbe[] = "probe";            // its probe failed past the threshold
inline constexpr char kDependency[] = "dependency";  // a remediation for another unit
inline constexpr char kConverge[] = "converge";      // its inputs changed
}  // namespace restart_reason

// The agent's Prometheus metrics: restarts per unit, probe results, conditions,
// converge duration and result, pause. Served in the text format at
// http://ADDRESS/metrics by an HTTP server with threads of its own (a listener
// and one worker), which read the values under the metric library's locks;
// everything else is called on the loop thread. A disabled instance takes the same calls and does
// nothing, so callers need no checks.
class Metrics final {
 public:
  // Starts serving at `address` ("host:port"; port 0 picks a free port, see
  // address()). Fails, naming the address and the reason, when the address is
  // not host:port or cannot be bound (port taken, address not local).
  static core::Result<std::unique_ptr<Metrics>> serve(const std::string& address);
  // Counts nothing and serves nothing.
  static std::unique_ptr<Metrics> disabled();

  ~Metrics();
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;

  // nodewarden_unit_restarts_total{unit,reason}; `reason` is one of
  // restart_reason.
  void unitRestarted(const std::string& unit, const std::string& reason);
  // nodewarden_probe_checks_total{unit,result="success|failure"},
  // nodewarden_probe_duration_seconds{unit} (the last check) and
  // nodewarden_probe_up{unit} (1 when the last check passed).
  void probeResult(const std::string& unit, bool ok, core::Duration took);
  // nodewarden_condition{subject,type}, 1 while the condition holds.
  void condition(const std::string& subject, const std::string& type, bool status);
  // Drops every series of `unit`, its conditions included, once it is no
  // longer managed, so that a scrape lists only the units of the state.
  void forgetUnit(const std::string& unit);
  // nodewarden_converge_duration_seconds (histogram),
  // nodewarden_converges_total{result="success|failure"}, the last run's
  // nodewarden_converge_changes and nodewarden_converge_failures, and
  // nodewarden_last_converge_timestamp_seconds.
  void converged(core::Duration took, bool succeeded, size_t changed, size_t failed);
  // nodewarden_paused, 1 while enforcement and healing are paused node-wide.
  void paused(bool isPaused);

  // The address being served, with the port actually bound; "" when disabled.
  std::string address() const;

 private:
  struct Series;

  explicit Metrics(std::unique_ptr<Series> series);

  std::unique_ptr<Series> series_;  // null when disabled
};

}  // namespace nodewarden::metrics
