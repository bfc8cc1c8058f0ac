#include "agent/systemd/bus_systemd_manager.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <systemd/sd-id128.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <future>
#include <map>
#include <mutex>
#include <optional>
#include <thread>
#include <variant>

#include "agent/core/loop.h"
#include "agent/core/simulated_clock.h"
#include "agent/systemd/bus_handles.h"

namespace nodewarden::systemd {
namespace {

using namespace std::chrono_literals;
using ::testing::ElementsAre;
using Code = core::Status::Code;

constexpr const char* kManagerInterface = "org.freedesktop.systemd1.Manager";
constexpr const char* kUnitInterface = "org.freedesktop.systemd1.Unit";
constexpr const char* kServiceInterface = "org.freedesktop.systemd1.Service";

std::string unitPath(const std::string& unit) {
  char* path = nullptr;
  sd_bus_path_encode("/org/freedesktop/systemd1/unit", unit.c_str(), &path);
  std::string result(path);
  std::free(path);
  return result;
}

// A property in a PropertiesChanged signal: "Job" takes the job number.
using Property = std::pair<std::string, std::variant<std::string, uint32_t>>;

// Appends one {sv} entry.
int appendProperty(sd_bus_message* m, const Property& property) {
  const auto& [name, value] = property;
  if (name == "Job") {
    const uint32_t job = std::get<uint32_t>(value);
    const std::string path =
        job == 0 ? "/" : "/org/freedesktop/systemd1/job/" + std::to_string(job);
    return sd_bus_message_append(m, "{sv}", name.c_str(), "(uo)", job, path.c_str());
  }
  if (const auto* text = std::get_if<std::string>(&value)) {
    return sd_bus_message_append(m, "{sv}", name.c_str(), "s", text->c_str());
  }
  return sd_bus_message_append(m, "{sv}", name.c_str(), "u", std::get<uint32_t>(value));
}

int appendProperties(sd_bus_message* m, const std::vector<Property>& properties) {
  int r = sd_bus_message_open_container(m, 'a', "{sv}");
  for (size_t i = 0; r >= 0 && i < properties.size(); ++i) r = appendProperty(m, properties[i]);
  if (r >= 0) r = sd_bus_message_close_container(m);
  return r;
}

// A stand-in for systemd at the other end of a private socket, on its own
// thread and loop: it answers the manager's calls as the test scripts it and
// records them ("StartUnit a.service", ...).
class SystemdPeer {
 public:
  SystemdPeer() {
    char dirTemplate[] = "/tmp/nodewarden-peer-XXXXXX";
    dir_ = ::mkdtemp(dirTemplate);
    socketPath_ = dir_ + "/private";
    auto loop = core::Loop::create();
    assert(loop.isOk());
    loop_ = std::move(loop).value();
    listen();
    thread_ = std::thread([this] { loop_->run(); });
  }

  ~SystemdPeer() {
    onPeer([this] {
      connections_.clear();
      accepting_.reset();
      loop_->exit(0);
    });
    thread_.join();
    std::filesystem::remove_all(dir_);
  }

  std::string address() const { return "unix:path=" + socketPath_; }

  // Jobs for `unit` end with `result` right after StartUnit & co. reply; jobs
  // for other units stay queued until removeJob().
  void finishJobsWith(const std::string& unit, const std::string& result) {
    std::lock_guard lock(mutex_);
    results_[unit] = result;
  }
  // Jobs for `unit` are refused, as systemd refuses units it cannot find.
  void refuse(const std::string& unit) {
    std::lock_guard lock(mutex_);
    refused_.insert(unit);
  }
  // Sends JobRemoved for job `number`, as systemd does when it finishes.
  void removeJob(uint32_t number, const std::string& unit, const std::string& result) {
    onPeer([&] {
      const std::string path = jobPath(number);
      for (auto& connection : connections_) {
        sd_bus_emit_signal(connection.bus.get(), "/org/freedesktop/systemd1", kManagerInterface,
                           "JobRemoved", "uoss", number, path.c_str(), unit.c_str(),
                           result.c_str());
      }
    });
  }
  // Closes every connection, as systemd does when it re-executes.
  void dropConnections() {
    onPeer([this] { connections_.clear(); });
  }
  // Stops and resumes listening: no systemd at the address meanwhile.
  void stopListening() {
    onPeer([this] {
      accepting_.reset();
      listener_.reset();
      ::unlink(socketPath_.c_str());
    });
  }
  void resumeListening() {
    onPeer([this] { listen(); });
  }

