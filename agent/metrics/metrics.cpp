#include "agent/metrics/metrics.h"

#include <dirent.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <CivetServer.h>
#include <prometheus/counter.h>
#include <prometheus/exposer.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <chrono>
#include <cstdlib>
#include <exception>
#include <map>
#include <utility>
#include <vector>

namespace nodewarden::metrics {

namespace {

using prometheus::Counter;
using prometheus::Family;
using prometheus::Gauge;
using prometheus::Histogram;

// One listener thread and one worker: a scrape takes about a millisecond, and
// each further worker costs its stack and a malloc arena (about 250 kB).
constexpr char kWorkerThreads[] = "1";
// How long the worker waits on a client that sends nothing, so a stuck client
// delays a scrape by less than Prometheus's default 10 s scrape timeout.
constexpr char kRequestTimeoutMs[] = "5000";

constexpr const char* kKnownRestartReasons[] = {restart_reason::kFailed, restart_reason::kProbe,
                                                restart_reason::kDependency,
                                                restart_reason::kConverge};

double seconds(core::Duration duration) { return std::chrono::duration<double>(duration).count(); }

// civetweb reports why it could not listen only through its log callback, on
// the thread that starts it; this collects those lines while serve() starts it.
// Later messages, from civetweb's own threads, find no collector and are
// dropped, as civetweb drops them without an error log file.
thread_local std::vector<std::string>* startupMessages = nullptr;

int collectStartupMessage(const mg_connection* /*connection*/, const char* message) {
  if (startupMessages == nullptr) return 0;
  startupMessages->emplace_back(message);
  return 1;
}

// civetweb says "cannot bind to 127.0.0.1:9558: 98 (Address already in use)";
// the caller already names the address, so keep "Address already in use".
std::string bindFailure(const std::string& address, const std::vector<std::string>& messages) {
  if (messages.empty()) return "cannot listen";
  std::string reason = messages.front();
  const std::string prefix = "cannot bind to " + address + ": ";
  if (reason.starts_with(prefix)) {
    reason.erase(0, prefix.size());
    const size_t open = reason.find(" (");
    if (open != std::string::npos && reason.ends_with(")") &&
        reason.find_first_not_of("0123456789") == open) {
      reason = reason.substr(open + 2, reason.size() - open - 3);
    }
  }
  return reason;
}

// civetweb's listener thread sees that it must stop only when its poll()
// returns, up to 2 s later (a quantum fixed when civetweb is compiled), which
// would hold up every agent stop by as much. Shutting the listening socket down
// first wakes it at once. civetweb does not give the socket out, so this finds
// it among the process's descriptors by its port; if it cannot, the stop is
// only slower.
void wakeListener(int port) {
  struct CloseDir {
    void operator()(DIR* dir) const { ::closedir(dir); }
  };
  std::unique_ptr<DIR, CloseDir> dir(::opendir("/proc/self/fd"));
  if (!dir) return;
  while (const dirent* entry = ::readdir(dir.get())) {
    const int fd = std::atoi(entry->d_name);
    if (entry->d_name[0] == '.' || fd == ::dirfd(dir.get())) continue;
    int listening = 0;
    socklen_t length = sizeof(listening);
    if (::getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &length) != 0 || !listening) {
      continue;
    }
    sockaddr_storage address{};
    length = sizeof(address);
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) continue;
    int boundPort = -1;
    if (address.ss_family == AF_INET) {
      boundPort = ntohs(reinterpret_cast<const sockaddr_in*>(&address)->sin_port);
    } else if (address.ss_family == AF_INET6) {
      boundPort = ntohs(reinterpret_cast<const sockaddr_in6*>(&address)->sin6_port);
    }
    if (boundPort == port) ::shutdown(fd, SHUT_RD);
  }
}

}  // namespace

struct Metrics::Series {
  // The series of one unit, so forgetUnit() can remove them.
  struct Unit {
    std::map<std::string, Counter*> restarts;  // by reason
    Counter* probeSuccesses = nullptr;
    Counter* probeFailures = nullptr;
    Gauge* probeDuration = nullptr;
    Gauge* probeUp = nullptr;
  };

