#include "agent/state/validate_health.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/un.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <optional>
#include <unordered_map>

#include "agent/core/duration.h"
#include "nodewarden/v1/state.pb.h"

namespace nodewarden::state {

namespace {

using namespace std::chrono_literals;

// Longer than any interval that makes sense here, and far from where the
// nanoseconds of a parsed duration would overflow.
constexpr core::Duration kMaxDuration = 365 * 24h;
constexpr uint32_t kDefaultThresholdPercent = 85;
constexpr uint32_t kDefaultOomKills = 3;
// Glob characters, as glob(3) reads them.
constexpr std::string_view kWildcards = "*?[";
// How many leading components of a cleanup pattern must be plain names.
constexpr size_t kFixedPatternComponents = 2;

bool isControl(char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; }

std::string lower(std::string_view text) {
  std::string out(text);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

std::optional<uint16_t> parsePort(std::string_view text) {
  if (text.empty() || text.size() > 5) return std::nullopt;
  unsigned value = 0;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc() || end != text.data() + text.size() || value < 1 || value > 65535) {
    return std::nullopt;
  }
  return static_cast<uint16_t>(value);
}

std::string portProblem(std::string_view address, std::string_view port) {
  if (port.empty()) {
    return std::string(address) + " has no port; write host:port (127.0.0.1:10250)";
  }
  return "the port " + std::string(port) + " is not a number from 1 to 65535";
}

std::optional<std::string> absolutePathProblem(std::string_view path) {
  if (path.find('\0') != std::string_view::npos) return "the path contains a NUL byte";
  if (!path.starts_with('/')) return std::string(path) + " is not an absolute path";
  return std::nullopt;
}

// An http:// or https:// URL with a host and, if it has one, a valid port.
// Host names are allowed: libcurl resolves them off the loop.
std::optional<std::string> probeUrlProblem(std::string_view url, bool& https) {
  const std::string shown(url);
  for (char c : url) {
    if (c == ' ' || isControl(c)) return "the URL contains a space or control character";
  }
  const size_t separator = url.find("://");
  if (separator == std::string_view::npos || separator == 0) {
    return shown + " is not a URL; write http://host:port/path";
  }
  const std::string scheme = lower(url.substr(0, separator));
  if (scheme != "http" && scheme != "https") {
    return shown + " is not an http:// or https:// URL";
  }
  https = scheme == "https";
  std::string_view authority = url.substr(separator + 3);
  authority = authority.substr(0, authority.find_first_of("/?#"));
  if (const size_t at = authority.rfind('@'); at != std::string_view::npos) {
    authority.remove_prefix(at + 1);
  }
  std::string_view host = authority;
  std::optional<std::string_view> port;
  if (authority.starts_with('[')) {
    const size_t close = authority.find(']');
    if (close == std::string_view::npos) return shown + " has an unclosed [ in its host";
    host = authority.substr(1, close - 1);
    const std::string_view rest = authority.substr(close + 1);
    if (!rest.empty()) {
      if (!rest.starts_with(':')) return shown + " has something after its IPv6 address";
      port = rest.substr(1);
    }
  } else if (const size_t colon = authority.find(':'); colon != std::string_view::npos) {
    host = authority.substr(0, colon);
    port = authority.substr(colon + 1);
  }
  if (host.empty()) return shown + " has no host";
  // "http://host:/" is a URL without a port, as curl reads it.
  if (port && !port->empty() && !parsePort(*port)) return portProblem(url, *port);
  return std::nullopt;
}

// journalctl --vacuum-size: a count of K, M, G or T (powers of 1024). Bare
// bytes are refused: "200" almost always means 200M.
std::optional<std::string> vacuumSizeProblem(std::string_view size) {
  const std::string shown = "\"" + std::string(size) + "\"";
  const std::string expected = " is not a size like 200M or 1G (digits and one of K, M, G, T)";
  if (size.size() < 2 || std::string_view("KMGT").find(size.back()) == std::string_view::npos)
    return shown + expected;
  const std::string_view digits = size.substr(0, size.size() - 1);
  uint64_t value = 0;
  auto [end, error] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
  if (error != std::errc() || end != digits.data() + digits.size()) return shown + expected;
  if (value == 0) return shown + " keeps nothing of the journal; give a size larger than 0";
  return std::nullopt;
}

// Cleanups remove what the pattern matches as root: a wildcard near the top
// ("/*", "/var/*", "/*/log") could match /usr, /etc or /var/lib. The first
// components must be plain names, which keeps a pattern inside a directory
// someone chose.
std::optional<std::string> cleanupPatternProblem(std::string_view pattern) {
  const std::string shown(pattern);
  if (auto problem = absolutePathProblem(pattern)) return problem;
  std::vector<std::string_view> components;
  size_t start = 1;
  while (start <= pattern.size()) {
    size_t end = pattern.find('/', start);
    if (end == std::string_view::npos) end = pattern.size();
    const std::string_view component = pattern.substr(start, end - start);
    if (component == "..") return shown + " contains a .. component";
    if (component.empty() || component == ".") {
      if (pattern == "/") break;
      return shown + " has an empty or . component; write each directory once";
    }
    components.push_back(component);
    start = end + 1;
  }
  const std::string why = "; a cleanup pattern starts with " +
                          std::to_string(kFixedPatternComponents) +
                          " plain directory names, so that it cannot match the system's "
                          "top-level directories (write /var/log/pods/*/*/*.log.*, not /var/*)";
  if (components.empty()) return shown + " is the root directory" + why;
  for (size_t i = 0; i < std::min(components.size(), kFixedPatternComponents); ++i) {
    if (components[i].find_first_of(kWildcards) != std::string_view::npos) {
      return shown + " has a wildcard in its first " + std::to_string(kFixedPatternComponents) +
             " components" + why;
    }
  }
  return std::nullopt;
}

const char* unitStateName(v1::UnitState state) {
  switch (state) {
    case v1::UNIT_STATE_RUNNING:
      return "running";
    case v1::UNIT_STATE_STOPPED:
      return "stopped";
    default:
      return "";
  }
}

class HealthValidator final {
 public:
  HealthValidator(const SourceMap& sources, std::vector<Diagnostic>& errors)
      : sources_(sources), errors_(errors) {}

