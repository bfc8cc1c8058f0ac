#include "agent/heal/pause.h"

#include <algorithm>
#include <cctype>
#include <nlohmann/json.hpp>

#include "agent/core/atomic_file.h"
#include "agent/core/duration.h"
#include "agent/core/log.h"
#include "agent/heal/health.h"

namespace nodewarden::heal {

namespace {

const auto kLog = core::log::category("heal");

constexpr size_t kMaxFileBytes = 1024 * 1024;

nlohmann::json pauseJson(const Pause& pause) {
  return {{"reason", pause.reason},
          {"since", formatTime(pause.since)},
          {"until", pause.until ? nlohmann::json(formatTime(*pause.until)) : nlohmann::json()}};
}

nlohmann::json pausesJson(const std::optional<Pause>& node,
                          const std::map<std::string, Pause>& units) {
  nlohmann::json unitsJson = nlohmann::json::object();
  for (const auto& [unit, pause] : units) unitsJson[unit] = pauseJson(pause);
  return {{"node", node ? pauseJson(*node) : nlohmann::json()}, {"units", std::move(unitsJson)}};
}

// A pause read back from the file. A time that does not parse was written by
// hand or damaged: the pause is kept (an operator asked for it), open-ended
// when its end is unreadable, since leaving the node alone is the safe side.
std::optional<Pause> pauseFromJson(const nlohmann::json& item, core::WallTime now) {
  if (!item.is_object()) return std::nullopt;
  auto reason = item.find("reason");
  if (reason == item.end() || !reason->is_string() || reason->get<std::string>().empty()) {
    return std::nullopt;
  }
  Pause pause{.reason = reason->get<std::string>(), .since = now};
  if (auto since = item.find("since"); since != item.end() && since->is_string()) {
    if (auto parsed = parseTime(since->get<std::string>())) pause.since = *parsed;
  }
  if (auto until = item.find("until"); until != item.end() && until->is_string()) {
    if (auto parsed = parseTime(until->get<std::string>())) pause.until = *parsed;
  }
  return pause;
}

bool ended(const Pause& pause, core::WallTime now) { return pause.until && *pause.until <= now; }

}  // namespace

core::Status validatePauseReason(const std::string& reason) {
  const bool blank = std::all_of(reason.begin(), reason.end(),
                                 [](unsigned char c) { return std::isspace(c) != 0; });
  if (blank) return core::Status::invalidArgument("a pause needs a reason (--reason TEXT)");
  if (reason.size() > PauseStore::kMaxReasonBytes) {
    return core::Status::invalidArgument("the reason is longer than " +
                                         std::to_string(PauseStore::kMaxReasonBytes) + " bytes");
  }
  const bool control = std::any_of(reason.begin(), reason.end(),
                                   [](unsigned char c) { return c < 0x20 || c == 0x7f; });
  if (control) {
    return core::Status::invalidArgument("the reason must be one line without control characters");
  }
  return core::Status::ok();
}

core::Status validatePauseUnit(const std::string& unit) {
  const std::string quoted = "\"" + unit + "\"";
  if (unit.empty()) return core::Status::invalidArgument("the unit name is empty");
  if (unit.size() > PauseStore::kMaxUnitBytes) {
    return core::Status::invalidArgument("the unit name is longer than " +
                                         std::to_string(PauseStore::kMaxUnitBytes) + " bytes");
  }
  const size_t dot = unit.rfind('.');
  const bool allowed = std::all_of(unit.begin(), unit.end(), [](unsigned char c) {
    return std::isalnum(c) != 0 || c == ':' || c == '-' || c == '_' || c == '.' || c == '\\' ||
           c == '@';
  });
  if (!allowed || dot == std::string::npos || dot == 0 || dot + 1 == unit.size()) {
    return core::Status::invalidArgument(quoted + " is not a unit name like kubelet.service");
  }
  return core::Status::ok();
}

PauseStore::PauseStore(core::Clock& clock, std::string path)
    : clock_(clock),
      path_(std::move(path)),
      expiryTimer_(clock.createTimer([this] { expire(); })) {}

PauseStore::~PauseStore() = default;

core::Status PauseStore::load() {
  if (path_.empty()) return core::Status::ok();
  auto read = readJsonObject(path_, kMaxFileBytes);
  if (!read) return read.status();
  if (read->is_null()) return core::Status::ok();
  const nlohmann::json& document = *read;
  const core::WallTime now = clock_.wallNow();
  std::optional<Pause> node;
  std::map<std::string, Pause> units;
  if (auto it = document.find("node"); it != document.end()) {
    node = pauseFromJson(*it, now);
    if (node && ended(*node, now)) node.reset();
  }
  if (auto it = document.find("units"); it != document.end() && it->is_object()) {
    for (const auto& [unit, item] : it->items()) {
      if (!validatePauseUnit(unit)) continue;
      auto pause = pauseFromJson(item, now);
      if (pause && !ended(*pause, now)) units.emplace(unit, std::move(*pause));
    }
  }
  node_ = std::move(node);
  units_ = std::move(units);
  armExpiry();
  return core::Status::ok();
}

core::Status PauseStore::pause(const std::optional<std::string>& unit, std::string reason,
                               std::optional<core::Duration> duration) {
  if (core::Status s = validatePauseReason(reason); !s) return s;
  if (unit) {
    if (core::Status s = validatePauseUnit(*unit); !s) return s;
  }
  if (duration && (*duration <= core::Duration::zero() || *duration > kMaxDuration)) {
    return core::Status::invalidArgument("a pause lasts more than 0s and at most " +
                                         core::formatDuration(kMaxDuration) +
                                         "; leave the duration out to pause until resumed");
  }
  // Whole seconds, as the file keeps them: the pause read back after a
  // restart is the one in memory now.
  const core::WallTime now = clock_.wallNow();
  Pause next{.reason = std::move(reason), .since = std::chrono::floor<std::chrono::seconds>(now)};
  if (duration) next.until = std::chrono::ceil<std::chrono::seconds>(now + *duration);

  std::optional<Pause> node = node_;
  std::map<std::string, Pause> units = units_;
  // Already paused: the reason and end change, it has been paused since then.
  if (unit) {
    auto [it, inserted] = units.try_emplace(*unit, next);
    if (!inserted)
      it->second = {.reason = next.reason, .since = it->second.since, .until = next.until};
  } else {
    if (node) next.since = node->since;
    node = std::move(next);
  }
  if (core::Status s = save(node, units); !s) return s;
  node_ = std::move(node);
  units_ = std::move(units);
  armExpiry();
  notify();
  return core::Status::ok();
}

core::Result<bool> PauseStore::resume(const std::optional<std::string>& unit) {
  std::optional<Pause> node = node_;
  std::map<std::string, Pause> units = units_;
  const bool wasPaused = unit ? units.erase(*unit) > 0 : node.has_value();
  if (!wasPaused) return false;
  if (!unit) node.reset();
  if (core::Status s = save(node, units); !s) return s;
  node_ = std::move(node);
  units_ = std::move(units);
  armExpiry();
  notify();
  return true;
}

bool PauseStore::paused(const std::string& unit) const {
  return node_.has_value() || units_.contains(unit);
}

nlohmann::json PauseStore::toJson() const { return pausesJson(node_, units_); }

core::Status PauseStore::save(const std::optional<Pause>& node,
                              const std::map<std::string, Pause>& units) {
  if (path_.empty()) return core::Status::ok();
  const std::string text =
      pausesJson(node, units).dump(1, ' ', false, nlohmann::json::error_handler_t::replace);
  return core::writeFileAtomic(path_, text + "\n", {.mode = 0600}).withContext("save the pauses");
}

void PauseStore::expire() {
  const core::WallTime now = clock_.wallNow();
  std::optional<Pause> node = node_;
  std::map<std::string, Pause> units = units_;
  bool any = false;
  if (node && ended(*node, now)) {
    NW_LOG(kLog, info, "The pause of the node has ended ({})", node->reason);
    node.reset();
    any = true;
  }
  for (auto it = units.begin(); it != units.end();) {
    if (!ended(it->second, now)) {
      ++it;
      continue;
    }
    NW_LOG(kLog, info, "The pause of {} has ended ({})", it->first, it->second.reason);
    it = units.erase(it);
    any = true;
  }
  if (any) {
    // The pause is over whether or not the file says so: load() drops pauses
    // whose end has passed, so a stale file cannot bring it back.
    if (core::Status s = save(node, units); !s) {
      NW_LOG(kLog, warn, "Failed to save the pauses: {}, ignoring", s.message());
    }
    node_ = std::move(node);
    units_ = std::move(units);
  }
  // Also re-arms after a wall-clock step backwards made the timer fire early.
  armExpiry();
  if (any) notify();
}

void PauseStore::armExpiry() {
  std::optional<core::WallTime> next;
  auto consider = [&](const Pause& pause) {
    if (pause.until && (!next || *pause.until < *next)) next = pause.until;
  };
  if (node_) consider(*node_);
  for (const auto& [unit, pause] : units_) consider(pause);
  if (!next) {
    expiryTimer_->cancel();
    return;
  }
  // The timer runs on monotonic time; a step of the wall clock is seen when
  // it fires, which checks the wall time again.
  expiryTimer_->armIn(std::max(core::Duration::zero(), core::Duration(*next - clock_.wallNow())));
}

void PauseStore::notify() {
  for (const auto& listener : listeners_) listener();
}

}  // namespace nodewarden::heal
