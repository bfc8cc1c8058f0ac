// Artifacts: files fetched by URL and sha256, installed atomically, and the
// units that restart when they change.

#include <openssl/evp.h>
#include <sys/stat.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <optional>

#include "agent/converge/artifact_store.h"
#include "tests/fakes/fake_http_client.h"
#include "tests/unit/converge/converge_test_support.h"

namespace nodewarden::converge::test {
namespace {

using namespace std::chrono_literals;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

constexpr char kUrl[] = "https://artifacts.example/crictl";

std::string crictlState(std::string_view content, std::string_view extra = "") {
  return R"(
artifacts:
  - path: /usr/local/bin/crictl
    url: )" +
         std::string(kUrl) +
         R"(
    sha256: )" +
         sha256Hex(content) + "\n" + std::string(extra);
}

class ArtifactsTest : public ConvergeTest {
 protected:
  ArtifactsTest() : cache_(root_ + ".cache"), store_(http_, clock_, cache_) {
    // The store remembers digests only of files changed a while before its
    // clock's wall time: put that well after the files the tests write.
    clock_.advance(24h * 365 * 10);
  }
  ~ArtifactsTest() override { std::filesystem::remove_all(cache_); }

  core::Result<Plan> tryPlan(const v1::NodeState& state) {
    return Planner(systemd_, root_, Providers{.artifacts = &store_}).plan(state);
  }
  core::Result<Plan> tryPlan(std::string_view body) { return tryPlan(load(body)); }

  Plan planArtifacts(std::string_view body) { return planArtifacts(load(body)); }
  Plan planArtifacts(const v1::NodeState& state) {
    auto planned = tryPlan(state);
    if (!planned) {
      ADD_FAILURE() << "plan: " << planned.status().message();
      return Plan();
    }
    return std::move(planned).value();
  }

  // Applies `plan`, delivering downloads and jobs until it is done.
  Report applyArtifacts(Plan plan) {
    std::optional<Report> report;
    executor_.apply(std::move(plan), [&report](Report done) { report = std::move(done); });
    for (int i = 0; i < 10 && !report; ++i) {
      http_.complete();
      clock_.advance(0s);
      fake_.completeJobs();
    }
    if (!report) {
      ADD_FAILURE() << "the plan did not finish";
      return Report();
    }
    return std::move(*report);
  }

  Report convergeArtifacts(std::string_view body) { return applyArtifacts(planArtifacts(body)); }
  Report convergeArtifacts(const v1::NodeState& state) {
    return applyArtifacts(planArtifacts(state));
  }

  // A unit that restarts when the artifact changes. Built past the loader,
  // whose validation does not know artifacts as restartOn targets yet.
  static v1::NodeState restartingState(std::string_view content) {
    v1::NodeState state = load(crictlState(content) + R"(
units:
  - name: app.service
    content: "[Service]\nExecStart=/usr/local/bin/crictl\n"
    state: running
)");
    state.mutable_units(0)->add_restart_on("/usr/local/bin/crictl");
    return state;
  }

  const std::string cache_;
  core::FakeHttpClient http_;
  ArtifactStore store_;
};

TEST_F(ArtifactsTest, WithoutAStoreArtifactsCannotBePlanned) {
  auto planned = Planner(systemd_, root_).plan(load(crictlState("v1")));
  ASSERT_FALSE(planned);
  EXPECT_THAT(planned.status().message(), HasSubstr("artifacts: "));
}

TEST_F(ArtifactsTest, AMissingArtifactIsFetchedAndInstalledWithItsParents) {
  http_.respond(kUrl, 200, "crictl v1");

  Plan planned = planArtifacts(crictlState("crictl v1", "    mode: \"0755\"\n"));
  ASSERT_THAT(actions(planned.changes), ElementsAre("create artifact /usr/local/bin/crictl"));
  EXPECT_EQ(planned.changes[0].detail,
            "sha256 " + sha256Hex("crictl v1").substr(0, 12) + "…, mode 0755");
  EXPECT_THAT(http_.requests(), IsEmpty()) << "planning downloads nothing";
  Report report = applyArtifacts(std::move(planned));

  EXPECT_EQ(report.exitCode(), 2);
  EXPECT_EQ(read("/usr/local/bin/crictl"), "crictl v1");
  EXPECT_EQ(modeOf("/usr/local/bin/crictl"), 0755u);
  EXPECT_EQ(modeOf("/usr/local/bin"), 0755u);
  EXPECT_THAT(http_.urls(), ElementsAre(kUrl));
  EXPECT_TRUE(std::filesystem::exists(cache_ + "/sha256/" + sha256Hex("crictl v1")));
}

