#include "server/cmd/server_config.h"

#include "agent/core/address.h"
#include "agent/core/atomic_file.h"
#include "agent/core/duration.h"
#include "agent/state/loader.h"
#include "nodewarden/v1/server_config.pb.h"

namespace nodewarden::server {

namespace {

constexpr size_t kMaxConfigBytes = 1 << 20;

}  // namespace

core::Result<ServerConfig> loadServerConfig(const std::string& path) {
  ServerConfig config;
  auto text = core::readFile(path, kMaxConfigBytes);
  if (!text) {
    if (text.status().code() == core::Status::Code::kNotFound) return config;
    return text.status();
  }
  v1::ServerConfig message;
  std::vector<state::Diagnostic> errors = state::loadMessage(*text, path, message);
  auto fail = [&](const std::string& field, const std::string& why) {
    errors.push_back({.file = path, .path = field, .message = why});
  };
  auto duration = [&](const std::string& field, const std::string& value, auto& out) {
    if (value.empty()) return;
    auto parsed = core::parsePositiveDuration(value);
    if (!parsed) return fail(field, parsed.status().message());
    out = std::chrono::duration_cast<std::remove_reference_t<decltype(out)>>(*parsed);
  };
  auto absolute = [&](const std::string& field, const std::string& value, std::string& out) {
    if (value.empty()) return;
    if (value.front() != '/') fail(field, "\"" + value + "\" is not an absolute path");
    out = value;
  };

  if (!message.listen().empty()) {
    const std::string& listen = message.listen();
    if (!core::isHostPort(listen, core::HostPart::kOptional)) {
      fail("listen", "\"" + listen + "\" is not host:port");
    }
    config.listen = listen;
  }
  absolute("adminSocket", message.admin_socket(), config.adminSocket);
  absolute("stateDirectory", message.state_directory(), config.stateDirectory);
  absolute("caCertificateFile", message.ca_certificate_file(), config.caCertificateFile);
  absolute("caKeyFile", message.ca_key_file(), config.caKeyFile);
  if (config.caCertificateFile.empty() != config.caKeyFile.empty()) {
    fail(config.caKeyFile.empty() ? "caKeyFile" : "caCertificateFile",
         "a given CA needs both its certificate and its key");
  }
  config.serverNames.assign(message.server_names().begin(), message.server_names().end());
  duration("nodeCertificateValidity", message.node_certificate_validity(),
           config.nodeCertificateValidity);
  if (!message.log_level().empty()) {
    config.logLevel = spdlog::level::from_str(message.log_level());
    if (config.logLevel == spdlog::level::off && message.log_level() != "off") {
      fail("logLevel", "\"" + message.log_level() +
                           "\" is not one of trace, debug, info, warn, error, critical, off");
    }
  }

  const v1::Alerting& alerting = message.alerting();
  auto limits = [&](const std::string& field, const v1::Limits& in, AlertLimits& out) {
    if (in.disk_percent() > 100) fail(field + ".diskPercent", "is a percentage, 1 to 100");
    if (in.disk_percent() > 0) out.diskPercent = in.disk_percent();
    duration(field + ".notSeenFor", in.not_seen_for(), out.notSeenFor);
    if (in.has_crash_looping()) out.crashLooping = in.crash_looping();
  };
  limits("alerting.limits", alerting.limits(), config.limits);
  for (int i = 0; i < alerting.group_limits_size(); ++i) {
    const v1::GroupLimits& group = alerting.group_limits(i);
    const std::string field = "alerting.groupLimits[" + std::to_string(i) + "]";
    if (group.group().empty()) fail(field + ".group", "names the group the limits are for");
    if (config.groupLimits.contains(group.group())) {
      fail(field + ".group", "\"" + group.group() + "\" has limits already");
    }
    AlertLimits out = config.limits;
    limits(field + ".limits", group.limits(), out);
    config.groupLimits[group.group()] = out;
  }
  if (!alerting.webhook_url().empty()) {
    const std::string& url = alerting.webhook_url();
    if (!url.starts_with("http://") && !url.starts_with("https://")) {
      fail("alerting.webhookUrl", "\"" + url + "\" is not an http:// or https:// URL");
    }
    config.webhookUrl = url;
  }
  duration("alerting.checkInterval", alerting.check_interval(), config.alertCheckInterval);

  if (errors.empty()) return config;
  std::string all = errors.front().toString();
  for (size_t i = 1; i < errors.size(); ++i) all += "; " + errors[i].toString();
  return core::Status::invalidArgument(all);
}

}  // namespace nodewarden::server
