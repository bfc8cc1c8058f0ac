#include "agent/heal/probe.h"

#include "agent/core/duration.h"
#include "nodewarden/v1/state.pb.h"

namespace nodewarden::heal {

namespace {

using namespace std::chrono_literals;

std::optional<ProbeSpec> builtInProbe(const std::string& unit) {
  ProbeSpec spec;
  if (unit == "kubelet.service") {
    spec.kind = ProbeSpec::Kind::kHttp;
    spec.url = kKubeletHealthzUrl;
    spec.timeout = 5s;
    spec.initialDelay = 60s;
  } else if (unit == "containerd.service") {
    spec.kind = ProbeSpec::Kind::kTcp;
    spec.address = kContainerdSocket;
    spec.initialDelay = 30s;
  } else {
    return std::nullopt;
  }
  return spec;
}

void setDuration(const std::string& text, core::Duration& field) {
  if (text.empty()) return;
  if (auto parsed = core::parseDuration(text)) field = *parsed;
}

}  // namespace

std::string ProbeSpec::describe() const {
  switch (kind) {
    case Kind::kHttp:
      return "HTTP GET " + url;
    case Kind::kTcp:
      return "TCP connect " + address;
    case Kind::kExec: {
      std::string text = "exec";
      for (const auto& arg : command) text += " " + arg;
      return text;
    }
  }
  return {};
}

bool ProbeSpec::accepts(long status) const {
  if (expectedStatuses.empty()) return status >= 200 && status <= 299;
  for (uint32_t expected : expectedStatuses) {
    if (status == static_cast<long>(expected)) return true;
  }
  return false;
}

std::optional<ProbeSpec> probeFor(const v1::Unit& unit) {
  if (unit.state() != v1::UNIT_STATE_RUNNING) return std::nullopt;
  if (!unit.has_probe()) return builtInProbe(unit.name());
  const v1::Probe& probe = unit.probe();
  if (probe.disabled()) return std::nullopt;
  ProbeSpec spec;
  switch (probe.check_case()) {
    case v1::Probe::kHttp: {
      const v1::HttpProbe& http = probe.http();
      spec.kind = ProbeSpec::Kind::kHttp;
      spec.url = http.url();
      spec.expectedStatuses.assign(http.expected_statuses().begin(),
                                   http.expected_statuses().end());
      spec.caFile = http.ca_file();
      spec.clientCertificate = http.client_certificate();
      spec.clientKey = http.client_key();
      break;
    }
    case v1::Probe::kTcp:
      spec.kind = ProbeSpec::Kind::kTcp;
      spec.address = probe.tcp().address();
      break;
    case v1::Probe::kExec:
      spec.kind = ProbeSpec::Kind::kExec;
      spec.command.assign(probe.exec().command().begin(), probe.exec().command().end());
      break;
    case v1::Probe::CHECK_NOT_SET:
      // Refused by validation: nothing to run.
      return std::nullopt;
  }
  setDuration(probe.interval(), spec.interval);
  setDuration(probe.timeout(), spec.timeout);
  setDuration(probe.initial_delay(), spec.initialDelay);
  if (probe.failure_threshold() != 0) spec.failureThreshold = probe.failure_threshold();
  if (probe.success_threshold() != 0) spec.successThreshold = probe.success_threshold();
  return spec;
}

}  // namespace nodewarden::heal
