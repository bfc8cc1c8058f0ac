#include "agent/systemd/bus_systemd_manager.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <string_view>
#include <utility>

#include "agent/core/loop.h"
#include "agent/systemd/bus_status.h"
#include "agent/systemd/job_result.h"

namespace nodewarden::systemd {

namespace {

using namespace std::chrono_literals;

constexpr const char* kDestination = "org.freedesktop.systemd1";
constexpr const char* kManagerPath = "/org/freedesktop/systemd1";
constexpr const char* kManagerInterface = "org.freedesktop.systemd1.Manager";
constexpr const char* kUnitInterface = "org.freedesktop.systemd1.Unit";
constexpr const char* kPropertiesInterface = "org.freedesktop.DBus.Properties";
constexpr const char* kPrivateAddress = "unix:path=/run/systemd/private";
// sd-bus reports a dropped connection with a signal from this local object.
constexpr const char* kLocalPath = "/org/freedesktop/DBus/Local";
constexpr const char* kLocalInterface = "org.freedesktop.DBus.Local";

// Bounds of the synchronous calls, which block the loop: systemd answers
// queries in microseconds, but a reload of a big unit set takes seconds.
constexpr core::Duration kCallTimeout = 25s;
constexpr core::Duration kReloadTimeout = 60s;
// While units are watched, a failed reconnect (systemd still re-executing) is
// tried again after these delays, doubling.
constexpr core::Duration kFirstReconnectDelay = 50ms;
constexpr core::Duration kMaxReconnectDelay = 5s;

uint64_t toUsec(core::Duration duration) {
  return static_cast<uint64_t>(std::chrono::ceil<std::chrono::microseconds>(duration).count());
}

// The unit's object path, computed as systemd does; accessing it loads the unit,
// which saves the LoadUnit round trip.
std::string unitObjectPath(const std::string& unit) {
  char* path = nullptr;
  if (sd_bus_path_encode("/org/freedesktop/systemd1/unit", unit.c_str(), &path) < 0) return {};
  std::string result(path);
  std::free(path);
  return result;
}

// The type-specific interface that carries the unit's Result property, or
// nullptr for unit types without one.
const char* resultInterface(std::string_view unit) {
  constexpr std::pair<std::string_view, const char*> kTypes[] = {
      {".service", "org.freedesktop.systemd1.Service"},
      {".socket", "org.freedesktop.systemd1.Socket"},
      {".mount", "org.freedesktop.systemd1.Mount"},
      {".swap", "org.freedesktop.systemd1.Swap"},
      {".timer", "org.freedesktop.systemd1.Timer"},
      {".path", "org.freedesktop.systemd1.Path"},
      {".automount", "org.freedesktop.systemd1.Automount"},
      {".scope", "org.freedesktop.systemd1.Scope"},
  };
  for (const auto& [suffix, interface] : kTypes) {
    if (unit.ends_with(suffix)) return interface;
  }
  return nullptr;
}

std::string jobName(JobKind kind, const std::string& unit) {
  return std::string(jobVerb(kind)) + " " + unit;
}

core::Status connectionLostStatus(JobKind kind, const std::string& unit) {
  return core::Status::internal(jobName(kind, unit) +
                                ": connection to systemd lost while waiting for the job");
}

const char* jobMethod(JobKind kind) {
  switch (kind) {
    case JobKind::kStart:
      return "StartUnit";
    case JobKind::kStop:
      return "StopUnit";
    case JobKind::kRestart:
      return "RestartUnit";
  }
  return nullptr;
}

// Appends the units as an "as" argument.
int appendStrings(sd_bus_message* message, const std::vector<std::string>& strings) {
  int r = sd_bus_message_open_container(message, SD_BUS_TYPE_ARRAY, "s");
  for (size_t i = 0; r >= 0 && i < strings.size(); ++i) {
    r = sd_bus_message_append_basic(message, SD_BUS_TYPE_STRING, strings[i].c_str());
  }
  if (r >= 0) r = sd_bus_message_close_container(message);
  return r;
}

std::string joined(std::string_view verb, const std::vector<std::string>& units) {
  std::string text(verb);
  for (const std::string& unit : units) text += " " + unit;
  return text;
}

int readStringVariant(sd_bus_message* message, std::string& out) {
  const char* value = nullptr;
  int r = sd_bus_message_read(message, "v", "s", &value);
  if (r >= 0) out = value;
  return r;
}

int readStringArrayVariant(sd_bus_message* message, std::vector<std::string>& out) {
  int r = sd_bus_message_enter_container(message, SD_BUS_TYPE_VARIANT, "as");
  if (r < 0) return r;
  r = sd_bus_message_enter_container(message, SD_BUS_TYPE_ARRAY, "s");
  if (r < 0) return r;
  out.clear();
  const char* value = nullptr;
  while ((r = sd_bus_message_read_basic(message, SD_BUS_TYPE_STRING, &value)) > 0) {
    out.emplace_back(value);
  }
  if (r < 0) return r;
  r = sd_bus_message_exit_container(message);
  if (r < 0) return r;
  return sd_bus_message_exit_container(message);
}

// Reads the reply of Properties.GetAll on the Unit interface.
int readUnitProperties(sd_bus_message* reply, UnitStatus& status) {
  int r = sd_bus_message_enter_container(reply, SD_BUS_TYPE_ARRAY, "{sv}");
  if (r < 0) return r;
  while ((r = sd_bus_message_enter_container(reply, SD_BUS_TYPE_DICT_ENTRY, "sv")) > 0) {
    const char* name = nullptr;
    r = sd_bus_message_read_basic(reply, SD_BUS_TYPE_STRING, &name);
    if (r < 0) return r;
    const std::string_view property(name);
    if (property == "LoadState") {
      r = readStringVariant(reply, status.loadState);
    } else if (property == "ActiveState") {
      r = readStringVariant(reply, status.activeState);
    } else if (property == "SubState") {
      r = readStringVariant(reply, status.subState);
    } else if (property == "UnitFileState") {
      r = readStringVariant(reply, status.unitFileState);
    } else if (property == "FragmentPath") {
      r = readStringVariant(reply, status.fragmentPath);
    } else if (property == "NeedDaemonReload") {
      int value = 0;
      r = sd_bus_message_read(reply, "v", "b", &value);
      status.needDaemonReload = value != 0;
    } else if (property == "DropInPaths") {
      r = readStringArrayVariant(reply, status.dropInPaths);
    } else {
      r = sd_bus_message_skip(reply, "v");
    }
    if (r < 0) return r;
    r = sd_bus_message_exit_container(reply);
    if (r < 0) return r;
  }
  if (r < 0) return r;
  return sd_bus_message_exit_container(reply);
}

// Reads an a{sv} of Unit or type-specific properties into `activity`, skipping
// the ones it does not follow; `id`, when given, gets the unit's Id.
int readActivityProperties(sd_bus_message* message, UnitActivity& activity, std::string* id) {
  int r = sd_bus_message_enter_container(message, SD_BUS_TYPE_ARRAY, "{sv}");
  if (r < 0) return r;
  while ((r = sd_bus_message_enter_container(message, SD_BUS_TYPE_DICT_ENTRY, "sv")) > 0) {
    const char* name = nullptr;
    r = sd_bus_message_read_basic(message, SD_BUS_TYPE_STRING, &name);
    if (r < 0) return r;
    const std::string_view property(name);
    if (property == "ActiveState") {
      r = readStringVariant(message, activity.activeState);
    } else if (property == "SubState") {
      r = readStringVariant(message, activity.subState);
    } else if (property == "Result") {
      r = readStringVariant(message, activity.result);
    } else if (property == "MainPID") {
      r = sd_bus_message_read(message, "v", "u", &activity.mainPid);
    } else if (property == "NRestarts") {
      r = sd_bus_message_read(message, "v", "u", &activity.restarts);
    } else if (property == "Job") {
      uint32_t job = 0;
      const char* jobPath = nullptr;
      r = sd_bus_message_read(message, "v", "(uo)", &job, &jobPath);
      activity.jobPending = job != 0;
    } else if (property == "Id" && id != nullptr) {
      r = readStringVariant(message, *id);
    } else {
      r = sd_bus_message_skip(message, "v");
    }
    if (r < 0) return r;
    r = sd_bus_message_exit_container(message);
    if (r < 0) return r;
  }
  if (r < 0) return r;
  return sd_bus_message_exit_container(message);
}

bool isFollowed(std::string_view property) {
  return property == "ActiveState" || property == "SubState" || property == "Result" ||
         property == "MainPID" || property == "NRestarts" || property == "Job";
}

// Reads the invalidated property names of a PropertiesChanged signal: systemd
// names some without their values, which then must be read.
int readInvalidated(sd_bus_message* signal, bool& followed) {
  int r = sd_bus_message_enter_container(signal, SD_BUS_TYPE_ARRAY, "s");
  if (r < 0) return r;
  const char* name = nullptr;
  while ((r = sd_bus_message_read_basic(signal, SD_BUS_TYPE_STRING, &name)) > 0) {
    if (isFollowed(name)) followed = true;
  }
  if (r < 0) return r;
  return sd_bus_message_exit_container(signal);
}

// Marks the messages a sender sent before one of its replies. A sender numbers
// every message it sends (its cookie), signals and replies alike, so on one
// connection a smaller cookie from the same sender means an older message.
struct SentBefore {
  bool set = false;
  std::string sender;  // "" on a direct connection, where messages carry none
  uint64_t cookie = 0;
};

SentBefore sentBefore(sd_bus_message* reply) {
  SentBefore mark;
  const char* sender = sd_bus_message_get_sender(reply);
  mark.sender = sender != nullptr ? sender : "";
  mark.set = sd_bus_message_get_cookie(reply, &mark.cookie) >= 0;
  return mark;
}

// Whether `message` was sent before the reply `mark` was taken from. Messages
// arrive in order, so the first that was not ends the mark's use.
bool sentEarlier(sd_bus_message* message, SentBefore& mark) {
  if (!mark.set) return false;
  const char* sender = sd_bus_message_get_sender(message);
  uint64_t cookie = 0;
  if (mark.sender == (sender != nullptr ? sender : "") &&
      sd_bus_message_get_cookie(message, &cookie) >= 0 && cookie < mark.cookie) {
    return true;
  }
  mark.set = false;
  return false;
}

}  // namespace

struct BusSystemdManager::Job {
  BusSystemdManager* manager;
  uint64_t id;
  JobKind kind;
  std::string unit;
  JobCallback done;
  std::unique_ptr<core::Timer> timer;  // the job timeout
  // Set when the job is to end without word from systemd: it never reached
  // systemd, or the connection it went through was lost. onDeferred() delivers
  // it, so that `done` never runs inside runJob() or a synchronous call.
  core::Status failure;
  std::string path;     // the job's object path once systemd has queued it
  SlotPtr pendingCall;  // StartUnit & co., then the Get of the unit's Result
};

struct BusSystemdManager::Watch {
  BusSystemdManager* manager;
  std::string unit;                     // the name watched
  std::string path;                     // the object path systemd signals on: its Id's
  const char* typeInterface = nullptr;  // the interface with Result, MainPID, ...; or none
  UnitActivityCallback changed;
  UnitActivity current;   // as the messages so far tell
  UnitActivity reported;  // as the callback last heard it, or watchUnit() returned it
  SlotPtr match;          // PropertiesChanged on `path`
  // Reads in flight, of the Unit's and the type's properties; `changed` waits
  // for them.
  SlotPtr unitRead;
  SlotPtr typeRead;
  // Signals queued before watchUnit()'s replies are older than what it read.
  SentBefore unitReadAt;
  SentBefore typeReadAt;
};

core::Result<std::unique_ptr<BusSystemdManager>> BusSystemdManager::connect(
    core::Loop& loop, core::Clock& clock, core::Duration jobTimeout) {
  return connectTo(loop, clock, jobTimeout, "");
}

core::Result<std::unique_ptr<BusSystemdManager>> BusSystemdManager::connectTo(
    core::Loop& loop, core::Clock& clock, core::Duration jobTimeout, std::string address) {
  std::unique_ptr<BusSystemdManager> manager(
      new BusSystemdManager(loop, clock, jobTimeout, std::move(address)));
  auto deferred = loop.addDefer([raw = manager.get()] { raw->onDeferred(); });
  if (!deferred) return deferred.status();
  manager->deferred_ = std::move(*deferred);
  if (core::Status s = manager->connectBus(); !s) return s;
  return manager;
}

BusSystemdManager::BusSystemdManager(core::Loop& loop, core::Clock& clock,
                                     core::Duration jobTimeout, std::string address)
    : loop_(loop), clock_(clock), jobTimeout_(jobTimeout), requestedAddress_(std::move(address)) {
  reconnectTimer_ = clock_.createTimer([this] { (void)ensureConnected(); });
}

BusSystemdManager::~BusSystemdManager() {
  deferred_.reset();
  reconnectTimer_.reset();
  // The jobs' slots and the matches go before the connection they reference.
  jobs_.clear();
  watches_.clear();
  jobRemovedSlot_.reset();
  ownerSlot_.reset();
  disconnectedSlot_.reset();
}

core::Status BusSystemdManager::connectBus() {
  // systemd reports the end of a job on the connection that queued it only.
  for (auto& [id, job] : jobs_) {
    if (job->failure.isOk()) failSoon(*job, connectionLostStatus(job->kind, job->unit));
  }
  // Everything that references the connection goes before it.
  auto disconnect = [this] {
    for (auto& [unit, watch] : watches_) {
      watch->match.reset();
      watch->unitRead.reset();
      watch->typeRead.reset();
      watch->unitReadAt = {};
      watch->typeReadAt = {};
    }
    jobRemovedSlot_.reset();
    ownerSlot_.reset();
    disconnectedSlot_.reset();
    bus_.reset();
  };
  disconnect();
  connectedAddress_.clear();

  sd_bus* raw = nullptr;
  int r = 0;
  direct_ = false;
  // Only root may use the private socket; systemctl does the same.
  if (!requestedAddress_.empty() || geteuid() == 0) {
    const std::string address = requestedAddress_.empty() ? kPrivateAddress : requestedAddress_;
    r = sd_bus_new(&raw);
    if (r < 0) return core::Status::fromErrno(r, "create bus connection");
    BusPtr bus(raw);
    r = sd_bus_set_address(bus.get(), address.c_str());
    if (r >= 0) r = sd_bus_start(bus.get());
    if (r >= 0) {
      bus_ = std::move(bus);
      direct_ = true;
    } else if (!requestedAddress_.empty()) {
      return core::Status::fromErrno(r, "connect to systemd at " + address);
    }
    // Otherwise the system bus; address() tells the caller which one it got.
  }
  if (!bus_) {
    r = sd_bus_open_system(&raw);
    if (r < 0) return core::Status::fromErrno(r, "connect to systemd");
    bus_.reset(raw);
  }
  sd_bus_set_method_call_timeout(bus_.get(), toUsec(kCallTimeout));

  r = sd_bus_attach_event(bus_.get(), loop_.event(), SD_EVENT_PRIORITY_NORMAL);
  if (r < 0) {
    disconnect();
    return core::Status::fromErrno(r, "attach bus connection to the event loop");
  }

  // The matches and the subscription come before any job is queued or unit
  // read, so no signal can slip by. Messages on a direct connection carry no
  // sender.
  const char* sender = direct_ ? nullptr : kDestination;
  sd_bus_slot* slot = nullptr;
  r = sd_bus_match_signal(bus_.get(), &slot, sender, kManagerPath, kManagerInterface, "JobRemoved",
                          &BusSystemdManager::onJobRemoved, this);
  if (r < 0) {
    disconnect();
    return core::Status::fromErrno(r, "watch systemd's JobRemoved signal");
  }
  jobRemovedSlot_.reset(slot);
  if (!direct_) {
    // Through the bus daemon the connection outlives systemd re-executing, but
    // what happened while systemd was off the bus went unsignalled.
    r = sd_bus_add_match(bus_.get(), &slot,
                         "type='signal',sender='org.freedesktop.DBus',path='/org/freedesktop/DBus',"
                         "interface='org.freedesktop.DBus',member='NameOwnerChanged',"
                         "arg0='org.freedesktop.systemd1'",
                         &BusSystemdManager::onSystemdOwner, this);
    if (r < 0) {
      disconnect();
      return core::Status::fromErrno(r, "watch for systemd re-executing");
    }
    ownerSlot_.reset(slot);
  }
  // Reconnects as soon as the connection drops, rather than at the next call.
  r = sd_bus_match_signal(bus_.get(), &slot, nullptr, kLocalPath, kLocalInterface, "Disconnected",
                          &BusSystemdManager::onDisconnected, this);
  if (r < 0) {
    disconnect();
    return core::Status::fromErrno(r, "watch for the connection to systemd dropping");
  }
  disconnectedSlot_.reset(slot);
  for (auto& [unit, watch] : watches_) {
    if (core::Status s = matchWatch(*watch); !s) {
      disconnect();
      return s;
    }
  }

  BusError error;
  r = sd_bus_call_method(bus_.get(), kDestination, kManagerPath, kManagerInterface, "Subscribe",
                         error.get(), nullptr, "");
  if (r < 0) {
    core::Status status = busStatus("subscribe to systemd's signals", r, error.get());
    disconnect();
    return status;
  }
  ++connections_;
  const char* address = nullptr;
  if (sd_bus_get_address(bus_.get(), &address) >= 0 && address != nullptr) {
    connectedAddress_ = address;
  }
  // What the watched units did while the connection was down: reported once
  // the reads are back, if it differs from what their callbacks last heard.
  for (auto& [unit, watch] : watches_) {
    readAsync(*watch, /*unitInterface=*/true);
    readAsync(*watch, /*unitInterface=*/false);
  }
  return core::Status::ok();
}

core::Status BusSystemdManager::ensureConnected() {
  if (bus_ && sd_bus_is_open(bus_.get()) > 0) return core::Status::ok();
  core::Status connected = connectBus();
  if (connected) {
    reconnectTimer_->cancel();
    reconnectDelay_ = {};
  } else {
    scheduleReconnect();
  }
  return connected;
}

void BusSystemdManager::scheduleReconnect() {
  // Without watches, the next call reconnects soon enough.
  if (watches_.empty() || reconnectTimer_->armed()) return;
  reconnectDelay_ = reconnectDelay_ == core::Duration{}
                        ? kFirstReconnectDelay
                        : std::min(2 * reconnectDelay_, core::Duration(kMaxReconnectDelay));
  reconnectTimer_->armIn(reconnectDelay_);
}

int BusSystemdManager::onDisconnected(sd_bus_message*, void* userdata, sd_bus_error*) {
  auto& self = *static_cast<BusSystemdManager*>(userdata);
  // Not here, inside the dispatch of the connection that is to be replaced.
  self.reconnectPending_ = true;
  sd_event_source_set_enabled(self.deferred_.get(), SD_EVENT_ONESHOT);
  return 0;
}

void BusSystemdManager::failSoon(Job& job, core::Status failure) {
  job.failure = std::move(failure);
  job.pendingCall.reset();
  if (!job.path.empty()) {
    jobsByPath_.erase(job.path);
    job.path.clear();
  }
  failing_.push_back(job.id);
  sd_event_source_set_enabled(deferred_.get(), SD_EVENT_ONESHOT);
}

void BusSystemdManager::onDeferred() {
  if (reconnectPending_) {
    reconnectPending_ = false;
    // Failing, it leaves the error to the next call, and to the reconnect
    // timer while units are watched.
    (void)ensureConnected();
  }
  if (failing_.empty()) return;
  const uint64_t id = failing_.front();
  failing_.erase(failing_.begin());
  // One job per run, since its callback may destroy this manager.
  if (!failing_.empty()) sd_event_source_set_enabled(deferred_.get(), SD_EVENT_ONESHOT);
  auto it = jobs_.find(id);
  if (it == jobs_.end()) return;  // its timeout came first
  core::Status failure = it->second->failure;
  finishJob(id, std::move(failure));
}

core::Result<MessagePtr> BusSystemdManager::call(const std::string& what, const char* path,
                                                 const char* interface, const char* member,
                                                 const std::function<int(sd_bus_message*)>& append,
                                                 core::Duration timeout) {
  for (int attempt = 0;; ++attempt) {
    if (core::Status s = ensureConnected(); !s) return s.withContext(what);
    sd_bus_message* raw = nullptr;
    int r = sd_bus_message_new_method_call(bus_.get(), &raw, kDestination, path, interface, member);
    if (r < 0) return core::Status::fromErrno(r, what);
    MessagePtr message(raw);
    if (append) {
      r = append(message.get());
      if (r < 0) return core::Status::fromErrno(r, what);
    }
    BusError error;
    sd_bus_message* reply = nullptr;
    r = sd_bus_call(bus_.get(), message.get(), toUsec(timeout), error.get(), &reply);
    if (r >= 0) return MessagePtr(reply);
    // The peer went away under us (systemd re-executed): once more, on a new connection.
    if (attempt == 0 && sd_bus_is_open(bus_.get()) <= 0) continue;
    return busStatus(what, r, error.get());
  }
}

core::Result<UnitStatus> BusSystemdManager::unitStatus(const std::string& unit) {
  const std::string what = "status " + unit;
  const std::string path = unitObjectPath(unit);
  if (path.empty()) return core::Status::invalidArgument(what + ": cannot encode the unit name");
  auto reply = call(
      what, path.c_str(), kPropertiesInterface, "GetAll",
      [](sd_bus_message* m) { return sd_bus_message_append_basic(m, 's', kUnitInterface); },
      kCallTimeout);
  if (!reply) return reply.status();
  UnitStatus status;
  if (int r = readUnitProperties(reply->get(), status); r < 0) {
    return core::Status::fromErrno(r, what + ": read reply");
  }
  return status;
}

core::Status BusSystemdManager::daemonReload() {
  auto reply =
      call("daemon-reload", kManagerPath, kManagerInterface, "Reload", nullptr, kReloadTimeout);
  return reply.status();
}

core::Status BusSystemdManager::enableUnitFiles(const std::vector<std::string>& units) {
  auto reply = call(
      joined("enable", units), kManagerPath, kManagerInterface, "EnableUnitFiles",
      [&units](sd_bus_message* m) {
        int r = appendStrings(m, units);
        if (r >= 0) r = sd_bus_message_append(m, "bb", /*runtime=*/0, /*force=*/1);
        return r;
      },
      kCallTimeout);
  return reply.status();
}

core::Status BusSystemdManager::disableUnitFiles(const std::vector<std::string>& units) {
  auto reply = call(
      joined("disable", units), kManagerPath, kManagerInterface, "DisableUnitFiles",
      [&units](sd_bus_message* m) {
        int r = appendStrings(m, units);
        if (r >= 0) r = sd_bus_message_append(m, "b", /*runtime=*/0);
        return r;
      },
      kCallTimeout);
  return reply.status();
}

core::Status BusSystemdManager::resetFailed(const std::string& unit) {
  auto reply = call(
      "reset-failed " + unit, kManagerPath, kManagerInterface, "ResetFailedUnit",
      [&unit](sd_bus_message* m) { return sd_bus_message_append_basic(m, 's', unit.c_str()); },
      kCallTimeout);
  // systemd unloads inactive units nobody references, and those are not failed.
  if (reply.status().code() == core::Status::Code::kNotFound) return core::Status::ok();
  return reply.status();
}

void BusSystemdManager::runJob(JobKind kind, const std::string& unit, JobCallback done) {
  const std::string what = jobName(kind, unit);
  // Before the job is added: reconnecting fails the jobs in flight.
  const core::Status connected = ensureConnected();
  const uint64_t id = nextJobId_++;
  auto owned = std::make_unique<Job>();
  Job& job = *owned;
  job.manager = this;
  job.id = id;
  job.kind = kind;
  job.unit = unit;
  job.done = std::move(done);
  job.timer = clock_.createTimer(
      [this, id, kind, unit] { finishJob(id, jobTimeoutStatus(kind, unit, jobTimeout_)); });
  jobs_.emplace(id, std::move(owned));

  if (!connected) return failSoon(job, connected.withContext(what));
  sd_bus_message* raw = nullptr;
  int r = sd_bus_message_new_method_call(bus_.get(), &raw, kDestination, kManagerPath,
                                         kManagerInterface, jobMethod(kind));
  if (r < 0) return failSoon(job, core::Status::fromErrno(r, what));
  MessagePtr message(raw);
  r = sd_bus_message_append(message.get(), "ss", unit.c_str(), "replace");
  if (r < 0) return failSoon(job, core::Status::fromErrno(r, what));
  sd_bus_slot* slot = nullptr;
  r = sd_bus_call_async(bus_.get(), &slot, message.get(), &BusSystemdManager::onJobQueued, &job,
                        toUsec(kCallTimeout));
  if (r < 0) return failSoon(job, core::Status::fromErrno(r, what));
  job.pendingCall.reset(slot);
  job.timer->armIn(jobTimeout_);
}

int BusSystemdManager::onJobQueued(sd_bus_message* reply, void* userdata, sd_bus_error*) {
  Job& job = *static_cast<Job*>(userdata);
  BusSystemdManager& self = *job.manager;
  const std::string what = jobName(job.kind, job.unit);
  if (sd_bus_message_is_method_error(reply, nullptr)) {
    // sd-bus fails the calls in flight when the connection drops. Delivered
    // later: the callback could replace the connection that is dispatching.
    if (sd_bus_is_open(sd_bus_message_get_bus(reply)) <= 0) {
      self.failSoon(job, connectionLostStatus(job.kind, job.unit));
      return 0;
    }
    self.finishJob(job.id, busReplyStatus(what, reply));
    return 0;
  }
  const char* path = nullptr;
  if (int r = sd_bus_message_read_basic(reply, SD_BUS_TYPE_OBJECT_PATH, &path); r < 0) {
    self.finishJob(job.id, core::Status::fromErrno(r, what + ": read reply"));
    return 0;
  }
  // Replies and signals are dispatched in the order systemd sent them, and it
  // sends the reply before the job can be removed: the path is known in time.
  job.path = path;
  self.jobsByPath_[job.path] = job.id;
  return 0;
}

int BusSystemdManager::onJobRemoved(sd_bus_message* signal, void* userdata, sd_bus_error*) {
  auto& self = *static_cast<BusSystemdManager*>(userdata);
  uint32_t jobNumber = 0;
  const char *path = nullptr, *unit = nullptr, *result = nullptr;
  if (sd_bus_message_read(signal, "uoss", &jobNumber, &path, &unit, &result) < 0) return 0;
  auto byPath = self.jobsByPath_.find(path);
  if (byPath == self.jobsByPath_.end()) return 0;  // someone else's job, or one that timed out
  const uint64_t id = byPath->second;
  self.jobsByPath_.erase(byPath);
  Job& job = *self.jobs_.at(id);

  const char* interface = resultInterface(job.unit);
  if (std::string_view(result) != "failed" || interface == nullptr) {
    self.finishJob(id, jobResultStatus(job.kind, job.unit, result));
    return 0;
  }
  // Why it failed is the unit's Result property: one more call, asynchronous
  // like the rest of the job.
  const std::string unitPath = unitObjectPath(job.unit);
  sd_bus_slot* slot = nullptr;
  int r = sd_bus_call_method_async(self.bus_.get(), &slot, kDestination, unitPath.c_str(),
                                   kPropertiesInterface, "Get", &BusSystemdManager::onUnitResult,
                                   &job, "ss", interface, "Result");
  if (r < 0) {
    self.finishJob(id, jobResultStatus(job.kind, job.unit, result));
    return 0;
  }
  job.pendingCall.reset(slot);
  return 0;
}

int BusSystemdManager::onUnitResult(sd_bus_message* reply, void* userdata, sd_bus_error*) {
  Job& job = *static_cast<Job*>(userdata);
  const char* unitResult = nullptr;
  if (sd_bus_message_is_method_error(reply, nullptr) ||
      sd_bus_message_read(reply, "v", "s", &unitResult) < 0) {
    unitResult = nullptr;
  }
  job.manager->finishJob(job.id, jobResultStatus(job.kind, job.unit, "failed",
                                                 unitResult != nullptr ? unitResult : ""));
  return 0;
}

void BusSystemdManager::finishJob(uint64_t id, core::Status result) {
  auto node = jobs_.extract(id);
  if (node.empty()) return;
  std::unique_ptr<Job> job = std::move(node.mapped());
  if (!job->path.empty()) jobsByPath_.erase(job->path);
  JobCallback done = std::move(job->done);
  // Release the slots and the timer before the callback, which may queue the
  // next job or destroy this manager.
  job.reset();
  done(std::move(result));
}

core::Result<UnitActivity> BusSystemdManager::watchUnit(const std::string& unit,
                                                        UnitActivityCallback changed) {
  const std::string what = "watch " + unit;
  const std::string path = unitObjectPath(unit);
  if (path.empty()) return core::Status::invalidArgument(what + ": cannot encode the unit name");
  // The errors name the unit already.
  auto fail = [this, &unit](const core::Status& status) {
    watches_.erase(unit);
    return core::Result<UnitActivity>(status);
  };
  std::unique_ptr<Watch>& owned = watches_[unit];
  if (!owned) {
    owned = std::make_unique<Watch>();
    owned->manager = this;
    owned->unit = unit;
    owned->path = path;
    owned->typeInterface = resultInterface(unit);
  }
  // Kept in the map from here on: a reconnect inside a call renews its match.
  Watch& watch = *owned;
  if (core::Status s = ensureConnected(); !s) return fail(s.withContext(what));
  if (!watch.match) {
    if (core::Status s = matchWatch(watch); !s) return fail(s);
  }
  std::string id;
  core::Result<UnitActivity> activity = readWatch(watch, id);
  if (!activity) return fail(activity.status());
  // systemd signals an alias's changes on the object path of the unit's Id.
  if (!id.empty() && unitObjectPath(id) != watch.path) {
    watch.path = unitObjectPath(id);
    watch.match.reset();
    if (core::Status s = matchWatch(watch); !s) return fail(s);
    activity = readWatch(watch, id);
    if (!activity) return fail(activity.status());
  }
  // Reads in flight were sent earlier and answer with older values.
  watch.unitRead.reset();
  watch.typeRead.reset();
  watch.changed = std::move(changed);
  watch.current = *activity;
  watch.reported = *activity;
  return activity;
}

void BusSystemdManager::unwatchUnit(const std::string& unit) { watches_.erase(unit); }

// The match outlives the unit: systemd unloads an inactive unit nobody
// references, and signals on the same path once it loads it again. Its first
// change after loading goes out as UnitNew rather than PropertiesChanged, but
// that change is only the job that made someone load it being queued: the job
// runs in a later iteration, and what it does arrives as PropertiesChanged.
// (Reading the unit on UnitNew would loop, as the read loads it again.)
core::Status BusSystemdManager::matchWatch(Watch& watch) {
  sd_bus_slot* slot = nullptr;
  int r = sd_bus_match_signal(bus_.get(), &slot, direct_ ? nullptr : kDestination,
                              watch.path.c_str(), kPropertiesInterface, "PropertiesChanged",
                              &BusSystemdManager::onPropertiesChanged, &watch);
  if (r < 0) {
    return core::Status::fromErrno(r,
                                   "watch " + watch.unit + ": match its PropertiesChanged signals");
  }
  watch.match.reset(slot);
  return core::Status::ok();
}

core::Result<UnitActivity> BusSystemdManager::readWatch(Watch& watch, std::string& id) {
  const std::string what = "watch " + watch.unit;
  for (int attempt = 0;; ++attempt) {
    const uint64_t connection = connections_;
    UnitActivity activity;
    id.clear();
    auto unitReply = call(
        what, watch.path.c_str(), kPropertiesInterface, "GetAll",
        [](sd_bus_message* m) { return sd_bus_message_append_basic(m, 's', kUnitInterface); },
        kCallTimeout);
    if (!unitReply) return unitReply.status();
    if (int r = readActivityProperties(unitReply->get(), activity, &id); r < 0) {
      return core::Status::fromErrno(r, what + ": read reply");
    }
    SentBefore typeReadAt;
    if (watch.typeInterface != nullptr) {
      auto typeReply = call(
          what, watch.path.c_str(), kPropertiesInterface, "GetAll",
          [&watch](sd_bus_message* m) {
            return sd_bus_message_append_basic(m, 's', watch.typeInterface);
          },
          kCallTimeout);
      if (!typeReply) return typeReply.status();
      if (int r = readActivityProperties(typeReply->get(), activity, nullptr); r < 0) {
        return core::Status::fromErrno(r, what + ": read reply");
      }
      typeReadAt = sentBefore(typeReply->get());
    }
    // The two replies must come from one connection for their marks to hold.
    if (connection != connections_ && attempt == 0) continue;
    watch.unitReadAt = sentBefore(unitReply->get());
    watch.typeReadAt = typeReadAt;
    return activity;
  }
}

void BusSystemdManager::readAsync(Watch& watch, bool unitInterface) {
  const char* interface = unitInterface ? kUnitInterface : watch.typeInterface;
  SlotPtr& pending = unitInterface ? watch.unitRead : watch.typeRead;
  if (interface == nullptr || pending || !bus_) return;
  sd_bus_slot* slot = nullptr;
  int r = sd_bus_call_method_async(
      bus_.get(), &slot, kDestination, watch.path.c_str(), kPropertiesInterface, "GetAll",
      unitInterface ? &BusSystemdManager::onUnitRead : &BusSystemdManager::onTypeRead, &watch, "s",
      interface);
  // Failing, the connection is going down, and reconnecting reads again.
  if (r >= 0) pending.reset(slot);
}

int BusSystemdManager::onUnitRead(sd_bus_message* reply, void* userdata, sd_bus_error*) {
  auto& watch = *static_cast<Watch*>(userdata);
  watch.manager->onRead(reply, watch, /*unitInterface=*/true);
  return 0;
}

int BusSystemdManager::onTypeRead(sd_bus_message* reply, void* userdata, sd_bus_error*) {
  auto& watch = *static_cast<Watch*>(userdata);
  watch.manager->onRead(reply, watch, /*unitInterface=*/false);
  return 0;
}

void BusSystemdManager::onRead(sd_bus_message* reply, Watch& watch, bool unitInterface) {
  (unitInterface ? watch.unitRead : watch.typeRead).reset();
  if (sd_bus_message_is_method_error(reply, nullptr)) {
    // Failed with the connection: reconnecting reads again.
    if (sd_bus_is_open(sd_bus_message_get_bus(reply)) <= 0) return;
    // Otherwise what the signals said stands.
  } else {
    (void)readActivityProperties(reply, watch.current, nullptr);
  }
  report(watch);
}

int BusSystemdManager::onPropertiesChanged(sd_bus_message* signal, void* userdata, sd_bus_error*) {
  auto& watch = *static_cast<Watch*>(userdata);
  const char* interface = nullptr;
  if (sd_bus_message_read_basic(signal, SD_BUS_TYPE_STRING, &interface) < 0) return 0;
  const bool unitInterface = std::string_view(interface) == kUnitInterface;
  if (!unitInterface &&
      (watch.typeInterface == nullptr || std::string_view(interface) != watch.typeInterface)) {
    return 0;
  }
  if (sentEarlier(signal, unitInterface ? watch.unitReadAt : watch.typeReadAt)) return 0;
  bool reread = readActivityProperties(signal, watch.current, nullptr) < 0;
  if (!reread && readInvalidated(signal, reread) < 0) reread = true;
  if (reread) watch.manager->readAsync(watch, unitInterface);
  // For each change systemd sends the type's properties first, then the
  // Unit's: the pair is reported as one change, at the second.
  if (unitInterface) watch.manager->report(watch);
  return 0;
}

int BusSystemdManager::onSystemdOwner(sd_bus_message* signal, void* userdata, sd_bus_error*) {
  auto& self = *static_cast<BusSystemdManager*>(userdata);
  const char *name = nullptr, *oldOwner = nullptr, *newOwner = nullptr;
  if (sd_bus_message_read(signal, "sss", &name, &oldOwner, &newOwner) < 0) return 0;
  if (std::string_view(newOwner).empty()) return 0;
  // systemd keeps its subscribers across a re-exec; subscribing again is
  // harmless if it did (it answers "already subscribed"), and needed if not.
  (void)sd_bus_call_method_async(self.bus_.get(), nullptr, kDestination, kManagerPath,
                                 kManagerInterface, "Subscribe", nullptr, nullptr, "");
  for (auto& [unit, watch] : self.watches_) {
    self.readAsync(*watch, /*unitInterface=*/true);
    self.readAsync(*watch, /*unitInterface=*/false);
  }
  return 0;
}

void BusSystemdManager::report(Watch& watch) {
  if (watch.unitRead || watch.typeRead || watch.current == watch.reported) return;
  watch.reported = watch.current;
  if (!watch.changed) return;
  // Copies: the callback may unwatch the unit, which destroys the watch.
  UnitActivityCallback changed = watch.changed;
  const std::string unit = watch.unit;
  const UnitActivity activity = watch.current;
  changed(unit, activity);
}

}  // namespace nodewarden::systemd