  void run(const v1::NodeState& state) {
    for (int i = 0; i < state.units_size(); ++i) {
      const auto& unit = state.units(i);
      if (unit.has_probe()) checkProbe("units[" + std::to_string(i) + "]", unit);
    }
    if (state.has_remediations()) {
      const auto& remediations = state.remediations();
      if (remediations.has_disk_pressure()) {
        checkDiskPressure("remediations.diskPressure", remediations.disk_pressure());
      }
      if (remediations.has_oom_kills()) {
        checkOomKills("remediations.oomKills", remediations.oom_kills());
      }
    }
  }

 private:
  void error(std::string path, std::string message) {
    errors_.push_back(sources_.diagnostic(std::move(path), std::move(message)));
  }

  // Whether the document wrote this field: proto3 cannot tell a 0 that was
  // written from one left out, but the loader noted where each field was.
  bool written(const std::string& path) const { return sources_.describe(path) != path; }

  // The duration at `path`, or `fallback` when it is left out; nullopt when it
  // is wrong (and said so), or left out without a default.
  std::optional<core::Duration> duration(const std::string& path, const std::string& text,
                                         std::optional<core::Duration> fallback,
                                         bool mayBeZero = false) {
    if (text.empty()) return fallback;
    auto parsed = core::parseDuration(text);
    if (!parsed) {
      error(path, parsed.status().message());
      return std::nullopt;
    }
    if (*parsed == core::Duration::zero() && !mayBeZero) {
      error(path, fallback ? "must be longer than 0; leave it out for the default of " +
                                 core::formatDuration(*fallback)
                           : "must be longer than 0");
      return std::nullopt;
    }
    if (*parsed > kMaxDuration || *parsed < core::Duration::zero()) {
      error(path, text + " is longer than " + core::formatDuration(kMaxDuration) +
                      ", the longest accepted here");
      return std::nullopt;
    }
    return *parsed;
  }

  void threshold(const std::string& path, uint32_t value, uint32_t fallback) {
    if (value == 0 && written(path)) {
      error(path,
            "must be at least 1; leave it out for the default of " + std::to_string(fallback));
    }
  }