TEST_F(ArtifactsTest, ANewArtifactWithoutAModeGets0644) {
  http_.respond(kUrl, 200, "crictl v1");
  convergeArtifacts(crictlState("crictl v1"));
  EXPECT_EQ(modeOf("/usr/local/bin/crictl"), 0644u);
}

TEST_F(ArtifactsTest, ASecondRunChangesNothingAndHashesNothingAgain) {
  http_.respond(kUrl, 200, "crictl v1");
  ASSERT_EQ(convergeArtifacts(crictlState("crictl v1")).exitCode(), 2);
  const auto before = snapshot();
  http_.clearRequests();

  EXPECT_TRUE(planArtifacts(crictlState("crictl v1")).empty());
  const size_t hashed = store_.filesHashed();
  Report report = convergeArtifacts(crictlState("crictl v1"));

  EXPECT_EQ(report.exitCode(), 0);
  EXPECT_EQ(store_.filesHashed(), hashed) << "the installed file's digest was remembered";
  EXPECT_EQ(snapshot(), before);
  EXPECT_THAT(http_.requests(), IsEmpty());
}

TEST_F(ArtifactsTest, AChangedDigestReplacesTheFileAndKeepsItsMode) {
  write("/usr/local/bin/crictl", "crictl v1", 0750);
  http_.respond(kUrl, 200, "crictl v2");

  Plan planned = planArtifacts(crictlState("crictl v2"));
  ASSERT_THAT(actions(planned.changes), ElementsAre("update artifact /usr/local/bin/crictl"));
  EXPECT_EQ(planned.changes[0].detail, "sha256 " + sha256Hex("crictl v1").substr(0, 12) + "… -> " +
                                           sha256Hex("crictl v2").substr(0, 12) + "…");
  applyArtifacts(std::move(planned));

  EXPECT_EQ(read("/usr/local/bin/crictl"), "crictl v2");
  EXPECT_EQ(modeOf("/usr/local/bin/crictl"), 0750u);
}

TEST_F(ArtifactsTest, AMismatchedDownloadLeavesTheInstalledFileAndNamesBothDigests) {
  write("/usr/local/bin/crictl", "crictl v1");
  const ino_t inode = statOf("/usr/local/bin/crictl").st_ino;
  http_.respond(kUrl, 200, "tampered");

  Report report = convergeArtifacts(crictlState("crictl v2"));

  EXPECT_EQ(report.exitCode(), 4);
  const Change& change = findChange(report.changes, "update", "artifact /usr/local/bin/crictl");
  EXPECT_EQ(change.outcome, Change::Outcome::kFailed);
  EXPECT_EQ(change.error, std::string("sha256 mismatch for ") + kUrl + ": expected " +
                              sha256Hex("crictl v2") + ", got " + sha256Hex("tampered"));
  EXPECT_EQ(read("/usr/local/bin/crictl"), "crictl v1");
  EXPECT_EQ(statOf("/usr/local/bin/crictl").st_ino, inode);
}

TEST_F(ArtifactsTest, AChangedArtifactRestartsTheUnitsThatNameIt) {
  http_.respond(kUrl, 200, "crictl v1");
  ASSERT_EQ(convergeArtifacts(restartingState("crictl v1")).exitCode(), 2);
  ASSERT_EQ(fake_.unit("app.service").activeState, "active");
  fake_.clearCalls();
  http_.respond(kUrl, 200, "crictl v2");

  Plan planned = planArtifacts(restartingState("crictl v2"));
  EXPECT_THAT(actions(planned.changes),
              ElementsAre("update artifact /usr/local/bin/crictl", "restart unit app.service"));
  applyArtifacts(std::move(planned));

  EXPECT_EQ(read("/usr/local/bin/crictl"), "crictl v2");
  EXPECT_THAT(fake_.changes(), ElementsAre("restart app.service"));
}

