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

#include "agent/core/loop.h"
#include "agent/core/simulated_clock.h"
#include "agent/systemd/bus_handles.h"

namespace nodewarden::systemd {
namespace {

using namespace std::chrono_literals;
using ::testing::ElementsAre;
using Code = core::Status::Code;

constexpr const char* kManagerInterface = "org.freedesktop.systemd1.Manager";

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

    listener_.reset(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    socketPath_.copy(address.sun_path, sizeof(address.sun_path) - 1);
    EXPECT_EQ(::bind(listener_.get(), reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
    EXPECT_EQ(::listen(listener_.get(), 8), 0);
    auto accepting = loop_->addIo(listener_.get(), EPOLLIN, [this](uint32_t) { accept(); });
    assert(accepting.isOk());
    accepting_ = std::move(*accepting);
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
      calls_.push_back(member + " " + sd_bus_message_get_path(m));
      return replyUnitProperties(m);
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

  static int replyUnitProperties(sd_bus_message* m) {
    sd_bus_message* raw = nullptr;
    sd_bus_message_new_method_return(m, &raw);
    MessagePtr reply(raw);
    sd_bus_message_open_container(raw, 'a', "{sv}");
    // Properties the manager does not read come in between, of other types.
    sd_bus_message_append(raw, "{sv}", "Id", "s", "kubelet.service");
    sd_bus_message_append(raw, "{sv}", "Names", "as", 2, "kubelet.service", "k.service");
    sd_bus_message_append(raw, "{sv}", "LoadState", "s", "loaded");
    sd_bus_message_append(raw, "{sv}", "ActiveState", "s", "active");
    sd_bus_message_append(raw, "{sv}", "SubState", "s", "running");
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
  EXPECT_THAT(peer_.calls(),
              ElementsAre("Subscribe", "GetAll /org/freedesktop/systemd1/unit/kubelet_2eservice"));
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