  void checkProbe(const std::string& unitAt, const v1::Unit& unit) {
    const v1::Probe& probe = unit.probe();
    const std::string at = unitAt + ".probe";
    if (probe.disabled()) {
      // Anything else set here would suggest that some probe still runs.
      auto unused = [&](bool set, const char* field) {
        if (set) error(at + "." + field, "has no effect with disabled: true");
      };
      unused(probe.has_http(), "http");
      unused(probe.has_tcp(), "tcp");
      unused(probe.has_exec(), "exec");
      unused(!probe.interval().empty(), "interval");
      unused(!probe.timeout().empty(), "timeout");
      unused(!probe.initial_delay().empty(), "initialDelay");
      unused(probe.failure_threshold() != 0, "failureThreshold");
      unused(probe.success_threshold() != 0, "successThreshold");
      return;
    }
    if (unit.state() != v1::UNIT_STATE_RUNNING && v1::UnitState_IsValid(unit.state())) {
      const std::string state = unitStateName(unit.state());
      error(at,
            "would never run: the agent probes and restarts only the units it keeps "
            "running, and " +
                (state.empty() ? unit.name() + " has no state: running (its state is left "
                                               "as it is)"
                               : unit.name() + " has state: " + state) +
                "; set state: running, or remove the probe");
    }
    switch (probe.check_case()) {
      case v1::Probe::kHttp:
        checkHttp(at + ".http", probe.http());
        break;
      case v1::Probe::kTcp:
        if (probe.tcp().address().empty()) {
          error(at + ".tcp.address",
                "required; write host:port (127.0.0.1:10250) or unix:/path/to/socket");
        } else if (auto address = parseProbeAddress(probe.tcp().address()); !address) {
          error(at + ".tcp.address", address.status().message());
        }
        break;
      case v1::Probe::kExec:
        checkExec(at + ".exec", probe.exec());
        break;
      case v1::Probe::CHECK_NOT_SET:
        error(at, "set one of http, tcp or exec (or disabled: true for no probe at all)");
        break;
    }
    const auto interval = duration(at + ".interval", probe.interval(), kDefaultProbeInterval);
    const auto timeout = duration(at + ".timeout", probe.timeout(), kDefaultProbeTimeout);
    duration(at + ".initialDelay", probe.initial_delay(), kDefaultProbeInitialDelay,
             /*mayBeZero=*/true);
    // One check of a probe at a time: a check still running when the next is
    // due would have the next one wait.
    if (interval && timeout && *timeout > *interval) {
      error(at + ".timeout", core::formatDuration(*timeout) + " is longer than the interval of " +
                                 core::formatDuration(*interval) +
                                 (probe.interval().empty() ? " (the default)" : "") +
                                 "; a check must end before the next one is due");
    }
    threshold(at + ".failureThreshold", probe.failure_threshold(), kDefaultFailureThreshold);
    threshold(at + ".successThreshold", probe.success_threshold(), kDefaultSuccessThreshold);
  }

  void checkHttp(const std::string& at, const v1::HttpProbe& http) {
    bool https = false;
    bool urlValid = false;
    if (http.url().empty()) {
      error(at + ".url", "required; for example http://127.0.0.1:10248/healthz");
    } else if (auto problem = probeUrlProblem(http.url(), https)) {
      error(at + ".url", *problem);
    } else {
      urlValid = true;
    }
    for (int i = 0; i < http.expected_statuses_size(); ++i) {
      const uint32_t status = http.expected_statuses(i);
      if (status < 100 || status > 599) {
        error(at + ".expectedStatuses[" + std::to_string(i) + "]",
              std::to_string(status) + " is not an HTTP status code (100 to 599)");
      }
    }
    auto file = [&](const std::string& path, const char* field) {
      if (path.empty()) return;
      if (auto problem = absolutePathProblem(path)) {
        error(at + "." + field, *problem);
      } else if (urlValid && !https) {
        error(at + "." + field, "has no effect on an http:// URL; TLS is only for https://");
      }
    };
    file(http.ca_file(), "caFile");
    file(http.client_certificate(), "clientCertificate");
    file(http.client_key(), "clientKey");
    if (!http.client_certificate().empty() && http.client_key().empty()) {
      error(at + ".clientCertificate", "needs clientKey too: the key of this certificate");
    } else if (http.client_certificate().empty() && !http.client_key().empty()) {
      error(at + ".clientKey", "needs clientCertificate too: the certificate of this key");
    }
  }

  void checkExec(const std::string& at, const v1::ExecProbe& exec) {
    if (exec.command().empty()) {
      error(at + ".command", "required; the program and its arguments, run without a shell");
      return;
    }
    const std::string& program = exec.command(0);
    if (program.empty()) {
      error(at + ".command[0]", "empty; name the program by its absolute path");
    } else if (!program.starts_with('/')) {
      error(at + ".command[0]", program +
                                    " is not an absolute path; a probe's program is named by "
                                    "its full path (/usr/bin/" +
                                    program + ") and never looked up");
    }
    for (int i = 0; i < exec.command_size(); ++i) {
      if (exec.command(i).find('\0') != std::string::npos) {
        error(at + ".command[" + std::to_string(i) + "]", "contains a NUL byte");
      }
    }
  }