TEST_F(ArtifactsTest, AFailedDownloadRestartsNothing) {
  http_.respond(kUrl, 200, "crictl v1");
  ASSERT_EQ(convergeArtifacts(restartingState("crictl v1")).exitCode(), 2);
  fake_.clearCalls();
  http_.respond(kUrl, 404, "gone");

  Report report = convergeArtifacts(restartingState("crictl v2"));

  EXPECT_EQ(findChange(report.changes, "update", "artifact /usr/local/bin/crictl").error,
            std::string("GET ") + kUrl + ": HTTP 404");
  EXPECT_EQ(findChange(report.changes, "restart", "unit app.service").outcome,
            Change::Outcome::kSkipped);
  EXPECT_THAT(fake_.changes(), IsEmpty());
  EXPECT_EQ(read("/usr/local/bin/crictl"), "crictl v1");
}

TEST_F(ArtifactsTest, OnlyDriftedAttributesAreFixedInPlace) {
  write("/usr/local/bin/crictl", "crictl v1", 0600);
  const ino_t inode = statOf("/usr/local/bin/crictl").st_ino;

  Plan planned = planArtifacts(crictlState("crictl v1", "    mode: \"0755\"\n"));
  ASSERT_THAT(actions(planned.changes), ElementsAre("update artifact /usr/local/bin/crictl"));
  EXPECT_EQ(planned.changes[0].detail, "mode 0600 -> 0755");
  applyArtifacts(std::move(planned));

  EXPECT_EQ(modeOf("/usr/local/bin/crictl"), 0755u);
  EXPECT_EQ(statOf("/usr/local/bin/crictl").st_ino, inode);
  EXPECT_THAT(http_.requests(), IsEmpty());
}

TEST_F(ArtifactsTest, AnAbsentArtifactIsDeleted) {
  write("/usr/local/bin/crictl", "crictl v1");
  const std::string absent = R"(
artifacts:
  - path: /usr/local/bin/crictl
    ensure: absent
)";

  Plan planned = planArtifacts(absent);
  ASSERT_THAT(actions(planned.changes), ElementsAre("delete artifact /usr/local/bin/crictl"));
  applyArtifacts(std::move(planned));

  EXPECT_FALSE(exists("/usr/local/bin/crictl"));
  EXPECT_TRUE(planArtifacts(absent).empty());
  EXPECT_THAT(http_.requests(), IsEmpty());
}

TEST_F(ArtifactsTest, ADirectoryInTheWayIsAPlanError) {
  makeDirectory("/usr/local/bin/crictl");
  auto planned = tryPlan(crictlState("crictl v1"));
  ASSERT_FALSE(planned);
  EXPECT_THAT(planned.status().message(),
              HasSubstr("artifact /usr/local/bin/crictl: /usr/local/bin/crictl is a directory"));
}

TEST_F(ArtifactsTest, ADeclaredParentDirectoryGetsItsAttributesAfterTheDownload) {
  http_.respond(kUrl, 200, "crictl v1");
  const std::string state = crictlState("crictl v1") + R"(
directories:
  - path: /usr/local/bin
    mode: "0750"
)";

  Plan planned = planArtifacts(state);
  EXPECT_THAT(actions(planned.changes), ElementsAre("create artifact /usr/local/bin/crictl",
                                                    "create directory /usr/local/bin"));
  EXPECT_EQ(applyArtifacts(std::move(planned)).failed(), 0u);

  EXPECT_EQ(modeOf("/usr/local/bin"), 0750u);
  EXPECT_EQ(read("/usr/local/bin/crictl"), "crictl v1");
  EXPECT_TRUE(planArtifacts(state).empty());
}

}  // namespace
}  // namespace nodewarden::converge::test
