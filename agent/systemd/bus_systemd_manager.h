#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "agent/core/clock.h"
#include "agent/core/loop.h"
#include "agent/core/status.h"
#include "agent/systemd/bus_handles.h"
#include "agent/systemd/systemd_manager.h"

namespace nodewarden::systemd {

// SystemdManager over sd-bus, attached to the agent's loop. Connects as
// systemctl does as root: systemd's private socket, which works while
// dbus-daemon is down, else the system bus. When the connection drops (systemd
// re-executed), the manager reconnects from the loop, or at the next call if
// that fails, and fails the jobs in flight at once: systemd's word on how they
// end went with the connection.
//
// Watched units are followed through PropertiesChanged signals on their object
// paths. systemd sends a pair for each change, the type's properties then the
// Unit's, and the callback hears of the change at the second. After a
// reconnect the matches are renewed and the activity read again; while units
// are watched, a failed reconnect is retried on the clock.
//
// Use it from the loop thread only. Synchronous calls, and reconnecting, block
// the loop for at most 25 s (60 s for a daemon-reload). Destroying the manager
// drops the jobs in flight without calling their callbacks.
class BusSystemdManager final : public SystemdManager {
 public:
  // `jobTimeout` bounds each runJob(), from the call to systemd's JobRemoved.
  static core::Result<std::unique_ptr<BusSystemdManager>> connect(core::Loop& loop,
                                                                  core::Clock& clock,
                                                                  core::Duration jobTimeout);
  // The same, to the systemd whose private socket is at `address` (a D-Bus
  // address: "unix:path=/run/systemd/private"), with no fallback.
  static core::Result<std::unique_ptr<BusSystemdManager>> connectTo(core::Loop& loop,
                                                                    core::Clock& clock,
                                                                    core::Duration jobTimeout,
                                                                    std::string address);
  ~BusSystemdManager() override;

  // The D-Bus address of the connection: systemd's private socket, or the
  // system bus's when the manager fell back to it. Empty after a failed reconnect.
  const std::string& address() const { return connectedAddress_; }

  BusSystemdManager(const BusSystemdManager&) = delete;
  BusSystemdManager& operator=(const BusSystemdManager&) = delete;

  core::Result<UnitStatus> unitStatus(const std::string& unit) override;
  core::Status daemonReload() override;
  core::Status enableUnitFiles(const std::vector<std::string>& units) override;
  core::Status disableUnitFiles(const std::vector<std::string>& units) override;
  core::Status resetFailed(const std::string& unit) override;
  void runJob(JobKind kind, const std::string& unit, JobCallback done) override;
  // Two synchronous reads (the Unit properties and the type's). When it fails,
  // the unit is not watched, even if it was before.
  core::Result<UnitActivity> watchUnit(const std::string& unit,
                                       UnitActivityCallback changed) override;
  void unwatchUnit(const std::string& unit) override;

 private:
  struct Job;
  struct Watch;
  BusSystemdManager(core::Loop& loop, core::Clock& clock, core::Duration jobTimeout,
                    std::string address);

  core::Status ensureConnected();
  core::Status connectBus();
  // Ends the job with `failure` from the loop, outside the caller's callback.
  void failSoon(Job& job, core::Status failure);
  // The deferred work: reconnecting after a disconnect, and failing jobs.
  void onDeferred();
  // While units are watched, tries to reconnect again later, backing off.
  void scheduleReconnect();
  // A synchronous method call on the manager object or `path`; reconnects and
  // retries once when the connection turns out to have dropped.
  core::Result<MessagePtr> call(const std::string& what, const char* path, const char* interface,
                                const char* member,
                                const std::function<int(sd_bus_message*)>& append,
                                core::Duration timeout);

  static int onJobQueued(sd_bus_message* reply, void* userdata, sd_bus_error* error);
  static int onJobRemoved(sd_bus_message* signal, void* userdata, sd_bus_error* error);
  static int onUnitResult(sd_bus_message* reply, void* userdata, sd_bus_error* error);
  static int onDisconnected(sd_bus_message* signal, void* userdata, sd_bus_error* error);
  void finishJob(uint64_t id, core::Status result);

  // Adds the PropertiesChanged match of the watch's object path.
  core::Status matchWatch(Watch& watch);
  // Reads the watch's Unit properties and its type's ones synchronously;
  // messages queued before the replies are then known to be older.
  core::Result<UnitActivity> readWatch(Watch& watch, std::string& id);
  // Reads one interface's properties asynchronously, unless a read of it is
  // already on its way: its reply comes after every message received so far.
  void readAsync(Watch& watch, bool unitInterface);
  // Calls the watch's callback if its activity changed and no read is pending.
  // The callback may destroy the watch or this manager: nothing may follow it.
  void report(Watch& watch);
  static int onPropertiesChanged(sd_bus_message* signal, void* userdata, sd_bus_error* error);
  static int onUnitRead(sd_bus_message* reply, void* userdata, sd_bus_error* error);
  static int onTypeRead(sd_bus_message* reply, void* userdata, sd_bus_error* error);
  static int onSystemdOwner(sd_bus_message* signal, void* userdata, sd_bus_error* error);
  void onRead(sd_bus_message* reply, Watch& watch, bool unitInterface);

  core::Loop& loop_;
  core::Clock& clock_;
  const core::Duration jobTimeout_;
  const std::string requestedAddress_;  // "": the private socket, else the system bus
  std::string connectedAddress_;
  // Declared before the slots, so that they are released first and the
  // connection really closes.
  BusPtr bus_;
  bool direct_ = false;  // connected to systemd itself, not through a bus daemon
  SlotPtr jobRemovedSlot_;
  SlotPtr ownerSlot_;  // on the system bus: systemd taking its name again after re-executing
  SlotPtr disconnectedSlot_;
  core::EventSource deferred_;
  bool reconnectPending_ = false;
  std::unique_ptr<core::Timer> reconnectTimer_;
  core::Duration reconnectDelay_{};
  uint64_t connections_ = 0;       // connections made so far
  std::vector<uint64_t> failing_;  // jobs that onDeferred() ends with their failure
  uint64_t nextJobId_ = 1;
  std::unordered_map<uint64_t, std::unique_ptr<Job>> jobs_;
  std::unordered_map<std::string, uint64_t> jobsByPath_;  // queued in systemd, by job object path
  std::unordered_map<std::string, std::unique_ptr<Watch>> watches_;  // by the name watched
};

}  // namespace nodewarden::systemd
