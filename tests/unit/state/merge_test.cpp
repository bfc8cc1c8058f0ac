#include "agent/state/merge.h"

#include <gmock/gmock.h>
#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <vector>

#include "agent/state/document.h"
#include "agent/state/loader.h"

namespace nodewarden::state {
namespace {

using google::protobuf::util::MessageDifferencer;
using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::UnorderedElementsAre;

// States written as people write them; mapped without NodeState's checks so
// that a fragment serves as a base or an override.
v1::NodeState stateOf(std::string_view yaml) {
  v1::NodeState state;
  std::vector<std::string> errors;
  for (const auto& error : loadMessage(yaml, "state.yaml", state)) {
    errors.push_back(error.toString());
  }
  EXPECT_THAT(errors, IsEmpty()) << yaml;
  return state;
}

void expectMerged(std::string_view base, std::string_view overrides, std::string_view expected) {
  const v1::NodeState merged = mergeOverrides(stateOf(base), stateOf(overrides));
  EXPECT_TRUE(MessageDifferencer::Equals(merged, stateOf(expected)))
      << "merged:\n"
      << toDocument(merged) << "expected:\n"
      << toDocument(stateOf(expected));
}

TEST(MergeTest, OverrideEntryReplacesTheBaseEntryWholeInItsPlace) {
  expectMerged(R"(
directories:
  - {path: /a, mode: "0755"}
  - {path: /b, mode: "0755", owner: app}
  - {path: /c}
files:
  - {path: /etc/a, content: "a\n", mode: "0644"}
  - {path: /etc/b, content: "b\n", owner: app}
units:
  - {name: a.service, enabled: true, state: running, restartOn: [/etc/a]}
  - {name: b.service, state: running, probe: {tcp: {address: "127.0.0.1:1"}}}
packages:
  - {name: containerd, hold: true}
  - {name: socat}
artifacts:
  - {path: /usr/local/bin/a, url: "https://x/a", sha256: aa, mode: "0755"}
  - {path: /usr/local/bin/b, url: "https://x/b", sha256: bb}
)",
               R"(
directories:
  - {path: /b, mode: "0700"}
files:
  - {path: /etc/a, contentBase64: YQo=}
units:
  - {name: a.service, state: stopped}
packages:
  - {name: containerd, version: "1.7.0-1"}
artifacts:
  - {path: /usr/local/bin/a, url: "https://mirror/a", sha256: cc}
)",
               R"(
directories:
  - {path: /a, mode: "0755"}
  - {path: /b, mode: "0700"}
  - {path: /c}
files:
  - {path: /etc/a, contentBase64: YQo=}
  - {path: /etc/b, content: "b\n", owner: app}
units:
  - {name: a.service, state: stopped}
  - {name: b.service, state: running, probe: {tcp: {address: "127.0.0.1:1"}}}
packages:
  - {name: containerd, version: "1.7.0-1"}
  - {name: socat}
artifacts:
  - {path: /usr/local/bin/a, url: "https://mirror/a", sha256: cc}
  - {path: /usr/local/bin/b, url: "https://x/b", sha256: bb}
)");
}

TEST(MergeTest, NewEntriesAreAppendedInTheirOrder) {
  expectMerged(R"(
directories: [{path: /a}]
files: [{path: /etc/a, content: a}]
units: [{name: a.service}]
packages: [{name: a}]
artifacts: [{path: /opt/a, url: "https://x/a"}]
)",
               R"(
directories: [{path: /z}, {path: /a, owner: o}, {path: /m}]
files: [{path: /etc/z, content: z}, {path: /etc/m, content: m}]
units: [{name: z.service}, {name: m.service}]
packages: [{name: z}, {name: m}]
artifacts: [{path: /opt/z, url: "https://x/z"}, {path: /opt/m, url: "https://x/m"}]
)",
               R"(
