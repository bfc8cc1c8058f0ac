// What a node is sent: its group's state, its own overrides merged on top,
// versioned so that the node and the operator can tell revisions apart; and
// that nothing invalid is ever stored or served.

#include "server/service/desired_states.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "agent/state/loader.h"
#include "tests/unit/server/service/service_test_support.h"

namespace nodewarden::server {
namespace {

using test::stateWithFiles;
using ::testing::AllOf;
using ::testing::ContainsRegex;
using ::testing::HasSubstr;

const Time kNow = Time(std::chrono::seconds(1'800'000'000));

using Files = std::vector<std::pair<std::string, std::string>>;

// The files a served document declares, as (path, content), in order.
Files filesOf(const v1::DesiredState& desired) {
  state::LoadResult loaded = state::loadString(desired.document(), "served");
  EXPECT_TRUE(loaded.ok()) << desired.document();
  Files files;
  if (!loaded.ok()) return files;
  for (const auto& file : loaded.state->files()) files.emplace_back(file.path(), file.content());
  return files;
}

class DesiredStatesTest : public test::ServiceTest {
 protected:
  void SetUp() override {
    ServiceTest::SetUp();
    states_ = std::make_unique<DesiredStates>(*store_);
  }

  int64_t set(const std::string& group, const std::string& node, const std::string& document) {
    auto revision = states_->set(group, node, document, "state.yaml", kNow);
    EXPECT_TRUE(revision.isOk()) << revision.status().message();
    return revision.isOk() ? *revision : -1;
  }

  size_t storedStates() {
    auto states = store_->states();
    EXPECT_TRUE(states.isOk());
    return states.isOk() ? states->size() : 0;
  }

  std::unique_ptr<DesiredStates> states_;
};

// The second file is declared as a file, so a file inside it cannot be.
const std::string kGroupState =
    stateWithFiles({{"/srv/app/app.conf", "group"}, {"/srv/app/other.conf", "other"}});
const std::string kNodeOverride = stateWithFiles({{"/srv/app/app.conf", "node"}});

TEST_F(DesiredStatesTest, AGroupsNodesGetEachRevisionOfItsState) {
  EXPECT_EQ(set("workers", "", kGroupState), 1);
  auto first = states_->forNode("node-1", "workers");
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(first->version(), "workers@1");

  EXPECT_EQ(set("workers", "", stateWithFiles({{"/srv/app/app.conf", "second"}})), 2);
  auto second = states_->forNode("node-1", "workers");
  ASSERT_TRUE(second.has_value());
  EXPECT_EQ(second->version(), "workers@2");
  EXPECT_EQ(filesOf(*second), (Files{{"/srv/app/app.conf", "second"}}));
}

TEST_F(DesiredStatesTest, NothingForANodeWhoseGroupAndItselfHaveNoState) {
  set("workers", "", kGroupState);
  EXPECT_FALSE(states_->forNode("node-1", "db").has_value());
}

TEST_F(DesiredStatesTest, ANodesOverrideReplacesTheGroupsFileOfTheSamePathInPlace) {
  enroll("node-1", "workers");
  set("workers", "", kGroupState);
  EXPECT_EQ(set("", "node-1", kNodeOverride), 1);

  auto merged = states_->forNode("node-1", "workers");
  ASSERT_TRUE(merged.has_value());
  EXPECT_EQ(merged->version(), "workers@1+node-1@1");
  EXPECT_EQ(filesOf(*merged),
            (Files{{"/srv/app/app.conf", "node"}, {"/srv/app/other.conf", "other"}}));

  // The override is the node's alone.
  auto other = states_->forNode("node-2", "workers");
  ASSERT_TRUE(other.has_value());
  EXPECT_EQ(other->version(), "workers@1");
  EXPECT_EQ(filesOf(*other),
            (Files{{"/srv/app/app.conf", "group"}, {"/srv/app/other.conf", "other"}}));
}

TEST_F(DesiredStatesTest, BothRevisionsShowInTheVersionAsEitherChanges) {
  enroll("node-1", "workers");
  set("workers", "", kGroupState);
  set("", "node-1", kNodeOverride);
  set("", "node-1", stateWithFiles({{"/srv/app/app.conf", "node again"}}));
  EXPECT_EQ(states_->forNode("node-1", "workers")->version(), "workers@1+node-1@2");
  set("workers", "", kGroupState);
  EXPECT_EQ(states_->forNode("node-1", "workers")->version(), "workers@2+node-1@2");
}

TEST_F(DesiredStatesTest, ANodeOverrideWithoutAGroupStateIsServedAlone) {
  // The node is not even enrolled yet: it gets its override once it is.
  EXPECT_EQ(set("", "node-1", kNodeOverride), 1);
  auto desired = states_->forNode("node-1", "workers");
  ASSERT_TRUE(desired.has_value());
  EXPECT_EQ(desired->version(), "node-1@1");
  EXPECT_EQ(filesOf(*desired), (Files{{"/srv/app/app.conf", "node"}}));
  EXPECT_FALSE(states_->forNode("node-2", "workers").has_value());
}

TEST_F(DesiredStatesTest, AnInvalidDocumentIsRefusedWithItsPositionsAndNothingChanges) {
  set("workers", "", kGroupState);
  const std::string invalid = std::string(test::kStateHeader) +
                              "files:\n"
                              "  - path: /srv/app/app.conf\n"
                              "    mode: \"0999\"\n"
                              "    content: \"x\"\n"
                              "  - pth: /srv/app/typo.conf\n";
  auto refused = states_->set("workers", "", invalid, "workers.yaml", kNow);
  ASSERT_FALSE(refused.isOk());
  EXPECT_EQ(refused.status().code(), core::Status::Code::kInvalidArgument);
  // Every problem, each where it is.
  EXPECT_THAT(refused.status().message(),
              AllOf(ContainsRegex("workers\\.yaml:5:[0-9]+: files\\[0\\]\\.mode"),
                    ContainsRegex("\nworkers\\.yaml:7:[0-9]+: files\\[1\\]")));

  auto stored = store_->groupState("workers");
  ASSERT_TRUE(stored.isOk() && stored->has_value());
  EXPECT_EQ((*stored)->revision, 1);
  EXPECT_EQ((*stored)->document, kGroupState);
  EXPECT_EQ(states_->forNode("node-1", "workers")->version(), "workers@1");
}

TEST_F(DesiredStatesTest, AnInvalidFirstDocumentLeavesNoState) {
  auto refused = states_->set("", "node-1", "files: [", "node-1.yaml", kNow);
  ASSERT_FALSE(refused.isOk());
  EXPECT_EQ(refused.status().code(), core::Status::Code::kInvalidArgument);
  EXPECT_THAT(refused.status().message(), ContainsRegex("^node-1\\.yaml:[0-9]+:[0-9]+: "));
  EXPECT_EQ(storedStates(), 0u);
  EXPECT_FALSE(states_->forNode("node-1", "workers").has_value());
}

TEST_F(DesiredStatesTest, AnOverrideThatMakesTheMergedStateInvalidIsRefused) {
  enroll("node-1", "workers");
  set("workers", "", kGroupState);
  // Valid alone, but inside a path the group declares as a file.
  const std::string inside = stateWithFiles({{"/srv/app/other.conf/x.conf", "x"}});
  auto refused = states_->set("", "node-1", inside, "node-1.yaml", kNow);
  ASSERT_FALSE(refused.isOk());
  EXPECT_EQ(refused.status().code(), core::Status::Code::kInvalidArgument);
  EXPECT_THAT(refused.status().message(),
              AllOf(HasSubstr("node-1.yaml merged for node node-1"),
                    HasSubstr("/srv/app/other.conf/x.conf"), HasSubstr("inside")));

  auto stored = store_->nodeState("node-1");
  ASSERT_TRUE(stored.isOk());
  EXPECT_FALSE(stored->has_value());
  EXPECT_EQ(states_->forNode("node-1", "workers")->version(), "workers@1");
}

TEST_F(DesiredStatesTest, AGroupStateThatBreaksAMembersOverrideIsRefused) {
  enroll("node-1", "workers");
  set("", "node-1", stateWithFiles({{"/srv/app/other.conf/x.conf", "x"}}));
  auto refused = states_->set("workers", "", kGroupState, "workers.yaml", kNow);
  ASSERT_FALSE(refused.isOk());
  EXPECT_EQ(refused.status().code(), core::Status::Code::kInvalidArgument);
  EXPECT_THAT(refused.status().message(), HasSubstr("workers.yaml merged for node node-1"));
  auto stored = store_->groupState("workers");
  ASSERT_TRUE(stored.isOk());
  EXPECT_FALSE(stored->has_value());
  EXPECT_EQ(states_->forNode("node-1", "workers")->version(), "node-1@1");

  // A group the node is not in never meets its override.
  EXPECT_EQ(set("db", "", kGroupState), 1);
}

TEST_F(DesiredStatesTest, NamesEitherAGroupOrANode) {
  for (const auto& [group, node] : {std::pair<std::string, std::string>{"", ""},
                                    std::pair<std::string, std::string>{"workers", "node-1"}}) {
    auto refused = states_->set(group, node, kGroupState, "state.yaml", kNow);
    ASSERT_FALSE(refused.isOk());
    EXPECT_EQ(refused.status().code(), core::Status::Code::kInvalidArgument);
  }
  EXPECT_EQ(storedStates(), 0u);
}

TEST_F(DesiredStatesTest, ARestartedServerServesWhatItServedBefore) {
  enroll("node-1", "workers");
  set("workers", "", kGroupState);
  set("workers", "", kGroupState);
  set("", "node-1", kNodeOverride);
  set("", "node-3", stateWithFiles({{"/etc/alone.conf", "alone"}}));
  set("db", "", stateWithFiles({{"/etc/db.conf", "db"}}));

  DesiredStates restarted(*store_);
  ASSERT_TRUE(restarted.load().isOk());
  for (const auto& [node, group] : {std::pair<std::string, std::string>{"node-1", "workers"},
                                    {"node-2", "workers"},
                                    {"node-3", "workers"},
                                    {"node-4", "db"}}) {
    auto before = states_->forNode(node, group);
    auto after = restarted.forNode(node, group);
    ASSERT_TRUE(before.has_value() && after.has_value()) << node;
    EXPECT_EQ(after->version(), before->version()) << node;
    EXPECT_EQ(after->document(), before->document()) << node;
  }
  EXPECT_EQ(restarted.forNode("node-1", "workers")->version(), "workers@2+node-1@1");
  EXPECT_FALSE(restarted.forNode("node-5", "none").has_value());
}

TEST_F(DesiredStatesTest, AStoredStateThatNoLongerLoadsIsLeftOutAndTheRestLoaded) {
  ASSERT_TRUE(store_->putState("workers", "", "kind: Nonsense\n", kNow).isOk());
  ASSERT_TRUE(store_->putState("db", "", stateWithFiles({{"/etc/db.conf", "db"}}), kNow).isOk());
  ASSERT_TRUE(states_->load().isOk());
  EXPECT_FALSE(states_->forNode("node-1", "workers").has_value());
  auto db = states_->forNode("node-2", "db");
  ASSERT_TRUE(db.has_value());
  EXPECT_EQ(db->version(), "db@1");
}

}  // namespace
}  // namespace nodewarden::server