  // What the unit reports from now on. Unknown units are active and running,
  // with a fixed set of properties.
  struct Unit {
    std::string id;  // "": the unit's own name; otherwise it is an alias of `id`
    std::string activeState = "active";
    std::string subState = "running";
    uint32_t job = 0;
    std::string result = "success";
    uint32_t mainPid = 0;
    uint32_t restarts = 0;
  };
  void setUnit(const std::string& unit, Unit state) {
    std::lock_guard lock(mutex_);
    units_[unitPath(unit)] = std::move(state);
  }
  // Sends PropertiesChanged for the unit, as systemd does when it changes.
  void emitChanged(const std::string& unit, const std::string& interface,
                   const std::vector<Property>& changed,
                   const std::vector<std::string>& invalidated = {}) {
    onPeer([&] {
      for (auto& connection : connections_) {
        sendChanged(connection.bus.get(), unit, interface, changed, invalidated);
      }
    });
  }
  // The same, sent right before the reply to the next GetAll of the Unit
  // interface: older than what that reply says.
  void emitChangedBeforeNextRead(const std::string& unit, const std::vector<Property>& changed) {
    std::lock_guard lock(mutex_);
    beforeNextRead_ = {unit, changed};
  }

  std::vector<std::string> calls() const {
    std::lock_guard lock(mutex_);
    return calls_;
  }
  int accepted() const {
    std::lock_guard lock(mutex_);
    return accepted_;
  }
  uint32_t lastJob() const {
    std::lock_guard lock(mutex_);
    return nextJob_ - 1;
  }

 private:
  struct Connection {
    BusPtr bus;
    SlotPtr objects;
  };

  static std::string jobPath(uint32_t number) {
    return "/org/freedesktop/systemd1/job/" + std::to_string(number);
  }

