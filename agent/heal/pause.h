#pragma once

#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "agent/core/clock.h"
#include "agent/core/status.h"

namespace nodewarden::heal {

// An operator's pause: why, since when, and until when (unset: until resumed).
// Wall times, so that a pause given "--for 2h" still ends on time after the
// agent or the node restarted.
struct Pause {
  std::string reason;
  core::WallTime since{};
  std::optional<core::WallTime> until;

  bool operator==(const Pause&) const = default;
};

// The operator's pauses of enforcement and healing: one for the whole node and
// one per unit. While a pause holds the agent still observes and reports but
// changes nothing it covers. Persisted as JSON (0600) on every change, so a
// pause survives agent restarts; a pause with an end is lifted by a timer at
// that time, and listeners hear of every change. Lives on the loop thread.
class PauseStore final {
 public:
  // A reason is one line for people, not a document.
  static constexpr size_t kMaxReasonBytes = 1024;
  // systemd refuses unit names longer than this.
  static constexpr size_t kMaxUnitBytes = 255;
  // Longer pauses are meant to be open-ended (no duration) and resumed by hand.
  static constexpr core::Duration kMaxDuration = std::chrono::hours(24 * 366);

  // `path` "" keeps the pauses in memory only (tests, one-shot commands).
  PauseStore(core::Clock& clock, std::string path);
  ~PauseStore();

  PauseStore(const PauseStore&) = delete;
  PauseStore& operator=(const PauseStore&) = delete;

  // Reads the persisted pauses and arms the timer for the next end. A missing
  // file means nothing is paused; a file that is not a pause file is an error
  // and leaves the store empty. Pauses that ended while the agent was down
  // are dropped. Listeners are not called: the caller reads the result.
  core::Status load();

  // Pauses the node (no unit) or one unit, replacing the reason and end of a
  // pause already in place (its start stays). Saved before it takes effect:
  // when it cannot be saved nothing changes and the error says why.
  core::Status pause(const std::optional<std::string>& unit, std::string reason,
                     std::optional<core::Duration> duration);
  // Lifts the node's pause (no unit) or one unit's; the node's pause does not
  // lift a unit's. Returns whether that pause was in place.
  core::Result<bool> resume(const std::optional<std::string>& unit);

  // Whether `unit` must be left alone: the node or the unit is paused.
  bool paused(const std::string& unit) const;
  bool nodePaused() const { return node_.has_value(); }
  const std::optional<Pause>& node() const { return node_; }
  const std::map<std::string, Pause>& units() const { return units_; }

  // Called after every change: pause, resume and a pause reaching its end.
  void addListener(std::function<void()> listener) { listeners_.push_back(std::move(listener)); }

  // {"node": {"reason", "since", "until"|null}|null, "units": {"<unit>": {...}}},
  // times in RFC 3339 UTC: the file's format and the status's "paused".
  nlohmann::json toJson() const;

 private:
  core::Status save(const std::optional<Pause>& node, const std::map<std::string, Pause>& units);
  void expire();
  void armExpiry();
  void notify();

  core::Clock& clock_;
  const std::string path_;
  std::optional<Pause> node_;
  std::map<std::string, Pause> units_;
  std::vector<std::function<void()>> listeners_;
  std::unique_ptr<core::Timer> expiryTimer_;
};

// Checks a pause's reason: present, one line, at most kMaxReasonBytes.
core::Status validatePauseReason(const std::string& reason);
// Checks a unit name as systemd would take it ("kubelet.service").
core::Status validatePauseUnit(const std::string& unit);

}  // namespace nodewarden::heal
