#include "server/store/sqlite_store.h"

#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <vector>

#include "tests/unit/server/store/store_test_support.h"

namespace nodewarden::server {
namespace {

using core::Status;
using test::at;
using test::StoreTest;

using Code = Status::Code;

TEST_F(StoreTest, TokensAreListedOldestFirstAndKeptAcrossARestart) {
  TokenRecord later = makeToken("later", Time::max(), 3);
  later.created = at(60);
  ASSERT_TRUE(store_->putToken(later).isOk());
  ASSERT_TRUE(store_->putToken(makeToken("abcdef")).isOk());

  reopen();
  auto tokens = store_->tokens();
  ASSERT_TRUE(tokens.isOk()) << tokens.status().message();
  ASSERT_EQ(tokens->size(), 2u);
  EXPECT_EQ((*tokens)[0].id, "abcdef");
  const TokenRecord& token = (*tokens)[1];
  EXPECT_EQ(token.id, "later");
  EXPECT_EQ(token.secret, "secret-later");
  EXPECT_EQ(token.group, "workers");
  EXPECT_EQ(token.labels, (Labels{{"role", "worker"}, {"zone", "a"}}));
  EXPECT_EQ(token.description, "token later");
  EXPECT_EQ(token.created, at(60));
  EXPECT_EQ(token.expires, Time::max());
  EXPECT_EQ(token.usageLimit, 3u);
  EXPECT_EQ(token.uses, 0u);

  auto missing = store_->token("nope");
  ASSERT_TRUE(missing.isOk());
  EXPECT_FALSE(missing->has_value());
}

TEST_F(StoreTest, ADuplicateTokenIsRefusedAndTheFirstKept) {
  ASSERT_TRUE(store_->putToken(makeToken("abcdef")).isOk());
  TokenRecord again = makeToken("abcdef");
  again.secret = "other";
  Status status = store_->putToken(again);
  EXPECT_EQ(status.code(), Code::kInvalidArgument);
  EXPECT_EQ(status.message(), "token abcdef exists");
  EXPECT_EQ((*store_->token("abcdef"))->secret, "secret-abcdef");
  EXPECT_EQ(store_->tokens()->size(), 1u);
}

TEST_F(StoreTest, DeletedTokenIsGone) {
  ASSERT_TRUE(store_->putToken(makeToken("abcdef")).isOk());
  ASSERT_TRUE(store_->deleteToken("abcdef").isOk());
  EXPECT_FALSE(store_->token("abcdef")->has_value());
  Status again = store_->deleteToken("abcdef");
  EXPECT_EQ(again.code(), Code::kNotFound);
  EXPECT_EQ(again.message(), "unknown bootstrap token abcdef");
}

TEST_F(StoreTest, EnrollInsertsTheNodeAndCountsTheUse) {
  ASSERT_TRUE(store_->putToken(makeToken("abcdef", at(3600), 2)).isOk());
  auto node = store_->enroll(makeEnrollment("abcdef", "n1", "serial-1"), at(10));
  ASSERT_TRUE(node.isOk()) << node.status().message();
  EXPECT_EQ(node->name, "n1");
  EXPECT_EQ(node->group, "workers");
  // The node's own labels win over the token's.
  EXPECT_EQ(node->labels, (Labels{{"role", "gpu"}, {"zone", "a"}}));
  EXPECT_EQ(node->enrolled, at(10));
  EXPECT_EQ(node->lastSeen, at(10));
  EXPECT_EQ(node->certificateSerial, "serial-1");
  EXPECT_EQ(node->certificateExpires, at(86400));
  EXPECT_FALSE(node->revoked);
  EXPECT_EQ(node->lastSequence, 0u);
  EXPECT_EQ((*store_->token("abcdef"))->uses, 1u);

  reopen();
  NodeRecord stored = nodeRecord("n1");
  EXPECT_EQ(stored.labels, node->labels);
  EXPECT_EQ(stored.certificateSerial, "serial-1");
  EXPECT_FALSE(*store_->isRevokedSerial("serial-1"));
}

TEST_F(StoreTest, AnExpiredTokenIsRefusedAndNothingChanges) {
  ASSERT_TRUE(store_->putToken(makeToken("abcdef", at(3600))).isOk());
  // Refused from the moment of expiry on.
  auto node = store_->enroll(makeEnrollment("abcdef", "n1", "serial-1"), at(3600));
  ASSERT_FALSE(node.isOk());
  EXPECT_EQ(node.status().code(), Code::kFailedPrecondition);
  EXPECT_EQ(node.status().message(), "bootstrap token abcdef expired at 2024-01-01T01:00:00Z");
  EXPECT_EQ((*store_->token("abcdef"))->uses, 0u);
  EXPECT_FALSE(store_->node("n1")->has_value());
}

TEST_F(StoreTest, AUsedUpTokenIsRefusedAndNothingChanges) {
  ASSERT_TRUE(store_->putToken(makeToken("abcdef", at(3600), 2)).isOk());
  ASSERT_TRUE(store_->enroll(makeEnrollment("abcdef", "n1", "s1"), at(10)).isOk());
  ASSERT_TRUE(store_->enroll(makeEnrollment("abcdef", "n2", "s2"), at(11)).isOk());
  auto node = store_->enroll(makeEnrollment("abcdef", "n3", "s3"), at(12));
  ASSERT_FALSE(node.isOk());
  EXPECT_EQ(node.status().code(), Code::kFailedPrecondition);
  EXPECT_EQ(node.status().message(), "bootstrap token abcdef is used up (2 of 2 uses)");
  EXPECT_EQ((*store_->token("abcdef"))->uses, 2u);
  EXPECT_FALSE(store_->node("n3")->has_value());
  EXPECT_EQ(store_->nodes()->size(), 2u);
}

TEST_F(StoreTest, AnUnknownTokenIsRefused) {
  auto node = store_->enroll(makeEnrollment("abcdef", "n1", "s1"), at(10));
  ASSERT_FALSE(node.isOk());
  EXPECT_EQ(node.status().code(), Code::kNotFound);
  EXPECT_EQ(node.status().message(), "unknown bootstrap token abcdef");
  EXPECT_TRUE(store_->nodes()->empty());
}

TEST_F(StoreTest, ARevokedNodeCannotEnrollAgain) {
  ASSERT_TRUE(store_->putToken(makeToken("abcdef")).isOk());
  ASSERT_TRUE(store_->enroll(makeEnrollment("abcdef", "n1", "s1"), at(10)).isOk());
  ASSERT_TRUE(store_->revokeNode("n1").isOk());
  EXPECT_TRUE(*store_->isRevokedSerial("s1"));

  auto again = store_->enroll(makeEnrollment("abcdef", "n1", "s2"), at(20));
  ASSERT_FALSE(again.isOk());
  EXPECT_EQ(again.status().code(), Code::kFailedPrecondition);
  EXPECT_EQ(again.status().message(), "node n1 was revoked");
  EXPECT_EQ((*store_->token("abcdef"))->uses, 1u);
  NodeRecord node = nodeRecord("n1");
  EXPECT_TRUE(node.revoked);
  EXPECT_EQ(node.certificateSerial, "s1");
  EXPECT_TRUE(*store_->isRevokedSerial("s2"));
}

TEST_F(StoreTest, ReEnrollmentReplacesTheCertificateAndKeepsTheSequence) {
  ASSERT_TRUE(store_->putToken(makeToken("first")).isOk());
  ASSERT_TRUE(store_->enroll(makeEnrollment("first", "n1", "s1"), at(10)).isOk());
  ASSERT_TRUE(*store_->recordUsage("n1", 5, "usage", at(20)));

  TokenRecord second = makeToken("second");
  second.group = "gpu";
  second.labels = {{"zone", "b"}};
  ASSERT_TRUE(store_->putToken(second).isOk());
  Enrollment enrollment = makeEnrollment("second", "n1", "s2");
  enrollment.certificateExpires = at(2 * 86400);
  auto node = store_->enroll(enrollment, at(30));
  ASSERT_TRUE(node.isOk()) << node.status().message();
  EXPECT_EQ(node->certificateSerial, "s2");
  EXPECT_EQ(node->certificateExpires, at(2 * 86400));
  EXPECT_EQ(node->group, "gpu");
  EXPECT_EQ(node->labels, (Labels{{"role", "gpu"}, {"zone", "b"}}));
  EXPECT_EQ(node->lastSequence, 5u);
  EXPECT_EQ(node->usage, "usage");
  EXPECT_EQ(node->enrolled, at(10));
  EXPECT_EQ(node->lastSeen, at(30));
  EXPECT_EQ((*store_->token("second"))->uses, 1u);

  // The old certificate is no longer honoured, the new one is.
  EXPECT_TRUE(*store_->isRevokedSerial("s1"));
  EXPECT_FALSE(*store_->isRevokedSerial("s2"));
  EXPECT_TRUE(*store_->isRevokedSerial("never-issued"));
  // A resend of a message applied before the re-enrollment stays applied.
  EXPECT_FALSE(*store_->recordUsage("n1", 5, "again", at(40)));
}

TEST_F(StoreTest, ATokenDoesNotLetAnotherKeyTakeAnEnrolledName) {
  ASSERT_TRUE(store_->putToken(makeToken("first")).isOk());
  Enrollment mine = makeEnrollment("first", "n1", "s1");
  mine.keyPin = "sha256:aaaa";
  ASSERT_TRUE(store_->enroll(mine, at(10)).isOk());

  Enrollment thief = makeEnrollment("first", "n1", "s2");
  thief.keyPin = "sha256:bbbb";
  auto refused = store_->enroll(thief, at(20));
  ASSERT_FALSE(refused.isOk());
  EXPECT_EQ(refused.status().code(), core::Status::Code::kFailedPrecondition);
  EXPECT_EQ(refused.status().message(),
            "node n1 is enrolled with another key; revoke it first, or enroll this machine "
            "under another name");
  EXPECT_EQ((*store_->node("n1"))->certificateSerial, "s1");
  EXPECT_EQ((*store_->token("first"))->uses, 1u);

  // The machine itself, with its own key, gets a new certificate.
  Enrollment again = makeEnrollment("first", "n1", "s3");
  again.keyPin = "sha256:aaaa";
  ASSERT_TRUE(store_->enroll(again, at(30)).isOk());
  EXPECT_EQ((*store_->node("n1"))->certificateSerial, "s3");
  EXPECT_EQ((*store_->node("n1"))->keyPin, "sha256:aaaa");
}

TEST_F(StoreTest, ANodeThatLostItsSpoolStartsItsSequenceOver) {
  enrollNode("n1");
  ASSERT_TRUE(*store_->recordUsage("n1", 40, "old", at(20)));
  ASSERT_TRUE(store_->restartSequence("n1", 0).isOk());
  EXPECT_TRUE(*store_->recordUsage("n1", 1, "new", at(30)));
  EXPECT_EQ((*store_->node("n1"))->usage, "new");
  EXPECT_EQ(store_->restartSequence("nope", 0).code(), core::Status::Code::kNotFound);
}

TEST_F(StoreTest, RevokingAnUnknownNodeIsNotFound) {
  Status status = store_->revokeNode("ghost");
  EXPECT_EQ(status.code(), Code::kNotFound);
  EXPECT_EQ(status.message(), "unknown node ghost");
}

TEST_F(StoreTest, HelloTouchAndDesiredVersionUpdateTheNode) {
  enrollNode("n1");
  ASSERT_TRUE(store_->recordHello("n1", std::string("facts\0bytes", 11), at(100)).isOk());
  ASSERT_TRUE(store_->setDesiredVersion("n1", "v7").isOk());
  NodeRecord node = nodeRecord("n1");
  EXPECT_EQ(node.facts, std::string("facts\0bytes", 11));
  EXPECT_EQ(node.lastSeen, at(100));
  EXPECT_EQ(node.desiredVersion, "v7");

  ASSERT_TRUE(store_->touch("n1", at(200)).isOk());
  EXPECT_EQ(nodeRecord("n1").lastSeen, at(200));

  EXPECT_EQ(store_->recordHello("ghost", "", at(1)).code(), Code::kNotFound);
  EXPECT_EQ(store_->touch("ghost", at(1)).code(), Code::kNotFound);
  EXPECT_EQ(store_->setDesiredVersion("ghost", "v1").code(), Code::kNotFound);
}

TEST_F(StoreTest, NodesAreListedByName) {
  enrollNode("n2");
  enrollNode("n1");
  enrollNode("n3");
  auto nodes = store_->nodes();
  ASSERT_TRUE(nodes.isOk()) << nodes.status().message();
  ASSERT_EQ(nodes->size(), 3u);
  EXPECT_EQ((*nodes)[0].name, "n1");
  EXPECT_EQ((*nodes)[1].name, "n2");
  EXPECT_EQ((*nodes)[2].name, "n3");
}

TEST_F(StoreTest, AReportIsAppliedExactlyOnce) {
  enrollNode("n1");
  auto first = store_->recordReport("n1", 1, "report-1", "v1", "changed", at(100));
  ASSERT_TRUE(first.isOk()) << first.status().message();
  EXPECT_TRUE(*first);

  // The same message resent, and an older one arriving late: both ignored.
  auto resent = store_->recordReport("n1", 1, "report-1b", "v1b", "failed", at(200));
  ASSERT_TRUE(resent.isOk());
  EXPECT_FALSE(*resent);
  auto older = store_->recordReport("n1", 0, "report-0", "v0", "failed", at(300));
  ASSERT_TRUE(older.isOk());
  EXPECT_FALSE(*older);

  reopen();
  NodeRecord node = nodeRecord("n1");
  EXPECT_EQ(node.lastReport, "report-1");
  EXPECT_EQ(node.appliedVersion, "v1");
  EXPECT_EQ(node.lastResult, "changed");
  EXPECT_EQ(node.lastSequence, 1u);
  EXPECT_EQ(node.lastSeen, at(100));

  EXPECT_TRUE(*store_->recordReport("n1", 2, "report-2", "v2", "unchanged", at(400)));
  node = nodeRecord("n1");
  EXPECT_EQ(node.lastReport, "report-2");
  EXPECT_EQ(node.lastSequence, 2u);
  EXPECT_EQ(node.lastSeen, at(400));
}

TEST_F(StoreTest, UsageAndDroppedCountsAreAppliedExactlyOnce) {
  enrollNode("n1");
  EXPECT_TRUE(*store_->recordDropped("n1", 1, 3, at(100)));
  EXPECT_FALSE(*store_->recordDropped("n1", 1, 3, at(100)));
  EXPECT_TRUE(*store_->recordDropped("n1", 2, 4, at(100)));
  EXPECT_TRUE(*store_->recordUsage("n1", 3, "usage-3", at(100)));
  EXPECT_FALSE(*store_->recordUsage("n1", 2, "usage-2", at(100)));
  NodeRecord node = nodeRecord("n1");
  EXPECT_EQ(node.dropped, 7u);
  EXPECT_EQ(node.usage, "usage-3");
  EXPECT_EQ(node.lastSequence, 3u);
}

TEST_F(StoreTest, MessagesFromAnUnknownNodeAreNotFound) {
  auto report = store_->recordReport("ghost", 1, "", "", "", at(1));
  ASSERT_FALSE(report.isOk());
  EXPECT_EQ(report.status().code(), Code::kNotFound);
  EXPECT_EQ(report.status().message(), "unknown node ghost");
  EXPECT_EQ(store_->recordHealth("ghost", 1, "", {{at(1), "e"}}, at(1)).status().code(),
            Code::kNotFound);
  EXPECT_EQ(store_->recordUsage("ghost", 1, "", at(1)).status().code(), Code::kNotFound);
  EXPECT_EQ(store_->recordDropped("ghost", 1, 1, at(1)).status().code(), Code::kNotFound);
}

TEST_F(StoreTest, HealthEventsAreAppliedOnceAndBoundedPerNode) {
  enrollNode("n1");
  enrollNode("n2");
  auto batch = [](int from, int count) {
    std::vector<std::pair<Time, std::string>> events;
    for (int i = from; i < from + count; ++i)
      events.emplace_back(at(i), "event " + std::to_string(i));
    return events;
  };
  ASSERT_TRUE(*store_->recordHealth("n2", 1, "c", batch(1000, 2), at(1)));
  ASSERT_TRUE(*store_->recordHealth("n1", 1, "conditions-1", batch(0, 150), at(1)));
  // A resend adds no events.
  ASSERT_FALSE(*store_->recordHealth("n1", 1, "conditions-1", batch(0, 150), at(1)));
  ASSERT_TRUE(*store_->recordHealth("n1", 2, "conditions-2", batch(150, 100), at(2)));

  auto events = store_->events("n1", 1000);
  ASSERT_TRUE(events.isOk()) << events.status().message();
  ASSERT_EQ(events->size(), kMaxEventsPerNode);
  EXPECT_EQ(events->front(), "event 50");
  EXPECT_EQ(events->back(), "event 249");
  EXPECT_EQ(*store_->events("n1", 2), (std::vector<std::string>{"event 248", "event 249"}));
  EXPECT_EQ(*store_->events("n2", 10), (std::vector<std::string>{"event 1000", "event 1001"}));
  EXPECT_TRUE(store_->events("ghost", 10)->empty());
  EXPECT_EQ(nodeRecord("n1").conditions, "conditions-2");

  // One batch larger than the bound keeps its newest.
  ASSERT_TRUE(*store_->recordHealth("n1", 3, "conditions-3", batch(300, 250), at(3)));
  events = store_->events("n1", 1000);
  ASSERT_EQ(events->size(), kMaxEventsPerNode);
  EXPECT_EQ(events->front(), "event 350");
  EXPECT_EQ(events->back(), "event 549");
}

TEST_F(StoreTest, StateRevisionsIncreasePerScope) {
  EXPECT_EQ(*store_->putState("workers", "", "doc-1", at(1)), 1);
  EXPECT_EQ(*store_->putState("workers", "", "doc-2", at(2)), 2);
  EXPECT_EQ(*store_->putState("gpu", "", "gpu-1", at(3)), 1);
  // A node's override is its own scope, whichever group is given with it.
  EXPECT_EQ(*store_->putState("workers", "n1", "n1-1", at(4)), 1);
  EXPECT_EQ(*store_->putState("", "n1", "n1-2", at(5)), 2);

  reopen();
  auto group = store_->groupState("workers");
  ASSERT_TRUE(group.isOk() && group->has_value());
  EXPECT_EQ((*group)->revision, 2);
  EXPECT_EQ((*group)->document, "doc-2");
  EXPECT_EQ((*group)->updated, at(2));
  EXPECT_EQ((*group)->node, "");
  auto node = store_->nodeState("n1");
  ASSERT_TRUE(node.isOk() && node->has_value());
  EXPECT_EQ((*node)->revision, 2);
  EXPECT_EQ((*node)->document, "n1-2");
  EXPECT_EQ((*node)->group, "");
  EXPECT_FALSE(store_->groupState("nope")->has_value());
  EXPECT_FALSE(store_->nodeState("n2")->has_value());

  auto states = store_->states();
  ASSERT_TRUE(states.isOk());
  ASSERT_EQ(states->size(), 3u);
  EXPECT_EQ((*states)[0].node, "n1");
  EXPECT_EQ((*states)[1].group, "gpu");
  EXPECT_EQ((*states)[2].group, "workers");

  auto neither = store_->putState("", "", "doc", at(6));
  ASSERT_FALSE(neither.isOk());
  EXPECT_EQ(neither.status().code(), Code::kInvalidArgument);
}

TEST_F(StoreTest, AlertsAreRaisedOncePerNodeAndKindUntilResolved) {
  AlertRecord alert{
      .node = "n1", .group = "workers", .kind = "disk", .message = "90% full", .since = at(10)};
  EXPECT_TRUE(*store_->raiseAlert(alert));
  alert.message = "95% full";
  alert.since = at(20);
  EXPECT_FALSE(*store_->raiseAlert(alert));
  AlertRecord other{
      .node = "n2", .group = "workers", .kind = "disk", .message = "91% full", .since = at(15)};
  EXPECT_TRUE(*store_->raiseAlert(other));

  auto open = store_->alerts(false);
  ASSERT_TRUE(open.isOk()) << open.status().message();
  ASSERT_EQ(open->size(), 2u);
  EXPECT_EQ((*open)[0].node, "n2");
  EXPECT_EQ((*open)[1].node, "n1");
  EXPECT_EQ((*open)[1].message, "95% full");
  EXPECT_EQ((*open)[1].since, at(10));
  EXPECT_FALSE((*open)[1].resolved.has_value());

  EXPECT_TRUE(*store_->resolveAlert("n1", "disk", at(30)));
  EXPECT_FALSE(*store_->resolveAlert("n1", "disk", at(31)));
  EXPECT_FALSE(*store_->resolveAlert("n1", "memory", at(31)));
  // The problem coming back is a new alert.
  alert.since = at(40);
  EXPECT_TRUE(*store_->raiseAlert(alert));

  reopen();
  EXPECT_EQ(store_->alerts(false)->size(), 2u);
  auto all = store_->alerts(true);
  ASSERT_TRUE(all.isOk());
  ASSERT_EQ(all->size(), 3u);
  EXPECT_EQ((*all)[0].since, at(40));
  EXPECT_FALSE((*all)[0].resolved.has_value());
  EXPECT_EQ((*all)[1].node, "n2");
  EXPECT_EQ((*all)[2].since, at(10));
  EXPECT_EQ((*all)[2].resolved, at(30));
  EXPECT_NE((*all)[0].id, (*all)[2].id);
}

TEST_F(StoreTest, OnlyTheNewestResolvedAlertsAreKept) {
  for (size_t i = 0; i < kMaxResolvedAlerts + 5; ++i) {
    AlertRecord alert{
        .node = "n1", .kind = "flap", .message = std::to_string(i), .since = at(int64_t(2 * i))};
    ASSERT_TRUE(*store_->raiseAlert(alert));
    ASSERT_TRUE(*store_->resolveAlert("n1", "flap", at(int64_t(2 * i + 1))));
  }
  ASSERT_TRUE(*store_->raiseAlert({.node = "n1", .kind = "disk", .since = at(0)}));
  auto all = store_->alerts(true);
  ASSERT_TRUE(all.isOk());
  ASSERT_EQ(all->size(), kMaxResolvedAlerts + 1);
  EXPECT_EQ(all->front().message, std::to_string(kMaxResolvedAlerts + 4));
  // The unresolved alert stays, however old.
  EXPECT_EQ(all->back().kind, "disk");
}

TEST_F(StoreTest, ConcurrentWritersAllSucceed) {
  constexpr int kThreads = 8;
  constexpr int kMessages = 500;
  enrollNode("shared");
  for (int t = 0; t < kThreads; ++t) enrollNode("n" + std::to_string(t));

  std::vector<std::string> failures(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      const std::string own = "n" + std::to_string(t);
      for (int i = 1; i <= kMessages; ++i) {
        auto applied = store_->recordUsage(own, uint64_t(i), "usage", at(i));
        if (!applied.isOk() || !*applied) {
          failures[t] = own + " " + std::to_string(i) + ": " + applied.status().message();
          return;
        }
        // The threads' sequences interleave on the shared node.
        auto shared = store_->recordUsage("shared", uint64_t((i - 1) * kThreads + t + 1),
                                          "usage " + std::to_string(t), at(i));
        if (!shared.isOk()) {
          failures[t] = "shared: " + shared.status().message();
          return;
        }
        if (auto node = store_->node(own); !node.isOk()) {
          failures[t] = "read: " + node.status().message();
          return;
        }
      }
    });
  }
  for (auto& thread : threads) thread.join();
  for (const auto& failure : failures) EXPECT_EQ(failure, "");

  for (int t = 0; t < kThreads; ++t) {
    EXPECT_EQ(nodeRecord("n" + std::to_string(t)).lastSequence, uint64_t(kMessages));
  }
  EXPECT_EQ(nodeRecord("shared").lastSequence, uint64_t(kThreads * kMessages));
}

}  // namespace
}  // namespace nodewarden::server
