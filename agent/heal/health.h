#pragma once

#include <cstddef>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "agent/core/clock.h"
#include "agent/core/status.h"

namespace nodewarden::heal {

// Whose condition it is: the node, or a managed unit by its name.
inline constexpr char kNodeSubject[] = "node";

// Condition types. Per component: Healthy, Degraded, CrashLooping,
// ProbeFailing; for the node: DiskPressure, Paused.
namespace condition {
inline constexpr char kHealthy[] = "Healthy";
inline constexpr char kDegraded[] = "Degraded";
inline constexpr char kCrashLooping[] = "CrashLooping";
inline constexpr char kProbeFailing[] = "ProbeFailing";
inline constexpr char kDiskPressure[] = "DiskPressure";
inline constexpr char kPaused[] = "Paused";
}  // namespace condition

// One condition of a subject, as Kubernetes writes node conditions: a type,
// whether it holds, a CamelCase reason, a sentence for people, and when it last
// changed between true and false.
struct Condition {
  std::string subject;
  std::string type;
  bool status = false;
  std::string reason;
  std::string message;
  core::WallTime since{};
};

// Something the agent did or saw: "Restarted", "CrashLooping", "ProbeFailed",
// "DiskCleanup", "OOMKilled", "Paused", ...
struct Event {
  core::WallTime time{};
  std::string subject;
  std::string reason;
  std::string message;
  bool warning = false;
};

// The conditions of the node and its components and a bounded log of events,
// kept in memory and persisted (JSON, written atomically, at most once a second)
// so that `nodewarden-agent status` and the next agent start find them.
// Lives on the loop thread.
class HealthBoard final {
 public:
  using Listener = std::function<void(const Condition& changed)>;

  static constexpr size_t kDefaultMaxEvents = 200;
  static constexpr core::Duration kPersistDelay = std::chrono::seconds(1);

  // `path` "" keeps everything in memory only (one-shot commands, tests).
  HealthBoard(core::Clock& clock, std::string path, size_t maxEvents = kDefaultMaxEvents);
  ~HealthBoard();  // writes what is not yet persisted

  // Reads the persisted board; a missing file is an empty board, a corrupt
  // one is an error (and the board stays empty).
  core::Status load();

  // Sets a condition. `since` moves only when `status` changes. Returns
  // whether status, reason or message changed; listeners hear of those.
  bool set(const std::string& subject, const std::string& type, bool status, std::string reason,
           std::string message);
  // The condition, or nullptr when it was never set.
  const Condition* get(const std::string& subject, const std::string& type) const;
  bool holds(const std::string& subject, const std::string& type) const {
    const Condition* c = get(subject, type);
    return c != nullptr && c->status;
  }
  // Forgets a subject (a unit no longer managed).
  void removeSubject(const std::string& subject);
  // Every condition, the node's first, then by subject and type.
  std::vector<Condition> conditions() const;

  // Appends an event (its time is now), dropping the oldest past the bound,
  // and logs it.
  void record(const std::string& subject, std::string reason, std::string message,
              bool warning = false);
  const std::deque<Event>& events() const { return events_; }

  void addListener(Listener listener) { listeners_.push_back(std::move(listener)); }
  // Called with every event as it is recorded.
  void addEventListener(std::function<void(const Event&)> listener) {
    eventListeners_.push_back(std::move(listener));
  }

  // {"conditions": [...], "events": [...]}, times in RFC 3339 UTC.
  nlohmann::json toJson() const;
  // Writes now what is pending.
  core::Status flush();

 private:
  void changed();

  core::Clock& clock_;
  const std::string path_;
  const size_t maxEvents_;
  std::map<std::pair<std::string, std::string>, Condition> conditions_;
  std::deque<Event> events_;
  std::vector<Listener> listeners_;
  std::vector<std::function<void(const Event&)>> eventListeners_;
  std::unique_ptr<core::Timer> persistTimer_;
  bool dirty_ = false;
};

// The JSON object in a file the agent keeps (at most maxBytes); null when
// the file does not exist, an error when it cannot be read or holds no object.
core::Result<nlohmann::json> readJsonObject(const std::string& path, size_t maxBytes);

// RFC 3339 UTC with seconds: "2026-11-22T09:14:03Z".
std::string formatTime(core::WallTime time);
// The inverse of formatTime().
core::Result<core::WallTime> parseTime(const std::string& text);

}  // namespace nodewarden::heal
