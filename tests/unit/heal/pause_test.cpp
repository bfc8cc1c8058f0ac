#include "agent/heal/pause.h"

#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "agent/core/atomic_file.h"
#include "agent/core/simulated_clock.h"
#include "agent/heal/health.h"

namespace nodewarden::heal {
namespace {

using namespace std::chrono_literals;

class PauseStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string templ = std::filesystem::temp_directory_path() / "nodewarden-pause-XXXXXX";
    if (::mkdtemp(templ.data()) == nullptr) {
      FAIL() << "mkdtemp " << templ << ": " << std::strerror(errno);
    }
    dir_ = templ;
    path_ = dir_ + "/pause.json";
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  nlohmann::json fileJson() const {
    auto text = core::readFile(path_, 1 << 20);
    EXPECT_TRUE(text.isOk()) << text.status().message();
    return text ? nlohmann::json::parse(*text) : nlohmann::json();
  }

  core::SimulatedClock clock_;
  std::string dir_;
  std::string path_;
};

TEST_F(PauseStoreTest, NothingIsPausedAtFirst) {
  PauseStore store(clock_, path_);
  ASSERT_TRUE(store.load().isOk());
  EXPECT_FALSE(store.nodePaused());
  EXPECT_FALSE(store.paused("kubelet.service"));
  EXPECT_EQ(store.toJson(), nlohmann::json::parse(R"({"node": null, "units": {}})"));
}

TEST_F(PauseStoreTest, ANodePauseCoversEveryUnitUntilResumed) {
  PauseStore store(clock_, path_);
  int changes = 0;
  store.addListener([&] { ++changes; });
  ASSERT_TRUE(store.pause(std::nullopt, "kernel upgrade", std::nullopt).isOk());
  EXPECT_TRUE(store.nodePaused());
  EXPECT_TRUE(store.paused("kubelet.service"));
  EXPECT_TRUE(store.paused("containerd.service"));
  EXPECT_EQ(changes, 1);
  ASSERT_TRUE(store.node().has_value());
  EXPECT_EQ(store.node()->reason, "kernel upgrade");
  EXPECT_EQ(store.node()->since, clock_.wallNow());
  EXPECT_FALSE(store.node()->until.has_value());

  clock_.advance(48h);  // no end: still paused
  EXPECT_TRUE(store.nodePaused());

  auto resumed = store.resume(std::nullopt);
  ASSERT_TRUE(resumed.isOk());
  EXPECT_TRUE(*resumed);
  EXPECT_FALSE(store.paused("kubelet.service"));
  EXPECT_EQ(changes, 2);

  auto again = store.resume(std::nullopt);
  ASSERT_TRUE(again.isOk());
  EXPECT_FALSE(*again);
  EXPECT_EQ(changes, 2);  // nothing changed, nobody told
}

TEST_F(PauseStoreTest, AUnitPauseCoversOnlyThatUnit) {
  PauseStore store(clock_, path_);
  ASSERT_TRUE(store.pause("kubelet.service", "debugging cgroups", std::nullopt).isOk());
  EXPECT_TRUE(store.paused("kubelet.service"));
  EXPECT_FALSE(store.paused("containerd.service"));
  EXPECT_FALSE(store.nodePaused());

  // Resuming the node leaves the unit's own pause in place.
  auto node = store.resume(std::nullopt);
  ASSERT_TRUE(node.isOk());
  EXPECT_FALSE(*node);
  EXPECT_TRUE(store.paused("kubelet.service"));

  auto unit = store.resume("kubelet.service");
  ASSERT_TRUE(unit.isOk());
  EXPECT_TRUE(*unit);
  EXPECT_FALSE(store.paused("kubelet.service"));
}

TEST_F(PauseStoreTest, PausingAgainChangesReasonAndEndButKeepsTheStart) {
  PauseStore store(clock_, path_);
  const core::WallTime start = clock_.wallNow();
  ASSERT_TRUE(store.pause("kubelet.service", "first", 10min).isOk());
  clock_.advance(5min);
  ASSERT_TRUE(store.pause("kubelet.service", "second", 30min).isOk());
  const Pause& pause = store.units().at("kubelet.service");
  EXPECT_EQ(pause.reason, "second");
  EXPECT_EQ(pause.since, start);
  EXPECT_EQ(pause.until, clock_.wallNow() + 30min);
  clock_.advance(10min);  // the first end has passed; the second holds
  EXPECT_TRUE(store.paused("kubelet.service"));
}

TEST_F(PauseStoreTest, APauseWithADurationEndsOnItsOwnAndListenersHear) {
  PauseStore store(clock_, path_);
  int changes = 0;
  store.addListener([&] { ++changes; });
  ASSERT_TRUE(store.pause(std::nullopt, "maintenance", 30min).isOk());
  ASSERT_TRUE(store.pause("containerd.service", "swap runtime", 10min).isOk());
  EXPECT_EQ(changes, 2);
  EXPECT_EQ(store.node()->until, clock_.wallNow() + 30min);

  clock_.advance(10min - 1s);
  EXPECT_TRUE(store.paused("containerd.service"));
  clock_.advance(1s);
  EXPECT_EQ(changes, 3);
  EXPECT_TRUE(store.nodePaused());
  EXPECT_TRUE(store.units().empty());
  EXPECT_TRUE(fileJson()["units"].empty()) << fileJson();

  clock_.advance(20min);
  EXPECT_EQ(changes, 4);
  EXPECT_FALSE(store.nodePaused());
  EXPECT_TRUE(fileJson()["node"].is_null()) << fileJson();
  EXPECT_EQ(clock_.armedTimers(), 0u);
}

TEST_F(PauseStoreTest, PausesArePersistedAndReadBackAfterARestart) {
  const core::WallTime start = clock_.wallNow();
  {
    PauseStore store(clock_, path_);
    ASSERT_TRUE(store.pause(std::nullopt, "kernel upgrade", 2h).isOk());
    ASSERT_TRUE(store.pause("kubelet.service", "debugging cgroups", std::nullopt).isOk());
  }
  struct stat st {};
  ASSERT_EQ(::stat(path_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  const nlohmann::json file = fileJson();
  EXPECT_EQ(file["node"]["reason"], "kernel upgrade");
  EXPECT_EQ(file["node"]["since"], formatTime(start));
  EXPECT_EQ(file["node"]["until"], formatTime(start + 2h));
  EXPECT_TRUE(file["units"]["kubelet.service"]["until"].is_null());

  PauseStore reloaded(clock_, path_);
  ASSERT_TRUE(reloaded.load().isOk());
  ASSERT_TRUE(reloaded.node().has_value());
  EXPECT_EQ(*reloaded.node(),
            (Pause{.reason = "kernel upgrade", .since = start, .until = start + 2h}));
  ASSERT_EQ(reloaded.units().size(), 1u);
  EXPECT_EQ(reloaded.units().at("kubelet.service"),
            (Pause{.reason = "debugging cgroups", .since = start}));
  EXPECT_EQ(reloaded.toJson(), file);
}

TEST_F(PauseStoreTest, APauseReadBackEndsAtItsOriginalTime) {
  {
    PauseStore store(clock_, path_);
    ASSERT_TRUE(store.pause(std::nullopt, "maintenance", 30min).isOk());
  }
  clock_.advance(20min);  // the agent was down for a while
  PauseStore reloaded(clock_, path_);
  int changes = 0;
  reloaded.addListener([&] { ++changes; });
  ASSERT_TRUE(reloaded.load().isOk());
  EXPECT_TRUE(reloaded.nodePaused());
  EXPECT_EQ(changes, 0);
  clock_.advance(10min - 1s);
  EXPECT_TRUE(reloaded.nodePaused());
  clock_.advance(1s);
  EXPECT_FALSE(reloaded.nodePaused());
  EXPECT_EQ(changes, 1);
}

TEST_F(PauseStoreTest, APauseThatEndedWhileTheAgentWasDownIsDropped) {
  {
    PauseStore store(clock_, path_);
    ASSERT_TRUE(store.pause(std::nullopt, "maintenance", 30min).isOk());
    ASSERT_TRUE(store.pause("kubelet.service", "short", 5min).isOk());
    ASSERT_TRUE(store.pause("containerd.service", "long", std::nullopt).isOk());
  }
  clock_.advance(1h);
  PauseStore reloaded(clock_, path_);
  ASSERT_TRUE(reloaded.load().isOk());
  EXPECT_FALSE(reloaded.nodePaused());
  EXPECT_FALSE(reloaded.paused("kubelet.service"));
  EXPECT_TRUE(reloaded.paused("containerd.service"));
}

TEST_F(PauseStoreTest, AFileThatIsNotJsonIsAnErrorAndPausesNothing) {
  ASSERT_TRUE(core::writeFileAtomic(path_, "{ not json", {.mode = 0600}).isOk());
  PauseStore store(clock_, path_);
  core::Status s = store.load();
  EXPECT_FALSE(s.isOk());
  EXPECT_NE(s.message().find(path_), std::string::npos) << s.message();
  EXPECT_FALSE(store.nodePaused());
}

TEST_F(PauseStoreTest, AnUnreadableEndKeepsThePauseOpenEnded) {
  ASSERT_TRUE(core::writeFileAtomic(path_,
                                    R"({"node": {"reason": "by hand", "since": "yesterday",
                                                 "until": "soon"},
                                        "units": {"kubelet.service": {"since": "x"},
                                                  "no unit": {"reason": "r"}}})",
                                    {.mode = 0600})
                  .isOk());
  PauseStore store(clock_, path_);
  ASSERT_TRUE(store.load().isOk());
  ASSERT_TRUE(store.nodePaused());
  EXPECT_EQ(store.node()->reason, "by hand");
  EXPECT_FALSE(store.node()->until.has_value());
  EXPECT_TRUE(store.units().empty());  // no reason, or not a unit name
}

