#include "agent/systemd/bus_systemd_manager.h"

#include <unistd.h>

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
    : loop_(loop), clock_(clock), jobTimeout_(jobTimeout), requestedAddress_(std::move(address)) {}

BusSystemdManager::~BusSystemdManager() {
  deferred_.reset();
  // The jobs' slots and the matches go before the connection they reference.
  jobs_.clear();
  jobRemovedSlot_.reset();
  disconnectedSlot_.reset();
}

core::Status BusSystemdManager::connectBus() {
  // systemd reports the end of a job on the connection that queued it only.
  for (auto& [id, job] : jobs_) {
    if (job->failure.isOk()) failSoon(*job, connectionLostStatus(job->kind, job->unit));
  }
  jobRemovedSlot_.reset();
  disconnectedSlot_.reset();
  bus_.reset();
  connectedAddress_.clear();

  sd_bus* raw = nullptr;
  int r = 0;
  bool direct = false;
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
      direct = true;
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
    bus_.reset();
    return core::Status::fromErrno(r, "attach bus connection to the event loop");
  }

  // The match and the subscription come before any job is queued, so no
  // JobRemoved can slip by. Messages on a direct connection carry no sender.
  sd_bus_slot* slot = nullptr;
  r = sd_bus_match_signal(bus_.get(), &slot, direct ? nullptr : kDestination, kManagerPath,
                          kManagerInterface, "JobRemoved", &BusSystemdManager::onJobRemoved, this);
  if (r < 0) {
    bus_.reset();
    return core::Status::fromErrno(r, "watch systemd's JobRemoved signal");
  }
  jobRemovedSlot_.reset(slot);
  // Reconnects as soon as the connection drops, rather than at the next call.
  r = sd_bus_match_signal(bus_.get(), &slot, nullptr, kLocalPath, kLocalInterface, "Disconnected",
                          &BusSystemdManager::onDisconnected, this);
  if (r < 0) {
    jobRemovedSlot_.reset();
    bus_.reset();
    return core::Status::fromErrno(r, "watch for the connection to systemd dropping");
  }
  disconnectedSlot_.reset(slot);

  BusError error;
  r = sd_bus_call_method(bus_.get(), kDestination, kManagerPath, kManagerInterface, "Subscribe",
                         error.get(), nullptr, "");
  if (r < 0) {
    core::Status status = busStatus("subscribe to systemd's signals", r, error.get());
    jobRemovedSlot_.reset();
    disconnectedSlot_.reset();
    bus_.reset();
    return status;
  }
  const char* address = nullptr;
  if (sd_bus_get_address(bus_.get(), &address) >= 0 && address != nullptr) {
    connectedAddress_ = address;
  }
  return core::Status::ok();
}

core::Status BusSystemdManager::ensureConnected() {
  if (bus_ && sd_bus_is_open(bus_.get()) > 0) return core::Status::ok();
  return connectBus();
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
    // Failing, it leaves the error to the next call, which tries again.
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
                                                        UnitActivityCallback) {
  return core::Status::internal("watch " + unit + ": not implemented yet");
}

void BusSystemdManager::unwatchUnit(const std::string&) {}

}  // namespace nodewarden::systemd