directories: [{path: /a, owner: o}, {path: /z}, {path: /m}]
files: [{path: /etc/a, content: a}, {path: /etc/z, content: z}, {path: /etc/m, content: m}]
units: [{name: a.service}, {name: z.service}, {name: m.service}]
packages: [{name: a}, {name: z}, {name: m}]
artifacts:
  - {path: /opt/a, url: "https://x/a"}
  - {path: /opt/z, url: "https://x/z"}
  - {path: /opt/m, url: "https://x/m"}
)");
}

TEST(MergeTest, ArtifactsAreIdentifiedByTheirPathNotTheirUrl) {
  expectMerged(
      R"(artifacts: [{path: /opt/a, url: "https://x/tool"}])",
      R"(artifacts: [{path: /opt/b, url: "https://x/tool"}])",
      R"(artifacts: [{path: /opt/a, url: "https://x/tool"}, {path: /opt/b, url: "https://x/tool"}])");
}

TEST(MergeTest, IdentitiesDoNotCrossKinds) {
  // A directory and a file of the same path, or a unit and a package of the
  // same name, are different entries; validation judges them, not the merge.
  expectMerged(R"(
directories: [{path: /etc/x}]
packages: [{name: kubelet}]
)",
               R"(
files: [{path: /etc/x, content: x}]
units: [{name: kubelet}]
)",
               R"(
directories: [{path: /etc/x}]
files: [{path: /etc/x, content: x}]
units: [{name: kubelet}]
packages: [{name: kubelet}]
)");
}

TEST(MergeTest, OverrideCanTakeAnEntryAwayWithEnsureAbsent) {
  expectMerged(R"(packages: [{name: snapd, ensure: present}, {name: curl}])",
               R"(packages: [{name: snapd, ensure: absent}])",
               R"(packages: [{name: snapd, ensure: absent}, {name: curl}])");
}

TEST(MergeTest, KernelModulesAreTheUnionInBaseOrderThenNewOnes) {
  expectMerged(R"(kernelModules: [overlay, br_netfilter])",
               R"(kernelModules: [nvidia, br_netfilter, ip_vs, nvidia])",
               R"(kernelModules: [overlay, br_netfilter, nvidia, ip_vs])");
}

TEST(MergeTest, SysctlsAndLabelsMergeByKeyAndTheOverrideWins) {
  expectMerged(R"(
metadata:
  name: workers
  labels: {role: worker, zone: a}
sysctls: {net.ipv4.ip_forward: "1", vm.swappiness: "60"}
)",
               R"(
metadata:
  labels: {zone: b, gpu: "true"}
sysctls: {vm.swappiness: "10", fs.inotify.max_user_watches: "524288"}
)",
               R"(
metadata:
  name: workers
  labels: {role: worker, zone: b, gpu: "true"}
sysctls:
  net.ipv4.ip_forward: "1"
  vm.swappiness: "10"
  fs.inotify.max_user_watches: "524288"
)");
}

TEST(MergeTest, LabelsOfANodeWithoutBaseMetadata) {
  expectMerged(R"(kernelModules: [overlay])", R"(metadata: {labels: {gpu: "true"}})",
               R"(
metadata: {labels: {gpu: "true"}}
kernelModules: [overlay]
)");
}

TEST(MergeTest, HeaderAndNameAreTheOverridesWhenItSetsThem) {
  expectMerged(R"(
apiVersion: nodewarden.io/v1
kind: NodeState
metadata: {name: workers, labels: {role: worker}}
)",
               R"(
apiVersion: nodewarden.io/v2
kind: NodeStateV2
metadata: {name: worker-7}
)",
               R"(
apiVersion: nodewarden.io/v2
kind: NodeStateV2
metadata: {name: worker-7, labels: {role: worker}}
)");
  expectMerged(R"(
apiVersion: nodewarden.io/v1
kind: NodeState
metadata: {name: workers}
)",
               R"(metadata: {labels: {a: b}})", R"(
apiVersion: nodewarden.io/v1
kind: NodeState
metadata: {name: workers, labels: {a: b}}
)");
}