  Series()
      : registry(std::make_shared<prometheus::Registry>()),
        restarts(prometheus::BuildCounter()
                     .Name("nodewarden_unit_restarts_total")
                     .Help("Restarts of a managed unit by the agent, by reason.")
                     .Register(*registry)),
        probeChecks(prometheus::BuildCounter()
                        .Name("nodewarden_probe_checks_total")
                        .Help("Health probe checks of a unit, by result.")
                        .Register(*registry)),
        probeDuration(prometheus::BuildGauge()
                          .Name("nodewarden_probe_duration_seconds")
                          .Help("How long the last health probe check of a unit took.")
                          .Register(*registry)),
        probeUp(prometheus::BuildGauge()
                    .Name("nodewarden_probe_up")
                    .Help("1 when the last health probe check of a unit passed.")
                    .Register(*registry)),
        conditions(prometheus::BuildGauge()
                       .Name("nodewarden_condition")
                       .Help("1 while a condition of the node or a unit holds.")
                       .Register(*registry)),
        convergeDuration(prometheus::BuildHistogram()
                             .Name("nodewarden_converge_duration_seconds")
                             .Help("How long a converge run took.")
                             .Register(*registry)
                             .Add({}, Histogram::BucketBoundaries{0.01, 0.05, 0.1, 0.25, 0.5, 1,
                                                                  2.5, 5, 10, 30, 60, 300})),
        converges(prometheus::BuildCounter()
                      .Name("nodewarden_converges_total")
                      .Help("Converge runs, by result.")
                      .Register(*registry)),
        convergeSuccesses(converges.Add({{"result", "success"}})),
        convergeFailures(converges.Add({{"result", "failure"}})),
        convergeChanges(prometheus::BuildGauge()
                            .Name("nodewarden_converge_changes")
                            .Help("Resources the last converge run changed.")
                            .Register(*registry)
                            .Add({})),
        convergeFailedResources(prometheus::BuildGauge()
                                    .Name("nodewarden_converge_failures")
                                    .Help("Resources the last converge run failed to change.")
                                    .Register(*registry)
                                    .Add({})),
        lastConverge(prometheus::BuildGauge()
                         .Name("nodewarden_last_converge_timestamp_seconds")
                         .Help("When the last converge run ended, in seconds since the epoch.")
                         .Register(*registry)
                         .Add({})),
        paused(prometheus::BuildGauge()
                   .Name("nodewarden_paused")
                   .Help("1 while enforcement and healing are paused node-wide.")
                   .Register(*registry)
                   .Add({})) {}

  ~Series() {
    if (exposer == nullptr) return;
    if (port != 0) wakeListener(port);
    exposer.reset();
  }

  Unit& unit(const std::string& name) {
    auto [it, inserted] = units.try_emplace(name);
    // Every known reason starts at 0, so the first restart shows as an increase.
    if (inserted) {
      for (const char* reason : kKnownRestartReasons) {
        it->second.restarts[reason] = &restarts.Add({{"unit", name}, {"reason", reason}});
      }
    }
    return it->second;
  }

  std::shared_ptr<prometheus::Registry> registry;
  Family<Counter>& restarts;
  Family<Counter>& probeChecks;
  Family<Gauge>& probeDuration;
  Family<Gauge>& probeUp;
  Family<Gauge>& conditions;
  Histogram& convergeDuration;
  Family<Counter>& converges;
  Counter& convergeSuccesses;
  Counter& convergeFailures;
  Gauge& convergeChanges;
  Gauge& convergeFailedResources;
  Gauge& lastConverge;
  Gauge& paused;

  std::map<std::string, Unit> units;
  std::map<std::pair<std::string, std::string>, Gauge*> conditionSeries;  // by subject, type
  std::string address;
  int port = 0;
  // Declared last, so it stops serving before the registry goes.
  std::unique_ptr<prometheus::Exposer> exposer;
};

