#include "agent/control/status_text.h"

#include <algorithm>
#include <ctime>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <vector>

#include "agent/core/duration.h"
#include "agent/heal/health.h"

namespace nodewarden::control {

namespace {

using Json = nlohmann::json;
using Rows = std::vector<std::vector<std::string>>;

// systemctl's colours.
constexpr char kGreen[] = "\033[0;1;32m";
constexpr char kYellow[] = "\033[0;1;33m";
constexpr char kRed[] = "\033[0;1;31m";
constexpr char kBold[] = "\033[1m";
constexpr char kReset[] = "\033[0m";

// Reading a status that may lack any field, or hold one of another type.
const Json& field(const Json& object, const char* key) {
  static const Json kNull;
  if (!object.is_object()) return kNull;
  auto it = object.find(key);
  return it == object.end() ? kNull : *it;
}

std::string text(const Json& object, const char* key) {
  const Json& value = field(object, key);
  if (value.is_string()) return value.get<std::string>();
  if (value.is_number() || value.is_boolean()) return value.dump();
  return "";
}

std::optional<int64_t> integer(const Json& object, const char* key) {
  const Json& value = field(object, key);
  if (value.is_number_integer()) return value.get<int64_t>();
  if (value.is_number()) return static_cast<int64_t>(value.get<double>());
  return std::nullopt;
}

bool flag(const Json& object, const char* key) {
  const Json& value = field(object, key);
  return value.is_boolean() && value.get<bool>();
}

const Json& array(const Json& object, const char* key) {
  static const Json kEmpty = Json::array();
  const Json& value = field(object, key);
  return value.is_array() ? value : kEmpty;
}

std::optional<core::WallTime> timeOf(const Json& object, const char* key) {
  const std::string raw = text(object, key);
  if (raw.empty()) return std::nullopt;
  auto parsed = heal::parseTime(raw);
  return parsed ? std::optional(*parsed) : std::nullopt;
}

std::string strftimeUtc(core::WallTime time, const char* format) {
  const std::time_t t = std::chrono::system_clock::to_time_t(time);
  std::tm tm;
  gmtime_r(&t, &tm);
  char out[64];
  std::strftime(out, sizeof(out), format, &tm);
  return out;
}

// "2h14m ago", "in 16m": whole minutes past an hour, whole seconds below.
std::string relative(core::WallTime time, core::WallTime now) {
  const bool past = time <= now;
  core::Duration span = past ? now - time : time - now;
  span = span >= std::chrono::hours(1)
             ? core::Duration(std::chrono::floor<std::chrono::minutes>(span))
             : core::Duration(std::chrono::floor<std::chrono::seconds>(span));
  const std::string amount = core::formatDuration(span);
  return past ? amount + " ago" : "in " + amount;
}

// "2026-11-22 09:14:03 UTC; 2h14m ago", or the text as the agent sent it
// when it is not a time.
std::string when(const Json& object, const char* key, core::WallTime now) {
  return describeTime(text(object, key), now);
}

std::string shortTime(const Json& object, const char* key) {
  if (auto time = timeOf(object, key)) return strftimeUtc(*time, "%Y-%m-%d %H:%M:%S");
  const std::string raw = text(object, key);
  return raw.empty() ? "-" : raw;
}

std::string orDash(std::string value) { return value.empty() ? "-" : value; }

// Columns two spaces apart; the last is not padded (messages can be long).
void printTable(const Rows& rows, std::ostream& out) {
  std::vector<size_t> widths;
  for (const auto& row : rows) {
    widths.resize(std::max(widths.size(), row.size()));
    for (size_t i = 0; i < row.size(); ++i) widths[i] = std::max(widths[i], row[i].size());
  }
  for (const auto& row : rows) {
    std::string line = "  ";
    for (size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) line += std::string(widths[i] - row[i].size() + 2, ' ');
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    out << line << "\n";
  }
}

// "kubelet.service: debugging cgroups", then when it started and ends.
std::vector<std::string> pauseLines(const std::string& what, const Json& pause,
                                    core::WallTime now) {
  const std::string reason = text(pause, "reason");
  std::string times;
  if (!text(pause, "since").empty()) times = "since " + when(pause, "since", now) + ", ";
  times += field(pause, "until").is_null() ? "until resumed" : "until " + when(pause, "until", now);
  return {what + (reason.empty() ? "" : ": " + reason), times};
}

void printHeader(const Json& status, std::ostream& out, const StatusTextOptions& options) {
  const Assessment assessment = assess(status);
  const char* word = "healthy";
  const char* colour = kGreen;
  switch (assessment.health) {
    case Health::kHealthy:
      break;
    case Health::kPaused:
      word = "paused";
      colour = kYellow;
      break;
    case Health::kDegraded:
      word = "degraded";
      colour = kYellow;
      break;
    case Health::kFailed:
      word = "failed";
      colour = kRed;
      break;
  }
  const char* on = options.colour ? colour : "";
  const char* off = options.colour ? kReset : "";
  out << on << "●" << off << " nodewarden-agent - " << on << word << off;
  if (!assessment.because.empty()) out << " (" << assessment.because << ")";
  out << "\n";

  const Json& agent = field(status, "agent");
  if (agent.is_object()) {
    std::vector<std::string> parts;
    if (!text(agent, "version").empty()) parts.push_back(text(agent, "version"));
    if (auto pid = integer(agent, "pid")) parts.push_back("pid " + std::to_string(*pid));
    if (!text(agent, "since").empty())
      parts.push_back("since " + when(agent, "since", options.now));
    std::string line;
    for (const auto& part : parts) line += (line.empty() ? "" : ", ") + part;
    out << "     Agent: " << orDash(line) << "\n";
  }

  const Json& server = field(status, "server");
  if (server.is_object()) {
    std::string line = orDash(text(server, "status")) + ", as " + orDash(text(server, "node"));
    line += text(server, "enforcing").empty() ? ", no state from it yet"
                                              : ", enforcing " + text(server, "enforcing");
    if (auto n = integer(server, "spooled"); n && *n > 0) {
      line += ", " + std::to_string(*n) + (*n == 1 ? " report" : " reports") + " spooled";
    }
    out << "    Server: " << line << "\n";
  }

  const Json& paused = field(status, "paused");
  if (paused.is_object()) {
    std::vector<std::string> lines;
    const Json& node = field(paused, "node");
    if (node.is_object()) lines = pauseLines("the whole node", node, options.now);
    const Json& units = field(paused, "units");
    if (units.is_object()) {
      for (const auto& [unit, pause] : units.items()) {
        for (auto& line : pauseLines(unit, pause, options.now)) lines.push_back(std::move(line));
      }
    }
    if (lines.empty()) lines.push_back("no");
    for (size_t i = 0; i < lines.size(); ++i) {
      out << (i == 0 ? "    Paused: " : "            ") << lines[i] << "\n";
    }
  }

  const Json& converge = field(status, "converge");
  if (converge.is_object()) {
    std::string line = orDash(text(converge, "result"));
    if (!text(converge, "lastCheck").empty()) {
      line += ", last check " + when(converge, "lastCheck", options.now);
    } else {
      line += ", no check yet";
    }
    std::vector<std::string> counts;
    if (auto n = integer(converge, "changed")) counts.push_back(std::to_string(*n) + " changed");
    if (auto n = integer(converge, "failed")) counts.push_back(std::to_string(*n) + " failed");
    if (auto n = integer(converge, "durationMs")) counts.push_back(std::to_string(*n) + " ms");
    if (!counts.empty()) {
      line += " (";
      for (size_t i = 0; i < counts.size(); ++i) line += (i == 0 ? "" : ", ") + counts[i];
      line += ")";
    }
    out << "  Converge: " << line << "\n";
    if (!text(converge, "message").empty())
      out << "            " << text(converge, "message") << "\n";
  }
}

void printConditions(const Json& status, std::ostream& out) {
  const Json& conditions = array(status, "conditions");
  if (conditions.empty()) return;
  Rows rows = {{"SUBJECT", "TYPE", "STATUS", "REASON", "SINCE", "MESSAGE"}};
  for (const Json& c : conditions) {
    rows.push_back(
        {orDash(text(c, "subject")), orDash(text(c, "type")),
         field(c, "status").is_boolean() ? (flag(c, "status") ? "True" : "False") : "Unknown",
         orDash(text(c, "reason")), shortTime(c, "since"), text(c, "message")});
  }
  out << "\nConditions:\n";
  printTable(rows, out);
}

std::string probeText(const Json& probe) {
  if (!probe.is_object()) return "-";
  const std::string check = text(probe, "check");
  std::string result;
  if (flag(probe, "failing")) {
    result = "failing";
    if (auto n = integer(probe, "consecutiveFailures"); n && *n > 0) {
      result += " " + std::to_string(*n) + (*n == 1 ? " time" : " times");
    }
    const std::string last = text(probe, "lastResult");
    if (!last.empty() && last != "ok") result += ": " + last;
  } else if (text(probe, "lastCheck").empty() && text(probe, "lastResult").empty()) {
    result = "not run yet";
  } else {
    result = "ok";
  }
  return check.empty() ? result : result + " (" + check + ")";
}

void printComponents(const Json& status, std::ostream& out, core::WallTime now) {
  const Json& components = array(status, "components");
  if (components.empty()) return;
  Rows rows = {{"UNIT", "STATE", "PID", "RESTARTS", "PROBE"}};
  for (const Json& c : components) {
    std::string state = orDash(text(c, "activeState"));
    if (!text(c, "subState").empty()) state += " (" + text(c, "subState") + ")";
    const auto pid = integer(c, "mainPid");
    std::string restarts = std::to_string(integer(c, "restarts").value_or(0));
    if (auto next = timeOf(c, "nextRestart")) restarts += ", next " + relative(*next, now);
    rows.push_back({orDash(text(c, "unit")), state, pid && *pid > 0 ? std::to_string(*pid) : "-",
                    restarts, probeText(field(c, "probe"))});
  }
  out << "\nComponents:\n";
  printTable(rows, out);
}

// As journalctl writes them: "Nov 22 09:14:03 kubelet.service Restarted: ...".
void printEvents(const Json& status, std::ostream& out, const StatusTextOptions& options) {
  const Json& events = array(status, "events");
  if (events.empty() || options.events == 0) return;
  const size_t shown = std::min(options.events, events.size());
  out << "\nEvents";
  if (shown < events.size()) out << " (last " << shown << " of " << events.size() << ")";
  out << ":\n";
  for (size_t i = events.size() - shown; i < events.size(); ++i) {
    const Json& e = events[i];
    const auto time = timeOf(e, "time");
    std::string line = time ? strftimeUtc(*time, "%b %d %H:%M:%S") : orDash(text(e, "time"));
    line += " " + orDash(text(e, "subject")) + " " + orDash(text(e, "reason"));
    if (!text(e, "message").empty()) line += ": " + text(e, "message");
    const bool warning = text(e, "type") == "Warning";
    if (options.colour && warning) {
      out << kBold << kYellow << line << kReset << "\n";
    } else {
      out << line << "\n";
    }
  }
}

}  // namespace

std::string describeTime(const std::string& time, core::WallTime now) {
  auto parsed = heal::parseTime(time);
  if (!parsed) return time;
  return strftimeUtc(*parsed, "%Y-%m-%d %H:%M:%S UTC") + "; " + relative(*parsed, now);
}

Assessment assess(const Json& status) {
  std::vector<std::string> failed;
  std::vector<std::string> degraded;
  // One reason per subject: a crash-looping unit is also failed, and saying
  // so twice makes the header no clearer.
  std::set<std::string> named;
  auto add = [&](std::vector<std::string>& list, const std::string& subject,
                 const std::string& what) {
    if (named.insert(subject).second) list.push_back(subject + " " + what);
  };
  for (const Json& c : array(status, "conditions")) {
    if (flag(c, "status") && text(c, "type") == heal::condition::kCrashLooping) {
      add(failed, text(c, "subject"), heal::condition::kCrashLooping);
    }
  }
  for (const Json& c : array(status, "components")) {
    if (text(c, "activeState") == "failed") add(failed, text(c, "unit"), "failed");
  }
  for (const Json& c : array(status, "conditions")) {
    const std::string type = text(c, "type");
    const bool holds = flag(c, "status");
    if (holds && (type == heal::condition::kDegraded || type == heal::condition::kProbeFailing ||
                  type == heal::condition::kDiskPressure)) {
      add(degraded, text(c, "subject"), type);
    }
    if (type == heal::condition::kHealthy && field(c, "status").is_boolean() && !holds) {
      add(degraded, text(c, "subject"), "unhealthy");
    }
  }
  for (const Json& c : array(status, "components")) {
    if (flag(field(c, "probe"), "failing")) add(degraded, text(c, "unit"), "ProbeFailing");
  }
  const std::string converge = text(field(status, "converge"), "result");
  if (converge == "failed" || converge == "rejected") add(degraded, "converge", converge);

  auto join = [](const std::vector<std::string>& list) {
    std::string out;
    for (const auto& item : list) out += (out.empty() ? "" : ", ") + item;
    return out;
  };
  if (!failed.empty()) return {Health::kFailed, join(failed)};
  if (!degraded.empty()) return {Health::kDegraded, join(degraded)};
  const Json& paused = field(status, "paused");
  const Json& units = field(paused, "units");
  if (field(paused, "node").is_object()) return {Health::kPaused, "node"};
  if (units.is_object() && !units.empty()) {
    std::vector<std::string> names;
    for (const auto& [unit, pause] : units.items()) names.push_back(unit);
    return {Health::kPaused, join(names)};
  }
  return {};
}

void printStatus(const Json& status, std::ostream& out, const StatusTextOptions& options) {
  printHeader(status, out, options);
  printConditions(status, out);
  printComponents(status, out, options.now);
  printEvents(status, out, options);
}

}  // namespace nodewarden::control