  void checkDiskPressure(const std::string& at, const v1::DiskPressure& disk) {
    std::unordered_map<std::string_view, std::string> mounts;
    for (int i = 0; i < disk.mounts_size(); ++i) {
      const std::string& mount = disk.mounts(i);
      const std::string mountAt = at + ".mounts[" + std::to_string(i) + "]";
      if (mount.empty()) {
        error(mountAt, "empty; name a mount point, like /var");
      } else if (auto problem = absolutePathProblem(mount)) {
        error(mountAt, *problem);
      } else if (auto [first, inserted] = mounts.try_emplace(mount, mountAt); !inserted) {
        error(mountAt, mount + " is already listed at " + sources_.describe(first->second));
      }
    }
    const std::string thresholdAt = at + ".thresholdPercent";
    if ((disk.threshold_percent() == 0 && written(thresholdAt)) || disk.threshold_percent() > 99) {
      error(thresholdAt, std::to_string(disk.threshold_percent()) +
                             " is not a percentage from 1 to 99; leave it out for the default of " +
                             std::to_string(kDefaultThresholdPercent));
    }
    duration(at + ".checkInterval", disk.check_interval(), 1min);
    duration(at + ".minInterval", disk.min_interval(), 10min);
    if (!disk.journal_vacuum_size().empty()) {
      if (auto problem = vacuumSizeProblem(disk.journal_vacuum_size())) {
        error(at + ".journalVacuumSize", *problem);
      }
    }
    for (int i = 0; i < disk.files_size(); ++i) {
      const auto& cleanup = disk.files(i);
      const std::string fileAt = at + ".files[" + std::to_string(i) + "]";
      if (cleanup.pattern().empty()) {
        error(fileAt + ".pattern", "required; an absolute glob like /var/log/pods/*/*/*.log.*");
      } else if (auto problem = cleanupPatternProblem(cleanup.pattern())) {
        error(fileAt + ".pattern", *problem);
      }
      if (cleanup.older_than().empty()) {
        // Without an age, files still being written would go too.
        error(fileAt + ".olderThan",
              "required; only files not modified for this long are "
              "removed (7d, 12h)");
      } else {
        duration(fileAt + ".olderThan", cleanup.older_than(), std::nullopt);
      }
    }
  }

  void checkOomKills(const std::string& at, const v1::OomKills& oom) {
    threshold(at + ".kills", oom.kills(), kDefaultOomKills);
    duration(at + ".window", oom.window(), 1h);
  }

  const SourceMap& sources_;
  std::vector<Diagnostic>& errors_;
};

}  // namespace

core::Result<ProbeAddress> parseProbeAddress(std::string_view address) {
  const std::string shown(address);
  ProbeAddress parsed;
  if (address.starts_with("unix:")) {
    parsed.isUnix = true;
    parsed.path = std::string(address.substr(5));
    if (auto problem = absolutePathProblem(parsed.path)) {
      return core::Status::invalidArgument(*problem + "; write unix:/path/to/socket");
    }
    // sun_path holds the path and its NUL.
    constexpr size_t kMaxSocketPath = sizeof(sockaddr_un::sun_path) - 1;
    if (parsed.path.size() > kMaxSocketPath) {
      return core::Status::invalidArgument("the socket path is longer than " +
                                           std::to_string(kMaxSocketPath) +
                                           " bytes, the most a Unix socket address holds");
    }
    return parsed;
  }
  std::string_view host;
  std::string_view port;
  if (address.starts_with('[')) {
    const size_t close = address.find(']');
    if (close == std::string_view::npos) {
      return core::Status::invalidArgument(shown + " has an unclosed [; write [::1]:443");
    }
    host = address.substr(1, close - 1);
    const std::string_view rest = address.substr(close + 1);
    if (!rest.starts_with(':')) {
      return core::Status::invalidArgument(shown + " has no port; write [::1]:443");
    }
    port = rest.substr(1);
    in6_addr ignored{};
    if (::inet_pton(AF_INET6, std::string(host).c_str(), &ignored) != 1) {
      return core::Status::invalidArgument(std::string(host) + " is not a numeric IPv6 address");
    }
    parsed.isIpv6 = true;
  } else {
    const size_t colon = address.rfind(':');
    if (colon == std::string_view::npos) {
      return core::Status::invalidArgument(portProblem(address, ""));
    }
    host = address.substr(0, colon);
    port = address.substr(colon + 1);
    if (host.find(':') != std::string_view::npos) {
      return core::Status::invalidArgument(shown + ": write an IPv6 address in brackets, as in " +
                                           "[::1]:443");
    }
    if (host == "localhost") host = "127.0.0.1";
    in_addr ignored{};
    if (::inet_pton(AF_INET, std::string(host).c_str(), &ignored) != 1) {
      return core::Status::invalidArgument(
          "\"" + std::string(host) +
          "\" is not a numeric IP address or localhost; probes check local endpoints and "
          "resolve no names");
    }
  }
  auto number = parsePort(port);
  if (!number) return core::Status::invalidArgument(portProblem(address, port));
  parsed.host = std::string(host);
  parsed.port = *number;
  return parsed;
}

void validateHealth(const v1::NodeState& state, const SourceMap& sources,
                    std::vector<Diagnostic>& errors) {
  HealthValidator(sources, errors).run(state);
}

}  // namespace nodewarden::state