  void listen() {
    listener_.reset(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    socketPath_.copy(address.sun_path, sizeof(address.sun_path) - 1);
    EXPECT_EQ(::bind(listener_.get(), reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
    EXPECT_EQ(::listen(listener_.get(), 8), 0);
    auto accepting = loop_->addIo(listener_.get(), EPOLLIN, [this](uint32_t) { accept(); });
    assert(accepting.isOk());
    accepting_ = std::move(*accepting);
  }

  static void sendChanged(sd_bus* bus, const std::string& unit, const std::string& interface,
                          const std::vector<Property>& changed,
                          const std::vector<std::string>& invalidated) {
    sd_bus_message* raw = nullptr;
    sd_bus_message_new_signal(bus, &raw, unitPath(unit).c_str(), "org.freedesktop.DBus.Properties",
                              "PropertiesChanged");
    MessagePtr signal(raw);
    sd_bus_message_append(raw, "s", interface.c_str());
    appendProperties(raw, changed);
    sd_bus_message_open_container(raw, 'a', "s");
    for (const std::string& name : invalidated) sd_bus_message_append(raw, "s", name.c_str());
    sd_bus_message_close_container(raw);
    sd_bus_send(bus, raw, nullptr);
  }

  // Runs `work` on the peer's thread and waits for it.
  void onPeer(const std::function<void()>& work) {
    std::promise<void> done;
    loop_->post([&] {
      work();
      done.set_value();
    });
    done.get_future().wait();
  }

  void accept() {
    int fd = ::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0) return;
    sd_bus* raw = nullptr;
    sd_bus_new(&raw);
    Connection connection{BusPtr(raw), nullptr};
    sd_id128_t id;
    sd_id128_randomize(&id);
    sd_bus_set_fd(raw, fd, fd);
    sd_bus_set_server(raw, 1, id);
    sd_bus_slot* slot = nullptr;
    sd_bus_add_fallback(raw, &slot, "/org/freedesktop/systemd1", &SystemdPeer::onCall, this);
    connection.objects.reset(slot);
    sd_bus_start(raw);
    sd_bus_attach_event(raw, loop_->event(), 0);
    connections_.push_back(std::move(connection));
    std::lock_guard lock(mutex_);
    ++accepted_;
  }

  static int onCall(sd_bus_message* m, void* userdata, sd_bus_error* error) {
    return static_cast<SystemdPeer*>(userdata)->answer(m, error);
  }

  int answer(sd_bus_message* m, sd_bus_error* error) {
    const std::string member = sd_bus_message_get_member(m);
    std::unique_lock lock(mutex_);
    if (member == "Subscribe" || member == "Reload") {
      calls_.push_back(member);
      return sd_bus_reply_method_return(m, "");
    }
    if (member == "StartUnit" || member == "StopUnit" || member == "RestartUnit") {
      const char *unit = nullptr, *mode = nullptr;
      sd_bus_message_read(m, "ss", &unit, &mode);
      calls_.push_back(member + " " + unit + " " + mode);
      if (refused_.contains(unit)) {
        return sd_bus_error_setf(error, "org.freedesktop.systemd1.NoSuchUnit", "Unit %s not found.",
                                 unit);
      }
      const uint32_t number = nextJob_++;
      const std::string path = jobPath(number);
      auto result = results_.find(unit);
      const std::optional<std::string> finish =
          result == results_.end() ? std::nullopt : std::optional(result->second);
      lock.unlock();
      int r = sd_bus_reply_method_return(m, "o", path.c_str());
      if (finish) {
        sd_bus_emit_signal(sd_bus_message_get_bus(m), "/org/freedesktop/systemd1",
                           kManagerInterface, "JobRemoved", "uoss", number, path.c_str(), unit,
                           finish->c_str());
      }
      return r;
    }
    if (member == "EnableUnitFiles" || member == "DisableUnitFiles") {
      std::string call = member;
      char** units = nullptr;
      sd_bus_message_read_strv(m, &units);
      for (char** unit = units; unit && *unit; ++unit) call += std::string(" ") + *unit;
      if (units) {
        for (char** unit = units; *unit; ++unit) std::free(*unit);
        std::free(units);
      }
      int runtime = -1, force = -1;
      if (member == "EnableUnitFiles") {
        sd_bus_message_read(m, "bb", &runtime, &force);
        call += " runtime=" + std::to_string(runtime) + " force=" + std::to_string(force);
        calls_.push_back(call);
        return sd_bus_reply_method_return(m, "ba(sss)", 1, 0);
      }
      sd_bus_message_read(m, "b", &runtime);
      calls_.push_back(call + " runtime=" + std::to_string(runtime));
      return sd_bus_reply_method_return(m, "a(sss)", 0);
    }
    if (member == "ResetFailedUnit") {
      const char* unit = nullptr;
      sd_bus_message_read(m, "s", &unit);
      calls_.push_back(member + " " + unit);
      return sd_bus_error_setf(error, "org.freedesktop.systemd1.NoSuchUnit", "Unit %s not loaded.",
                               unit);
    }
    if (member == "GetAll") {
      const char* interface = nullptr;
      sd_bus_message_read(m, "s", &interface);
      const std::string path = sd_bus_message_get_path(m);
      calls_.push_back(member + " " + path + " " + interface);
      if (interface == std::string(kServiceInterface)) return replyServiceProperties(m, path);
      if (beforeNextRead_) {
        sendChanged(sd_bus_message_get_bus(m), beforeNextRead_->first, kUnitInterface,
                    beforeNextRead_->second, {});
        beforeNextRead_.reset();
      }
      return replyUnitProperties(m, path);
    }
    if (member == "Get") {
      const char *interface = nullptr, *property = nullptr;
      sd_bus_message_read(m, "ss", &interface, &property);
      calls_.push_back(member + " " + sd_bus_message_get_path(m) + " " + interface + " " +
                       property);
      return sd_bus_reply_method_return(m, "v", "s", "exit-code");
    }
    return 0;
  }

  // The unit's state as setUnit() set it; the mutex is held.
  Unit unitAt(const std::string& path) const {
    auto it = units_.find(path);
    Unit unit = it == units_.end() ? Unit{} : it->second;
    if (unit.id.empty()) {
      char* name = nullptr;
      sd_bus_path_decode(path.c_str(), "/org/freedesktop/systemd1/unit", &name);
      unit.id = name != nullptr ? name : "";
      std::free(name);
    }
    return unit;
  }

  int replyServiceProperties(sd_bus_message* m, const std::string& path) const {
    const Unit unit = unitAt(path);
    sd_bus_message* raw = nullptr;
    sd_bus_message_new_method_return(m, &raw);
    MessagePtr reply(raw);
    sd_bus_message_open_container(raw, 'a', "{sv}");
    sd_bus_message_append(raw, "{sv}", "Type", "s", "simple");
    sd_bus_message_append(raw, "{sv}", "Restart", "s", "no");
    sd_bus_message_append(raw, "{sv}", "MainPID", "u", unit.mainPid);
    sd_bus_message_append(raw, "{sv}", "ExecMainStartTimestamp", "t", uint64_t{7});
    sd_bus_message_append(raw, "{sv}", "Result", "s", unit.result.c_str());
    sd_bus_message_append(raw, "{sv}", "NRestarts", "u", unit.restarts);
    sd_bus_message_close_container(raw);
    return sd_bus_send(nullptr, raw, nullptr);
  }

  int replyUnitProperties(sd_bus_message* m, const std::string& path) const {
    const Unit unit = unitAt(path);
    sd_bus_message* raw = nullptr;
    sd_bus_message_new_method_return(m, &raw);
    MessagePtr reply(raw);
    sd_bus_message_open_container(raw, 'a', "{sv}");
    // Properties the manager does not read come in between, of other types.
    sd_bus_message_append(raw, "{sv}", "Id", "s", unit.id.c_str());
    sd_bus_message_append(raw, "{sv}", "Names", "as", 2, "kubelet.service", "k.service");
    sd_bus_message_append(raw, "{sv}", "LoadState", "s", "loaded");
    sd_bus_message_append(raw, "{sv}", "ActiveState", "s", unit.activeState.c_str());
    sd_bus_message_append(raw, "{sv}", "SubState", "s", unit.subState.c_str());
    appendProperty(raw, {"Job", unit.job});
    sd_bus_message_append(raw, "{sv}", "StateChangeTimestamp", "t", uint64_t{42});
    sd_bus_message_append(raw, "{sv}", "UnitFileState", "s", "enabled");
    sd_bus_message_append(raw, "{sv}", "FragmentPath", "s", "/etc/systemd/system/kubelet.service");
    sd_bus_message_append(raw, "{sv}", "DropInPaths", "as", 2, "/run/a.conf", "/etc/b.conf");
    sd_bus_message_append(raw, "{sv}", "NeedDaemonReload", "b", 1);
    sd_bus_message_close_container(raw);
    return sd_bus_send(nullptr, raw, nullptr);
  }

  std::string dir_;
  std::string socketPath_;
  std::unique_ptr<core::Loop> loop_;
  core::UniqueFd listener_;
  core::EventSource accepting_;
  std::vector<Connection> connections_;
  std::thread thread_;

  mutable std::mutex mutex_;
  std::map<std::string, std::string> results_;
  std::set<std::string> refused_;
  std::map<std::string, Unit> units_;  // by object path
  std::optional<std::pair<std::string, std::vector<Property>>> beforeNextRead_;
  std::vector<std::string> calls_;
  uint32_t nextJob_ = 1;
  int accepted_ = 0;
};

class BusSystemdManagerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto loop = core::Loop::create();
    ASSERT_TRUE(loop.isOk());
    loop_ = std::move(loop).value();
    realTime_ = std::make_unique<core::LoopClock>(*loop_);
    auto manager = BusSystemdManager::connectTo(*loop_, clock_, kJobTimeout, peer_.address());
    ASSERT_TRUE(manager.isOk()) << manager.status().message();
    manager_ = std::move(manager).value();
  }