TEST_F(PauseStoreTest, RefusesABadReasonUnitOrDurationAndChangesNothing) {
  PauseStore store(clock_, path_);
  int changes = 0;
  store.addListener([&] { ++changes; });
  auto refused = [&](const std::optional<std::string>& unit, const std::string& reason,
                     std::optional<core::Duration> duration) {
    core::Status s = store.pause(unit, reason, duration);
    EXPECT_EQ(s.code(), core::Status::Code::kInvalidArgument) << reason;
    return s.message();
  };
  EXPECT_EQ(refused(std::nullopt, "", std::nullopt), "a pause needs a reason (--reason TEXT)");
  refused(std::nullopt, "   ", std::nullopt);
  EXPECT_NE(refused(std::nullopt, std::string(PauseStore::kMaxReasonBytes + 1, 'x'), std::nullopt)
                .find("longer than 1024 bytes"),
            std::string::npos);
  refused(std::nullopt, "two\nlines", std::nullopt);
  EXPECT_NE(refused(std::string("kubelet"), "r", std::nullopt).find("is not a unit name"),
            std::string::npos);
  refused(std::string("../etc.service"), "r", std::nullopt);
  refused(std::string(""), "r", std::nullopt);
  refused(std::nullopt, "r", 0s);
  refused(std::nullopt, "r", -5min);
  refused(std::nullopt, "r", PauseStore::kMaxDuration + 1s);
  EXPECT_TRUE(store
                  .pause(std::nullopt, std::string(PauseStore::kMaxReasonBytes, 'x'),
                         PauseStore::kMaxDuration)
                  .isOk());

  EXPECT_EQ(changes, 1);
}

TEST_F(PauseStoreTest, APauseThatCannotBeSavedDoesNotTakeEffect) {
  PauseStore store(clock_, dir_ + "/missing/pause.json");
  int changes = 0;
  store.addListener([&] { ++changes; });
  core::Status s = store.pause(std::nullopt, "maintenance", std::nullopt);
  EXPECT_FALSE(s.isOk());
  EXPECT_NE(s.message().find("save the pauses"), std::string::npos) << s.message();
  EXPECT_FALSE(store.nodePaused());
  EXPECT_EQ(changes, 0);
}

TEST_F(PauseStoreTest, AStoreWithoutAPathKeepsPausesInMemory) {
  PauseStore store(clock_, "");
  ASSERT_TRUE(store.load().isOk());
  ASSERT_TRUE(store.pause("kubelet.service", "r", 1min).isOk());
  EXPECT_TRUE(store.paused("kubelet.service"));
  EXPECT_FALSE(std::filesystem::exists(path_));
  clock_.advance(1min);
  EXPECT_FALSE(store.paused("kubelet.service"));
}

}  // namespace
}  // namespace nodewarden::heal
