#include "agent/heal/health.h"

#include <ctime>
#include <nlohmann/json.hpp>

#include "agent/core/atomic_file.h"
#include "agent/core/log.h"

namespace nodewarden::heal {

namespace {

const auto kLog = core::log::category("health");

constexpr size_t kMaxFileBytes = 4 * 1024 * 1024;

nlohmann::json conditionJson(const Condition& c) {
  return {{"subject", c.subject}, {"type", c.type},       {"status", c.status},
          {"reason", c.reason},   {"message", c.message}, {"since", formatTime(c.since)}};
}

nlohmann::json eventJson(const Event& e) {
  return {{"time", formatTime(e.time)},
          {"subject", e.subject},
          {"reason", e.reason},
          {"message", e.message},
          {"type", e.warning ? "Warning" : "Normal"}};
}

}  // namespace

core::Result<nlohmann::json> readJsonObject(const std::string& path, size_t maxBytes) {
  auto text = core::readFile(path, maxBytes);
  if (!text) {
    if (text.status().code() == core::Status::Code::kNotFound) return nlohmann::json();
    return text.status();
  }
  auto document = nlohmann::json::parse(*text, nullptr, /*allow_exceptions=*/false);
  if (!document.is_object()) return core::Status::invalidArgument(path + ": not a JSON object");
  return document;
}

std::string formatTime(core::WallTime time) {
  const std::time_t t = std::chrono::system_clock::to_time_t(time);
  std::tm tm;
  gmtime_r(&t, &tm);
  char text[32];
  std::strftime(text, sizeof(text), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return text;
}

core::Result<core::WallTime> parseTime(const std::string& text) {
  std::tm tm{};
  const char* end = strptime(text.c_str(), "%Y-%m-%dT%H:%M:%SZ", &tm);
  if (end == nullptr || *end != '\0') {
    return core::Status::invalidArgument("\"" + text +
                                         "\" is not a time like 2026-11-22T09:14:03Z");
  }
  return std::chrono::system_clock::from_time_t(timegm(&tm));
}

HealthBoard::HealthBoard(core::Clock& clock, std::string path, size_t maxEvents)
    : clock_(clock),
      path_(std::move(path)),
      maxEvents_(maxEvents),
      persistTimer_(clock.createTimer([this] {
        if (core::Status s = flush(); !s) {
          NW_LOG(kLog, warn, "Failed to save conditions and events: {}", s.message());
        }
      })) {}

HealthBoard::~HealthBoard() { (void)flush(); }

core::Status HealthBoard::load() {
  if (path_.empty()) return core::Status::ok();
  auto read = readJsonObject(path_, kMaxFileBytes);
  if (!read) return read.status();
  if (read->is_null()) return core::Status::ok();
  const nlohmann::json& document = *read;
  std::map<std::pair<std::string, std::string>, Condition> conditions;
  std::deque<Event> events;
  auto timeOf = [](const nlohmann::json& value) -> core::WallTime {
    if (!value.is_string()) return {};
    auto parsed = parseTime(value.get<std::string>());
    return parsed ? *parsed : core::WallTime{};
  };
  auto text_of = [](const nlohmann::json& object, const char* key) {
    auto it = object.find(key);
    return it != object.end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  for (const auto& item : document.value("conditions", nlohmann::json::array())) {
    if (!item.is_object()) continue;
    Condition c{.subject = text_of(item, "subject"),
                .type = text_of(item, "type"),
                .status = item.value("status", false),
                .reason = text_of(item, "reason"),
                .message = text_of(item, "message"),
                .since = timeOf(item.value("since", nlohmann::json()))};
    if (c.subject.empty() || c.type.empty()) continue;
    conditions[{c.subject, c.type}] = std::move(c);
  }
  for (const auto& item : document.value("events", nlohmann::json::array())) {
    if (!item.is_object()) continue;
    events.push_back({.time = timeOf(item.value("time", nlohmann::json())),
                      .subject = text_of(item, "subject"),
                      .reason = text_of(item, "reason"),
                      .message = text_of(item, "message"),
                      .warning = text_of(item, "type") == "Warning"});
  }
  while (events.size() > maxEvents_) events.pop_front();
  conditions_ = std::move(conditions);
  events_ = std::move(events);
  return core::Status::ok();
}

bool HealthBoard::set(const std::string& subject, const std::string& type, bool status,
                      std::string reason, std::string message) {
  auto [it, inserted] = conditions_.try_emplace({subject, type});
  Condition& c = it->second;
  if (!inserted && c.status == status && c.reason == reason && c.message == message) return false;
  if (inserted || c.status != status) c.since = clock_.wallNow();
  c.subject = subject;
  c.type = type;
  c.status = status;
  c.reason = std::move(reason);
  c.message = std::move(message);
  changed();
  for (const auto& listener : listeners_) listener(c);
  return true;
}

const Condition* HealthBoard::get(const std::string& subject, const std::string& type) const {
  auto it = conditions_.find({subject, type});
  return it == conditions_.end() ? nullptr : &it->second;
}

void HealthBoard::removeSubject(const std::string& subject) {
  bool any = false;
  for (auto it = conditions_.lower_bound({subject, ""});
       it != conditions_.end() && it->first.first == subject;) {
    it = conditions_.erase(it);
    any = true;
  }
  if (any) changed();
}

std::vector<Condition> HealthBoard::conditions() const {
  std::vector<Condition> result;
  for (const auto& [key, c] : conditions_) {
    if (key.first == kNodeSubject) result.push_back(c);
  }
  for (const auto& [key, c] : conditions_) {
    if (key.first != kNodeSubject) result.push_back(c);
  }
  return result;
}

void HealthBoard::record(const std::string& subject, std::string reason, std::string message,
                         bool warning) {
  if (warning) {
    NW_LOG(kLog, warn, "{}: {}: {}", subject, reason, message);
  } else {
    NW_LOG(kLog, info, "{}: {}: {}", subject, reason, message);
  }
  events_.push_back({.time = clock_.wallNow(),
                     .subject = subject,
                     .reason = std::move(reason),
                     .message = std::move(message),
                     .warning = warning});
  while (events_.size() > maxEvents_) events_.pop_front();
  for (const auto& listener : eventListeners_) listener(events_.back());
  changed();
}

nlohmann::json HealthBoard::toJson() const {
  nlohmann::json conditions = nlohmann::json::array();
  for (const Condition& c : this->conditions()) conditions.push_back(conditionJson(c));
  nlohmann::json events = nlohmann::json::array();
  for (const Event& e : events_) events.push_back(eventJson(e));
  return {{"conditions", std::move(conditions)}, {"events", std::move(events)}};
}

core::Status HealthBoard::flush() {
  persistTimer_->cancel();
  if (!dirty_ || path_.empty()) return core::Status::ok();
  dirty_ = false;
  return core::writeFileAtomic(path_, toJson().dump(1) + "\n", {.mode = 0600});
}

void HealthBoard::changed() {
  dirty_ = true;
  if (!path_.empty() && !persistTimer_->armed()) persistTimer_->armIn(kPersistDelay);
}

}  // namespace nodewarden::heal