  // Runs the loop until `done`, or gives up after 10 s of real time.
  void runUntil(const std::function<bool()>& done) {
    bool gaveUp = false;
    auto guard = realTime_->createTimer([&gaveUp] { gaveUp = true; });
    guard->armIn(10s);
    ASSERT_TRUE(loop_->runUntil([&] { return done() || gaveUp; }).isOk());
    ASSERT_FALSE(gaveUp) << "gave up waiting";
  }

  // Queues a job; the result lands in the returned slot once the loop runs.
  std::shared_ptr<std::vector<core::Status>> runJob(JobKind kind, const std::string& unit) {
    auto results = std::make_shared<std::vector<core::Status>>();
    manager_->runJob(kind, unit, [results](core::Status status) { results->push_back(status); });
    EXPECT_TRUE(results->empty()) << "the callback ran inside runJob()";
    return results;
  }

  core::Status runJobToEnd(JobKind kind, const std::string& unit) {
    auto results = runJob(kind, unit);
    runUntil([&] { return !results->empty(); });
    return results->empty() ? core::Status::internal("no result") : results->front();
  }

  // Watches `unit`, recording what its callback hears; checks that the
  // callback never runs inside watchUnit().
  std::shared_ptr<std::vector<UnitActivity>> watch(const std::string& unit,
                                                   UnitActivity* now = nullptr) {
    auto heard = std::make_shared<std::vector<UnitActivity>>();
    auto activity = manager_->watchUnit(
        unit, [heard](const std::string&, const UnitActivity& a) { heard->push_back(a); });
    EXPECT_TRUE(activity.isOk()) << activity.status().message();
    EXPECT_TRUE(heard->empty()) << "the callback ran inside watchUnit()";
    if (now != nullptr && activity.isOk()) *now = *activity;
    return heard;
  }

  // Returns once the manager has handled every message the peer sent so far:
  // messages are dispatched in order, and a job's end comes after them.
  void settle() {
    peer_.finishJobsWith("settle.service", "done");
    EXPECT_TRUE(runJobToEnd(JobKind::kStart, "settle.service").isOk());
  }