core::Result<std::unique_ptr<Metrics>> Metrics::serve(const std::string& address) {
  const std::string context = "serve metrics on " + address;
  // civetweb would also take a list, or a bare port meaning every interface.
  const size_t colon = address.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == address.size() ||
      address.find_first_not_of("0123456789", colon + 1) != std::string::npos ||
      address.find(',') != std::string::npos) {
    return core::Status::invalidArgument(context + ": not host:port");
  }

  auto series = std::make_unique<Series>();
  std::vector<std::string> messages;
  try {
    CivetCallbacks callbacks;
    callbacks.log_message = collectStartupMessage;
    startupMessages = &messages;
    series->exposer = std::make_unique<prometheus::Exposer>(
        std::vector<std::string>{"listening_ports", address, "num_threads", kWorkerThreads,
                                 "request_timeout_ms", kRequestTimeoutMs},
        &callbacks);
    startupMessages = nullptr;
  } catch (const std::exception&) {
    startupMessages = nullptr;
    return core::Status::failedPrecondition(context + ": " + bindFailure(address, messages));
  }
  series->exposer->RegisterCollectable(series->registry);

  // With port 0 the kernel chose one.
  const std::vector<int> ports = series->exposer->GetListeningPorts();
  series->address = address;
  if (!ports.empty()) {
    series->port = ports.front();
    series->address = address.substr(0, colon + 1) + std::to_string(series->port);
  }
  return std::unique_ptr<Metrics>(new Metrics(std::move(series)));
}

std::unique_ptr<Metrics> Metrics::disabled() { return std::unique_ptr<Metrics>(new Metrics({})); }

Metrics::Metrics(std::unique_ptr<Series> series) : series_(std::move(series)) {}

Metrics::~Metrics() = default;

void Metrics::unitRestarted(const std::string& unit, const std::string& reason) {
  if (!series_) return;
  Series::Unit& series = series_->unit(unit);
  Counter*& counter = series.restarts[reason];
  if (counter == nullptr) counter = &series_->restarts.Add({{"unit", unit}, {"reason", reason}});
  counter->Increment();
}

void Metrics::probeResult(const std::string& unit, bool ok, core::Duration took) {
  if (!series_) return;
  Series::Unit& series = series_->unit(unit);
  if (series.probeUp == nullptr) {
    series.probeSuccesses = &series_->probeChecks.Add({{"unit", unit}, {"result", "success"}});
    series.probeFailures = &series_->probeChecks.Add({{"unit", unit}, {"result", "failure"}});
    series.probeDuration = &series_->probeDuration.Add({{"unit", unit}});
    series.probeUp = &series_->probeUp.Add({{"unit", unit}});
  }
  (ok ? series.probeSuccesses : series.probeFailures)->Increment();
  series.probeDuration->Set(seconds(took));
  series.probeUp->Set(ok ? 1 : 0);
}

void Metrics::condition(const std::string& subject, const std::string& type, bool status) {
  if (!series_) return;
  Gauge*& gauge = series_->conditionSeries[{subject, type}];
  if (gauge == nullptr) gauge = &series_->conditions.Add({{"subject", subject}, {"type", type}});
  gauge->Set(status ? 1 : 0);
}

void Metrics::forgetUnit(const std::string& unit) {
  if (!series_) return;
  if (auto it = series_->units.find(unit); it != series_->units.end()) {
    Series::Unit& series = it->second;
    for (auto& [reason, counter] : series.restarts) series_->restarts.Remove(counter);
    if (series.probeUp != nullptr) {
      series_->probeChecks.Remove(series.probeSuccesses);
      series_->probeChecks.Remove(series.probeFailures);
      series_->probeDuration.Remove(series.probeDuration);
      series_->probeUp.Remove(series.probeUp);
    }
    series_->units.erase(it);
  }
  auto& conditions = series_->conditionSeries;
  for (auto it = conditions.lower_bound({unit, ""});
       it != conditions.end() && it->first.first == unit;) {
    series_->conditions.Remove(it->second);
    it = conditions.erase(it);
  }
}

void Metrics::converged(core::Duration took, bool succeeded, size_t changed, size_t failed) {
  if (!series_) return;
  series_->convergeDuration.Observe(seconds(took));
  (succeeded ? series_->convergeSuccesses : series_->convergeFailures).Increment();
  series_->convergeChanges.Set(static_cast<double>(changed));
  series_->convergeFailedResources.Set(static_cast<double>(failed));
  // A timestamp for people and alert rules ("no converge for an hour"), the
  // one wall-clock reading here.
  series_->lastConverge.SetToCurrentTime();
}

void Metrics::paused(bool isPaused) {
  if (!series_) return;
  series_->paused.Set(isPaused ? 1 : 0);
}

std::string Metrics::address() const { return series_ ? series_->address : std::string(); }

}  // namespace nodewarden::metrics
