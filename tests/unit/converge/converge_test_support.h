#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <gtest/gtest.h>

#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "agent/converge/executor.h"
#include "agent/converge/plan.h"
#include "agent/converge/planner.h"
#include "agent/core/simulated_clock.h"
#include "nodewarden/v1/state.pb.h"
#include "tests/fakes/fake_systemd_manager.h"

namespace nodewarden::converge::test {

// The lowercase hex SHA-256 of `data`, as states write artifacts' digests.
std::string sha256Hex(std::string_view data);

// The fake as systemd would see a test's root: a unit file that appears in or
// disappears from <root>/etc/systemd/system reaches the fake, which (like
// systemd) loads or drops the unit at its next daemon-reload. Units whose file
// never was under the root (vendor units set with setUnit()) are left as set.
class RootedSystemd final : public systemd::SystemdManager {
 public:
  RootedSystemd(systemd::FakeSystemdManager& fake, std::string unitDirectory);

  // Runs as each job is queued, before the fake records it.
  void onJob(std::function<void(const std::string& unit)> hook) { onJob_ = std::move(hook); }

  core::Result<systemd::UnitStatus> unitStatus(const std::string& unit) override;
  core::Status daemonReload() override;
  core::Status enableUnitFiles(const std::vector<std::string>& units) override;
  core::Status disableUnitFiles(const std::vector<std::string>& units) override;
  core::Status resetFailed(const std::string& unit) override;
  void runJob(systemd::JobKind kind, const std::string& unit, systemd::JobCallback done) override;
  core::Result<systemd::UnitActivity> watchUnit(const std::string& unit,
                                                systemd::UnitActivityCallback changed) override {
    return fake_.watchUnit(unit, std::move(changed));
  }
  void unwatchUnit(const std::string& unit) override { fake_.unwatchUnit(unit); }

 private:
  void noticeUnitFile(const std::string& unit);
  void noticeUnitFiles();

  systemd::FakeSystemdManager& fake_;
  const std::string unitDirectory_;
  std::map<std::string, bool> fileSeen_;  // unit → its file was under the root when last looked
  std::function<void(const std::string&)> onJob_;
};

// A node whose root is a fresh temporary directory, a fake systemd and a
// simulated clock, with the planner and executor the agent would build on them.
class ConvergeTest : public ::testing::Test {
 protected:
  ConvergeTest();
  ~ConvergeTest() override;

  // The state in `body` (YAML after apiVersion and kind), which must load.
  static v1::NodeState load(std::string_view body);
  // The plan for the state in `body`, which must plan.
  Plan plan(std::string_view body);
  // The same, by a planner that reaches `providers` (a fake process runner, ...).
  Plan plan(std::string_view body, const Providers& providers);
  // Applies `plan`, completing its jobs, and returns the report.
  Report apply(Plan plan);
  // plan() then apply().
  Report converge(std::string_view body);

  // Where `nodePath` ("/etc/x") is in the test's root.
  std::string hostPath(const std::string& nodePath) const { return root_ + nodePath; }
  std::string read(const std::string& nodePath) const;
  void write(const std::string& nodePath, std::string_view content, mode_t mode = 0644) const;
  void makeDirectory(const std::string& nodePath) const;
  bool exists(const std::string& nodePath) const;
  struct stat statOf(const std::string& nodePath) const;
  mode_t modeOf(const std::string& nodePath) const { return statOf(nodePath).st_mode & 07777; }
  // Every path under the root with its inode, mode, mtime and ctime: equal
  // snapshots mean nothing was written, replaced, created or removed.
  std::map<std::string, std::string> snapshot() const;

  // Sets one field of a unit's state in the fake, as if systemd changed it.
  void setActiveState(const std::string& unit, const std::string& activeState);

  const std::string root_;
  systemd::FakeSystemdManager fake_;
  RootedSystemd systemd_;
  core::SimulatedClock clock_;
  Planner planner_;
  Executor executor_;
};

// `text` as a double-quoted YAML scalar, for states built from test data.
std::string yamlQuoted(std::string_view text);

// "create file /etc/x": each change's action and resource, in plan order.
std::vector<std::string> actions(const std::vector<Change>& changes);
// The change with `action` on `resource`; fails the test when there is none.
const Change& findChange(const std::vector<Change>& changes, const std::string& action,
                         const std::string& resource);

}  // namespace nodewarden::converge::test