  static constexpr core::Duration kJobTimeout = 30s;
  SystemdPeer peer_;
  std::unique_ptr<core::Loop> loop_;
  std::unique_ptr<core::LoopClock> realTime_;
  core::SimulatedClock clock_;
  std::unique_ptr<BusSystemdManager> manager_;
};

TEST_F(BusSystemdManagerTest, SubscribesOnConnecting) {
  EXPECT_THAT(peer_.calls(), ElementsAre("Subscribe"));
  EXPECT_EQ(manager_->address(), peer_.address());
}

TEST_F(BusSystemdManagerTest, ReadsTheUnitsStatusInOneCall) {
  auto status = manager_->unitStatus("kubelet.service");
  ASSERT_TRUE(status.isOk()) << status.status().message();
  EXPECT_EQ(*status, (UnitStatus{.loadState = "loaded",
                                 .activeState = "active",
                                 .subState = "running",
                                 .unitFileState = "enabled",
                                 .needDaemonReload = true,
                                 .fragmentPath = "/etc/systemd/system/kubelet.service",
                                 .dropInPaths = {"/run/a.conf", "/etc/b.conf"}}));
  EXPECT_THAT(peer_.calls(), ElementsAre("Subscribe",
                                         "GetAll /org/freedesktop/systemd1/unit/kubelet_2eservice "
                                         "org.freedesktop.systemd1.Unit"));
}

TEST_F(BusSystemdManagerTest, UnitFileCallsCarryTheirArguments) {
  ASSERT_TRUE(manager_->daemonReload().isOk());
  ASSERT_TRUE(manager_->enableUnitFiles({"a.service", "b.socket"}).isOk());
  ASSERT_TRUE(manager_->disableUnitFiles({"c.service"}).isOk());
  // A unit systemd has not loaded is not failed.
  ASSERT_TRUE(manager_->resetFailed("d.service").isOk());
  EXPECT_THAT(
      peer_.calls(),
      ElementsAre("Subscribe", "Reload", "EnableUnitFiles a.service b.socket runtime=0 force=1",
                  "DisableUnitFiles c.service runtime=0", "ResetFailedUnit d.service"));
}

TEST_F(BusSystemdManagerTest, AJobThatSystemdReportsDoneIsOk) {
  peer_.finishJobsWith("a.service", "done");
  EXPECT_TRUE(runJobToEnd(JobKind::kStart, "a.service").isOk());
  EXPECT_TRUE(runJobToEnd(JobKind::kRestart, "a.service").isOk());
  EXPECT_TRUE(runJobToEnd(JobKind::kStop, "a.service").isOk());
  EXPECT_THAT(peer_.calls(),
              ElementsAre("Subscribe", "StartUnit a.service replace",
                          "RestartUnit a.service replace", "StopUnit a.service replace"));
}

TEST_F(BusSystemdManagerTest, AFailedJobSaysWhyTheUnitFailed) {
  peer_.finishJobsWith("a.service", "failed");
  core::Status result = runJobToEnd(JobKind::kStart, "a.service");
  EXPECT_EQ(result.message(),
            "start a.service: job failed because the control process exited with error code "
            "(result: exit-code)");
  EXPECT_EQ(peer_.calls().back(),
            "Get /org/freedesktop/systemd1/unit/a_2eservice org.freedesktop.systemd1.Service "
            "Result");
}

TEST_F(BusSystemdManagerTest, ARefusedJobCarriesSystemdsError) {
  peer_.refuse("nope.service");
  core::Status result = runJobToEnd(JobKind::kStart, "nope.service");
  EXPECT_EQ(result.code(), Code::kNotFound);
  EXPECT_EQ(result.message(), "start nope.service: Unit nope.service not found.");
}

TEST_F(BusSystemdManagerTest, JobsAreMatchedByTheirPath) {
  auto first = runJob(JobKind::kStart, "a.service");
  auto second = runJob(JobKind::kStart, "b.service");
  runUntil([&] { return peer_.lastJob() == 2; });
  // Someone else's job, then ours out of order.
  peer_.removeJob(99, "a.service", "failed");
  peer_.removeJob(2, "b.service", "dependency");
  peer_.removeJob(1, "a.service", "done");
  runUntil([&] { return !first->empty() && !second->empty(); });
  ASSERT_EQ(first->size(), 1u);
  EXPECT_TRUE(first->front().isOk());
  ASSERT_EQ(second->size(), 1u);
  EXPECT_EQ(second->front().message(), "start b.service: a dependency of the unit failed");
}

TEST_F(BusSystemdManagerTest, AJobTimesOutOnTheClockAndItsLateResultIsIgnored) {
  auto slow = runJob(JobKind::kStart, "slow.service");
  runUntil([&] { return peer_.lastJob() == 1; });
  clock_.advance(kJobTimeout - 1ms);
  EXPECT_TRUE(slow->empty());
  clock_.advance(1ms);
  ASSERT_EQ(slow->size(), 1u);
  EXPECT_EQ(slow->front().code(), Code::kTimeout);
  EXPECT_EQ(slow->front().message(),
            "start slow.service: job did not finish within 30s; systemd keeps running it");

  peer_.removeJob(1, "slow.service", "done");
  peer_.finishJobsWith("next.service", "done");
  // Signals are dispatched in order: once the next job is done, the late
  // JobRemoved has been seen, and ignored.
  EXPECT_TRUE(runJobToEnd(JobKind::kStart, "next.service").isOk());
  EXPECT_EQ(slow->size(), 1u);
}

TEST_F(BusSystemdManagerTest, ReconnectsAndResubscribesAsSoonAsTheConnectionDrops) {
  peer_.dropConnections();
  runUntil([&] { return peer_.calls().size() == 2; });
  EXPECT_THAT(peer_.calls(), ElementsAre("Subscribe", "Subscribe"));
  EXPECT_EQ(peer_.accepted(), 2);
  EXPECT_EQ(manager_->address(), peer_.address());

  EXPECT_TRUE(manager_->unitStatus("kubelet.service").isOk());
  EXPECT_EQ(peer_.accepted(), 2);
  // JobRemoved is watched on the new connection.
  peer_.finishJobsWith("a.service", "done");
  EXPECT_TRUE(runJobToEnd(JobKind::kStart, "a.service").isOk());
}

TEST_F(BusSystemdManagerTest, AJobInFlightFailsAtOnceWhenTheConnectionDrops) {
  auto lost = runJob(JobKind::kStart, "slow.service");
  runUntil([&] { return peer_.lastJob() == 1; });
  peer_.dropConnections();
  // Without advancing the clock to the job timeout.
  runUntil([&] { return !lost->empty(); });
  ASSERT_EQ(lost->size(), 1u);
  EXPECT_EQ(lost->front().message(),
            "start slow.service: connection to systemd lost while waiting for the job");

  // A JobRemoved for it on the new connection changes nothing.
  runUntil([&] { return peer_.accepted() == 2; });
  peer_.removeJob(1, "slow.service", "done");
  peer_.finishJobsWith("next.service", "done");
  EXPECT_TRUE(runJobToEnd(JobKind::kStart, "next.service").isOk());
  EXPECT_EQ(lost->size(), 1u);
}

TEST_F(BusSystemdManagerTest, AJobInFlightFailsWhenACallReconnects) {
  auto lost = runJob(JobKind::kStart, "slow.service");
  runUntil([&] { return peer_.lastJob() == 1; });
  peer_.dropConnections();
  EXPECT_TRUE(manager_->unitStatus("kubelet.service").isOk());
  EXPECT_TRUE(lost->empty()) << "the job's callback ran inside unitStatus()";
  runUntil([&] { return !lost->empty(); });
  EXPECT_EQ(lost->front().message(),
            "start slow.service: connection to systemd lost while waiting for the job");
}

TEST_F(BusSystemdManagerTest, ReconnectsWhenACallFindsTheConnectionGone) {
  peer_.dropConnections();
  EXPECT_TRUE(manager_->unitStatus("kubelet.service").isOk());
  EXPECT_EQ(peer_.accepted(), 2);
}

TEST_F(BusSystemdManagerTest, ALostJobsCallbackMayDestroyTheManager) {
  int calls = 0;
  auto destroy = [&](core::Status) {
    ++calls;
    manager_.reset();
  };
  manager_->runJob(JobKind::kStart, "a.service", destroy);
  manager_->runJob(JobKind::kStart, "b.service", destroy);
  runUntil([&] { return peer_.lastJob() == 2; });
  peer_.dropConnections();
  runUntil([&] { return calls > 0; });
  // The other job goes with the manager, without its callback.
  bool later = false;
  loop_->post([&] { later = true; });
  runUntil([&] { return later; });
  EXPECT_EQ(calls, 1);
}

TEST_F(BusSystemdManagerTest, DestroyingTheManagerDropsItsJobsQuietly) {
  auto pending = runJob(JobKind::kStart, "a.service");
  runUntil([&] { return peer_.lastJob() == 1; });
  manager_.reset();
  clock_.advance(kJobTimeout);
  peer_.removeJob(1, "a.service", "done");
  EXPECT_TRUE(pending->empty());
}

const SystemdPeer::Unit kRunning{.mainPid = 42, .restarts = 1};
const UnitActivity kRunningActivity{.activeState = "active",
                                    .subState = "running",
                                    .result = "success",
                                    .mainPid = 42,
                                    .restarts = 1};

TEST_F(BusSystemdManagerTest, WatchingReadsTheUnitsAndTheServicesProperties) {
  peer_.setUnit("a.service", kRunning);
  UnitActivity now;
  auto heard = watch("a.service", &now);
  EXPECT_EQ(now, kRunningActivity);
  EXPECT_THAT(peer_.calls(), ElementsAre("Subscribe",
                                         "GetAll /org/freedesktop/systemd1/unit/a_2eservice "
                                         "org.freedesktop.systemd1.Unit",
                                         "GetAll /org/freedesktop/systemd1/unit/a_2eservice "
                                         "org.freedesktop.systemd1.Service"));

  peer_.setUnit("b.target", {.activeState = "inactive", .subState = "dead", .job = 3});
  UnitActivity target;
  watch("b.target", &target);
  EXPECT_EQ(target,
            (UnitActivity{.activeState = "inactive", .subState = "dead", .jobPending = true}));
  EXPECT_EQ(peer_.calls().back(),
            "GetAll /org/freedesktop/systemd1/unit/b_2etarget org.freedesktop.systemd1.Unit");
}

TEST_F(BusSystemdManagerTest, AChangeIsReportedOnceWithTheServicesAndTheUnitsProperties) {
  peer_.setUnit("a.service", kRunning);
  auto heard = watch("a.service");
  // As systemd sends a crash: the type's properties, then the Unit's.
  peer_.emitChanged("a.service", kServiceInterface,
                    {{"Result", std::string("signal")}, {"MainPID", 0u}, {"NRestarts", 1u}});
  peer_.emitChanged(
      "a.service", kUnitInterface,
      {{"ActiveState", std::string("failed")}, {"SubState", std::string("failed")}, {"Job", 0u}});
  settle();
  EXPECT_THAT(
      *heard,
      ElementsAre(UnitActivity{
          .activeState = "failed", .subState = "failed", .result = "signal", .restarts = 1}));
}

TEST_F(BusSystemdManagerTest, SignalsRepeatingTheActivityAreNotReported) {
  peer_.setUnit("a.service", kRunning);
  auto heard = watch("a.service");
  for (int i = 0; i < 3; ++i) {
    peer_.emitChanged("a.service", kServiceInterface,
                      {{"Result", std::string("success")}, {"MainPID", 42u}});
    peer_.emitChanged("a.service", kUnitInterface,
                      {{"ActiveState", std::string("active")}, {"Job", 0u}});
  }
  settle();
  EXPECT_TRUE(heard->empty());

  // A job queued for the unit, then done: two changes.
  peer_.emitChanged("a.service", kUnitInterface, {{"Job", 7u}});
  peer_.emitChanged("a.service", kUnitInterface, {{"Job", 7u}});
  peer_.emitChanged("a.service", kUnitInterface, {{"Job", 0u}});
  settle();
  ASSERT_EQ(heard->size(), 2u);
  EXPECT_TRUE((*heard)[0].jobPending);
  EXPECT_EQ((*heard)[1], kRunningActivity);
}

TEST_F(BusSystemdManagerTest, InvalidatedPropertiesAreReadAgain) {
  peer_.setUnit("a.service", kRunning);
  auto heard = watch("a.service");
  peer_.setUnit(
      "a.service",
      {.activeState = "activating", .subState = "auto-restart", .result = "signal", .restarts = 2});
  peer_.emitChanged("a.service", kServiceInterface, {{"Result", std::string("signal")}},
                    {"MainPID", "NRestarts"});
  peer_.emitChanged("a.service", kUnitInterface, {}, {"ActiveState", "SubState"});
  runUntil([&] { return !heard->empty(); });
  settle();
  // Reported once, when both reads are back.
  EXPECT_THAT(*heard, ElementsAre(UnitActivity{.activeState = "activating",
                                               .subState = "auto-restart",
                                               .result = "signal",
                                               .restarts = 2}));
  const std::vector<std::string> calls = peer_.calls();
  EXPECT_EQ(std::count(calls.begin(), calls.end(),
                       "GetAll /org/freedesktop/systemd1/unit/a_2eservice "
                       "org.freedesktop.systemd1.Service"),
            2);
}

TEST_F(BusSystemdManagerTest, SignalsOfOtherUnitsAndInterfacesAreIgnored) {
  peer_.setUnit("a.service", kRunning);
  auto heard = watch("a.service");
  peer_.emitChanged("b.service", kUnitInterface, {{"ActiveState", std::string("failed")}});
  peer_.emitChanged("a.service", "org.freedesktop.systemd1.Socket",
                    {{"Result", std::string("resources")}});
  peer_.emitChanged("a.service", kUnitInterface, {{"Job", 0u}});
  settle();
  EXPECT_TRUE(heard->empty());
}

TEST_F(BusSystemdManagerTest, SignalsSentBeforeTheReadAreOlderAndIgnored) {
  peer_.setUnit("a.service", kRunning);
  // Still starting, as systemd said just before it answered the read.
  peer_.emitChangedBeforeNextRead("a.service", {{"ActiveState", std::string("activating")},
                                                {"SubState", std::string("start")}});
  UnitActivity now;
  auto heard = watch("a.service", &now);
  EXPECT_EQ(now, kRunningActivity);
  settle();
  EXPECT_TRUE(heard->empty());
  // Later signals count.
  peer_.emitChanged("a.service", kUnitInterface, {{"ActiveState", std::string("deactivating")}});
  runUntil([&] { return !heard->empty(); });
  EXPECT_EQ(heard->front().activeState, "deactivating");
}

TEST_F(BusSystemdManagerTest, UnwatchingStopsTheReportsEvenFromInsideTheCallback) {
  peer_.setUnit("a.service", kRunning);
  peer_.setUnit("b.service", kRunning);
  int aCalls = 0;
  auto bHeard = std::make_shared<std::vector<UnitActivity>>();
  ASSERT_TRUE(manager_
                  ->watchUnit("a.service",
                              [&](const std::string& unit, const UnitActivity&) {
                                ++aCalls;
                                manager_->unwatchUnit(unit);
                                auto b = manager_->watchUnit(
                                    "b.service",
                                    [bHeard](const std::string&, const UnitActivity& a) {
                                      bHeard->push_back(a);
                                    });
                                EXPECT_TRUE(b.isOk());
                                manager_->runJob(JobKind::kRestart, unit, [](core::Status) {});
                              })
                  .isOk());
  peer_.emitChanged("a.service", kUnitInterface, {{"ActiveState", std::string("failed")}});
  runUntil([&] { return aCalls > 0; });
  peer_.emitChanged("a.service", kUnitInterface, {{"ActiveState", std::string("active")}});
  peer_.emitChanged("b.service", kUnitInterface, {{"ActiveState", std::string("failed")}});
  runUntil([&] { return !bHeard->empty(); });
  settle();
  EXPECT_EQ(aCalls, 1);
  EXPECT_EQ(bHeard->size(), 1u);
  EXPECT_THAT(peer_.calls(), ::testing::Contains("RestartUnit a.service replace"));
}

TEST_F(BusSystemdManagerTest, WatchingAgainReplacesTheCallback) {
  peer_.setUnit("a.service", kRunning);
  auto first = watch("a.service");
  auto second = watch("a.service");
  peer_.emitChanged("a.service", kUnitInterface, {{"ActiveState", std::string("failed")}});
  runUntil([&] { return !second->empty(); });
  EXPECT_TRUE(first->empty());
}

TEST_F(BusSystemdManagerTest, ACallbackMayDestroyTheManager) {
  peer_.setUnit("a.service", kRunning);
  peer_.setUnit("b.service", kRunning);
  int calls = 0;
  auto destroy = [&](const std::string&, const UnitActivity&) {
    ++calls;
    manager_.reset();
  };
  ASSERT_TRUE(manager_->watchUnit("a.service", destroy).isOk());
  ASSERT_TRUE(manager_->watchUnit("b.service", destroy).isOk());
  peer_.emitChanged("a.service", kUnitInterface, {{"ActiveState", std::string("failed")}});
  peer_.emitChanged("b.service", kUnitInterface, {{"ActiveState", std::string("failed")}});
  runUntil([&] { return calls > 0; });
  bool later = false;
  loop_->post([&] { later = true; });
  runUntil([&] { return later; });
  EXPECT_EQ(calls, 1);
}

TEST_F(BusSystemdManagerTest, AReconnectRenewsTheWatchAndReportsWhatChangedMeanwhile) {
  peer_.setUnit("a.service", kRunning);
  peer_.setUnit("b.service", kRunning);
  auto a = watch("a.service");
  auto b = watch("b.service");
  peer_.setUnit("a.service", {.activeState = "failed", .subState = "failed", .result = "signal"});
  peer_.dropConnections();
  runUntil([&] { return !a->empty(); });
  EXPECT_THAT(*a, ElementsAre(UnitActivity{
                      .activeState = "failed", .subState = "failed", .result = "signal"}));
  settle();
  EXPECT_TRUE(b->empty()) << "b did not change";
  EXPECT_EQ(peer_.accepted(), 2);

  peer_.emitChanged("b.service", kUnitInterface, {{"ActiveState", std::string("failed")}});
  runUntil([&] { return !b->empty(); });
}

TEST_F(BusSystemdManagerTest, AFailedReconnectIsRetriedWhileUnitsAreWatched) {
  peer_.setUnit("a.service", kRunning);
  auto heard = watch("a.service");
  peer_.stopListening();
  peer_.dropConnections();
  runUntil([&] { return manager_->address().empty(); });
  peer_.setUnit("a.service", {.activeState = "inactive", .subState = "dead"});
  peer_.resumeListening();
  clock_.advance(50ms);
  EXPECT_EQ(peer_.accepted(), 2);
  runUntil([&] { return !heard->empty(); });
  EXPECT_EQ(heard->front().activeState, "inactive");
}

TEST_F(BusSystemdManagerTest, AnAliasIsFollowedOnTheObjectPathOfTheUnitItNames) {
  SystemdPeer::Unit real = kRunning;
  real.id = "real.service";
  peer_.setUnit("alias.service", real);
  peer_.setUnit("real.service", real);
  auto heard = watch("alias.service");
  const std::vector<std::string> calls = peer_.calls();
  EXPECT_EQ(calls.back(),
            "GetAll /org/freedesktop/systemd1/unit/real_2eservice "
            "org.freedesktop.systemd1.Service");
  peer_.emitChanged("real.service", kUnitInterface, {{"ActiveState", std::string("failed")}});
  runUntil([&] { return !heard->empty(); });
  EXPECT_EQ(heard->front().activeState, "failed");
}

TEST(BusSystemdManagerConnectTest, ConnectingToNothingFailsClearly) {
  auto loop = core::Loop::create();
  ASSERT_TRUE(loop.isOk());
  core::SimulatedClock clock;
  auto manager = BusSystemdManager::connectTo(**loop, clock, 1s, "unix:path=/nonexistent/private");
  ASSERT_FALSE(manager.isOk());
  EXPECT_EQ(manager.status().code(), Code::kNotFound);
  EXPECT_EQ(manager.status().message(),
            "connect to systemd at unix:path=/nonexistent/private: No such file or directory");
}

}  // namespace
}  // namespace nodewarden::systemd