TEST(MergeTest, RemediationsAreReplacedWholeWhenTheOverrideSetsThem) {
  constexpr std::string_view kBase = R"(
remediations:
  diskPressure: {mounts: [/], thresholdPercent: 85, pruneImages: true}
  oomKills: {kills: 3}
)";
  expectMerged(kBase, R"(remediations: {oomKills: {kills: 10}})",
               R"(remediations: {oomKills: {kills: 10}})");
  expectMerged(kBase, R"(remediations: {})", R"(remediations: {})");
  expectMerged(kBase, R"(kernelModules: [overlay])",
               std::string(kBase) + "kernelModules: [overlay]\n");
}

TEST(MergeTest, NoOverridesGiveTheBase) {
  const v1::NodeState base = stateOf(R"(
apiVersion: nodewarden.io/v1
kind: NodeState
metadata: {name: workers, labels: {role: worker}}
directories: [{path: /a}]
files: [{path: /etc/a, content: a}]
units: [{name: a.service, state: running}]
packages: [{name: a}]
artifacts: [{path: /opt/a, url: "https://x/a"}]
sysctls: {vm.swappiness: "10"}
kernelModules: [overlay]
remediations: {oomKills: {kills: 3}}
)");
  EXPECT_TRUE(MessageDifferencer::Equals(mergeOverrides(base, v1::NodeState()), base));
  // On an empty group the overrides are the whole state.
  EXPECT_TRUE(MessageDifferencer::Equals(mergeOverrides(v1::NodeState(), base), base));
}

TEST(MergeTest, LaterOverrideEntryOfTheSameIdentityWins) {
  expectMerged(R"(files: [{path: /etc/a, content: base}])",
               R"(files: [{path: /etc/a, content: first}, {path: /etc/b, content: b},
                          {path: /etc/a, content: second}, {path: /etc/b, content: b2}])",
               R"(files: [{path: /etc/a, content: second}, {path: /etc/b, content: b2}])");
}

TEST(MergeTest, MergedStateOfValidStatesLoadsBack) {
  // What the control plane does: merge, render, and send; the agent loads it.
  LoadResult base = loadFile(std::string(NODEWARDEN_EXAMPLES_DIR) + "/worker-node.yaml");
  ASSERT_TRUE(base.ok());
  const v1::NodeState overrides = stateOf(R"(
metadata: {name: worker-7, labels: {gpu: "true"}}
packages: [{name: containerd, version: "1.6.20~ds1-1+deb12u1", hold: true}]
kernelModules: [nvidia]
sysctls: {vm.max_map_count: "262144"}
)");
  const v1::NodeState merged = mergeOverrides(*base.state, overrides);
  LoadResult reread = loadString(toDocument(merged), "merged.json");
  std::vector<std::string> errors;
  for (const auto& error : reread.errors) errors.push_back(error.toString());
  ASSERT_THAT(errors, IsEmpty());
  EXPECT_TRUE(MessageDifferencer::Equals(*reread.state, merged));
  EXPECT_EQ(reread.state->metadata().name(), "worker-7");
  EXPECT_EQ(reread.state->packages(0).version(), "1.6.20~ds1-1+deb12u1");
  EXPECT_EQ(reread.state->packages_size(), base.state->packages_size());
}

TEST(MergeTest, EveryFieldOfTheStateHasARule) {
  // A field added to NodeState needs its rule in mergeOverrides() and in
  // docs/desired-state.md; until then this fails.
  std::vector<std::string> fields;
  const auto* type = v1::NodeState::descriptor();
  for (int i = 0; i < type->field_count(); ++i) fields.push_back(type->field(i)->name());
  EXPECT_THAT(fields, UnorderedElementsAre("api_version", "kind", "metadata", "directories",
                                           "files", "units", "packages", "artifacts", "sysctls",
                                           "kernel_modules", "remediations"));
  std::vector<std::string> metadataFields;
  for (int i = 0; i < v1::Metadata::descriptor()->field_count(); ++i) {
    metadataFields.push_back(v1::Metadata::descriptor()->field(i)->name());
  }
  EXPECT_THAT(metadataFields, ElementsAre("name", "labels"));
}

}  // namespace
}  // namespace nodewarden::state
