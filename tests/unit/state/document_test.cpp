#include "agent/state/document.h"

#include <gmock/gmock.h>
#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "agent/state/loader.h"
#include "nodewarden/v1/agent_config.pb.h"

namespace nodewarden::state {
namespace {

using google::protobuf::util::MessageDifferencer;
using ::testing::IsEmpty;

std::vector<std::string> printed(const std::vector<Diagnostic>& errors) {
  std::vector<std::string> out;
  for (const auto& error : errors) out.push_back(error.toString());
  return out;
}

std::string readText(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// The guarantee the control plane relies on: a state it renders is read back
// by the agent as the same state.
void expectStateRoundTrips(const v1::NodeState& state, const std::string& what) {
  const std::string document = toDocument(state);
  LoadResult reread = loadString(document, "rendered.json");
  ASSERT_THAT(printed(reread.errors), IsEmpty()) << what << "\n" << document;
  ASSERT_TRUE(reread.ok());
  EXPECT_TRUE(MessageDifferencer::Equals(*reread.state, state)) << what << "\n" << document;
}

// The same through loadMessage(), which maps without NodeState's checks: for
// values that are well-formed but would not pass them.
template <typename Message>
void expectMessageRoundTrips(const Message& message) {
  const std::string document = toDocument(message);
  Message reread;
  ASSERT_THAT(printed(loadMessage(document, "rendered.json", reread)), IsEmpty()) << document;
  EXPECT_TRUE(MessageDifferencer::Equals(reread, message)) << document << "\nread back as:\n"
                                                           << reread.DebugString();
}

TEST(DocumentTest, ExamplesRoundTrip) {
  int states = 0;
  int configs = 0;
  for (const auto& entry : std::filesystem::directory_iterator(NODEWARDEN_EXAMPLES_DIR)) {
    if (entry.path().extension() != ".yaml") continue;
    const std::string text = readText(entry.path());
    if (entry.path().filename() == "agent.yaml") {
      v1::AgentConfig config;
      ASSERT_THAT(printed(loadMessage(text, entry.path(), config)), IsEmpty());
      expectMessageRoundTrips(config);
      ++configs;
      continue;
    }
    LoadResult loaded = loadString(text, entry.path());
    ASSERT_THAT(printed(loaded.errors), IsEmpty()) << entry.path();
    expectStateRoundTrips(*loaded.state, entry.path());
    ++states;
  }
  EXPECT_GE(states, 2);
  EXPECT_EQ(configs, 1);
}

// Every kind of resource, probe and remediation a valid state can hold, in
// the spellings people use: block scalars, flow lists, quoted and plain modes.
constexpr std::string_view kEveryResource = R"(apiVersion: nodewarden.io/v1
kind: NodeState
metadata:
  name: "gpu-worker-7"
  labels: {role: worker, "nodewarden.io/zone": eu-west-1a, empty: ""}
packages:
  - name: containerd
    version: 1.6.20~ds1-1+deb12u1
    hold: true
  - name: nvidia-driver
    ensure: latest
    hold: false
  - name: snapd
    ensure: absent
artifacts:
  - path: /usr/local/bin/kubelet
    url: https://dl.k8s.io/release/v1.33.4/bin/linux/amd64/kubelet
    sha256: 109bd2607b054a477ede31c55ae814eae8e75543126dc4cea40b04424d843489
    mode: "0755"
    owner: root
    group: root
    caFile: /etc/ssl/mirror.pem
    maxSize: 9007199254740993
  - path: /opt/old
    ensure: absent
kernelModules: [overlay, br_netfilter]
sysctls:
  net.ipv4.ip_forward: "1"
  vm.max_map_count: "262144"
directories:
  - path: /etc/app
    mode: 0750
    owner: app
    group: app
  - path: /etc/sticky
    mode: "1777"
  - path: /var/old
    ensure: absent
files:
  - path: /etc/app/config.toml
    mode: "0640"
    content: |
      # "quoted" and 'single' and \backslash
      key = "value"	# a tab before this comment
      unicode = "grüße, 日本語, 🚀"

      trailing = true
  - path: /etc/app/empty
    content: ""
  - path: /etc/app/blob
    contentBase64: aGVsbG8=
    mode: "4755"
  - path: /etc/app/gone
    ensure: absent
units:
  - name: app.service
    content: |
      [Service]
      ExecStart=/usr/bin/app --flag="a b"
    dropIns:
      - name: 10-env.conf
        content: "[Service]\nEnvironment=A=1\n"
    enabled: true
    state: running
    restartOn: [/etc/app/config.toml, containerd]
    probe:
      http:
        url: https://127.0.0.1:8443/healthz
        expectedStatuses: [200, 204]
        caFile: /etc/app/ca.pem
        clientCertificate: /etc/app/client.pem
        clientKey: /etc/app/client.key
      interval: 15s
      timeout: 3s
      initialDelay: 30s
      failureThreshold: 5
      successThreshold: 2
  - name: db.service
    state: running
    probe:
      tcp: {address: "[::1]:5432"}
  - name: containerd.service
    state: running
    probe:
      exec:
        command: [/usr/bin/crictl, info]
  - name: kubelet.service
    enabled: false
    state: stopped
    probe: {disabled: true}
remediations:
  diskPressure:
    mounts: [/, /var/lib/containerd]
    thresholdPercent: 90
    checkInterval: 30s
    minInterval: 5m
    journalVacuumSize: 200M
    pruneImages: true
    files:
      - pattern: /var/log/pods/*/*/*.log.*
        olderThan: 3d
  oomKills:
    kills: 2
    window: 30m
)";

TEST(DocumentTest, EveryResourceKindRoundTrips) {
  LoadResult loaded = loadString(kEveryResource, "node.yaml");
  ASSERT_THAT(printed(loaded.errors), IsEmpty());
  expectStateRoundTrips(*loaded.state, "kEveryResource");
}

// Strings that JSON and YAML escape differently, or that YAML reads as line
// breaks or refuses raw.
const std::vector<std::string> kAwkwardStrings = {
    "",
    "\"double\" 'single' \\back\\slash\\",
    "line one\nline two\r\nline three\n\n",
    "\ttabs\tand trailing space ",
    std::string("nul\0byte", 8),
    "bell\a backspace\b formfeed\f vertical\v escape\x1b unit\x1f del\x7f",
    "grüße 日本語 ελληνικά עברית 🚀 👩‍👩‍👧 e\u0301",
    "next line\u0085 line separator\u2028 paragraph separator\u2029 done",
    "c1\u0080\u009f nbsp\u00a0 bom\ufeff nonchars\ufffe\uffff private\ue000 last\U0010ffff",
    "# not a comment: - [a, b] {c: d} & * ! | > % @ ` ? ~ null true 0644 1e3",
    "  leading and trailing spaces  ",
    "\\u0041 is not an escape here, nor is \\n",
};

TEST(DocumentTest, MessageWithEveryFieldKindRoundTrips) {
  v1::NodeState state;
  state.set_api_version("nodewarden.io/v1");
  state.set_kind("NodeState");
  state.mutable_metadata()->set_name("node \"α\"");
  auto& labels = *state.mutable_metadata()->mutable_labels();
  for (size_t i = 0; i < kAwkwardStrings.size(); ++i) {
    labels["key " + kAwkwardStrings[i]] = kAwkwardStrings[i];
  }
  (*state.mutable_sysctls())["net.ipv4.ip_forward"] = "1";

  for (const auto mode : {0u, 0644u, 0755u, 01777u, 04755u, 07777u, 07u}) {
    auto* directory = state.add_directories();
    directory->set_path("/d/" + std::to_string(mode));
    directory->set_mode(mode);
  }
  state.add_directories()->set_path("/no-mode");
  state.mutable_directories()->rbegin()->set_ensure(v1::ENSURE_ABSENT);

  for (const std::string& text : kAwkwardStrings) {
    auto* file = state.add_files();
    file->set_path("/f/" + text);
    file->set_content(text);
    file->set_owner(text);
  }
  auto* blob = state.add_files();
  blob->set_path("/blob");
  blob->set_content_base64("AAEC/w==");
  blob->set_ensure(v1::ENSURE_PRESENT);

  auto* unit = state.add_units();
  unit->set_name("app.service");
  unit->set_content("[Unit]\nDescription=ünïcode — \"quoted\"\n\n[Service]\nExecStart=/bin/true\n");
  unit->set_enabled(false);  // set, though false: an optional field keeps its presence
  unit->set_state(v1::UNIT_STATE_RUNNING);
  unit->add_restart_on("/f/a");
  unit->add_restart_on("containerd");
  auto* dropIn = unit->add_drop_ins();
  dropIn->set_name("10-x.conf");
  dropIn->set_content("[Service]\nEnvironment=\"A=\\\"b\\\"\"\n");
  auto* probe = unit->mutable_probe();
  probe->mutable_http()->set_url("https://127.0.0.1:1/x?a=1&b=2");
  probe->mutable_http()->add_expected_statuses(200);
  probe->mutable_http()->add_expected_statuses(0);
  probe->mutable_http()->add_expected_statuses(std::numeric_limits<uint32_t>::max());
  probe->set_failure_threshold(7);
  probe->set_disabled(true);
  auto* withEmptyContent = state.add_units();
  withEmptyContent->set_name("empty.service");
  withEmptyContent->set_content("");
  withEmptyContent->mutable_probe()->mutable_exec();  // set, though empty
  state.add_units()->set_name("tcp.service");
  state.mutable_units()->rbegin()->mutable_probe()->mutable_tcp()->set_address("unix:/run/x.sock");

  auto* package = state.add_packages();
  package->set_name("containerd");
  package->set_ensure(v1::PACKAGE_ENSURE_LATEST);
  package->set_hold(true);
  state.add_packages()->set_name("unheld");
  state.mutable_packages()->rbegin()->set_hold(false);

  auto* artifact = state.add_artifacts();
  artifact->set_path("/usr/local/bin/x");
  artifact->set_mode(0755);
  artifact->set_max_size(std::numeric_limits<uint64_t>::max());
  auto* unlimited = state.add_artifacts();
  unlimited->set_path("/usr/local/bin/y");
  unlimited->set_max_size(0);
  unlimited->set_ensure(v1::ENSURE_ABSENT);

  for (const std::string& module : kAwkwardStrings) state.add_kernel_modules(module);

  auto* disk = state.mutable_remediations()->mutable_disk_pressure();
  disk->add_mounts("/");
  disk->set_prune_images(true);
  auto* cleanup = disk->add_files();
  cleanup->set_pattern("/var/log/*.gz");
  cleanup->set_older_than("7d");
  disk->add_files();  // an empty element still counts
  state.mutable_remediations()->mutable_oom_kills();

  expectMessageRoundTrips(state);
}

TEST(DocumentTest, SpellsFieldsAsTheLoaderReadsThem) {
  v1::NodeState state;
  state.set_api_version("nodewarden.io/v1");
  state.set_kind("NodeState");
  (*state.mutable_metadata()->mutable_labels())["zone"] = "b";
  (*state.mutable_metadata()->mutable_labels())["role"] = "worker";
  auto* directory = state.add_directories();
  directory->set_path("/etc/x");
  directory->set_mode(0644);
  auto* unit = state.add_units();
  unit->set_name("x.service");
  unit->set_state(v1::UNIT_STATE_RUNNING);
  unit->set_enabled(false);
  unit->add_restart_on("/etc/x");
  unit->mutable_probe()->mutable_tcp()->set_address("127.0.0.1:80");
  auto* artifact = state.add_artifacts();
  artifact->set_path("/usr/local/bin/x");
  artifact->set_mode(04755);
  artifact->set_max_size(uint64_t{1} << 40);
  state.add_kernel_modules("overlay");

  EXPECT_EQ(toDocument(state), R"({
  "apiVersion": "nodewarden.io/v1",
  "kind": "NodeState",
  "metadata": {
    "labels": {
      "role": "worker",
      "zone": "b"
    }
  },
  "directories": [
    {
      "path": "/etc/x",
      "mode": "0644"
    }
  ],
  "units": [
    {
      "name": "x.service",
      "enabled": false,
      "state": "running",
      "restartOn": [
        "/etc/x"
      ],
      "probe": {
        "tcp": {
          "address": "127.0.0.1:80"
        }
      }
    }
  ],
  "artifacts": [
    {
      "path": "/usr/local/bin/x",
      "mode": "04755",
      "maxSize": 1099511627776
    }
  ],
  "kernelModules": [
    "overlay"
  ]
}
)");
}

TEST(DocumentTest, LeavesOutWhatTheMessageDoesNotHold) {
  EXPECT_EQ(toDocument(v1::NodeState()), "{}\n");

  v1::NodeState state;
  auto* unit = state.add_units();
  unit->set_name("x.service");
  unit->set_state(v1::UNIT_STATE_UNSPECIFIED);
  unit->mutable_probe()->set_failure_threshold(0);
  state.mutable_metadata()->set_name("");
  EXPECT_EQ(nlohmann::json::parse(toDocument(state)),
            nlohmann::json::parse(R"({"metadata": {}, "units": [{"name": "x.service",
                                      "probe": {}}]})"));
}

TEST(DocumentTest, EscapesWhatYamlWouldNotReadBackAsJson) {
  v1::NodeState state;
  state.mutable_metadata()->set_name(
      "a\u0085b\u2028c\u2029d\x7f"
      "e\u0080f\ufeffg\"\\\n");
  const std::string document = toDocument(state);
  EXPECT_EQ(document,
            "{\n  \"metadata\": {\n    \"name\": "
            "\"a\\u0085b\\u2028c\\u2029d\\u007fe\\u0080f\\ufeffg\\\"\\\\\\n\"\n  }\n}\n");
  // Still JSON, meaning the same: the server may store or show it as such.
  EXPECT_EQ(nlohmann::json::parse(document)["metadata"]["name"], state.metadata().name());
}

TEST(DocumentTest, InvalidUtf8BecomesAReplacementCharacter) {
  v1::NodeState state;
  state.mutable_metadata()->set_name(
      "a\xff"
      "b");
  v1::NodeState reread;
  ASSERT_THAT(printed(loadMessage(toDocument(state), "rendered.json", reread)), IsEmpty());
  EXPECT_EQ(reread.metadata().name(),
            "a\ufffd"
            "b");
}

TEST(DocumentTest, EqualMessagesGiveEqualDocuments) {
  v1::NodeState first;
  v1::NodeState second;
  for (int i = 0; i < 50; ++i) {
    (*first.mutable_sysctls())["k" + std::to_string(i)] = std::to_string(i);
    (*second.mutable_sysctls())["k" + std::to_string(49 - i)] = std::to_string(49 - i);
  }
  EXPECT_EQ(toDocument(first), toDocument(second));
}

TEST(DocumentTest, RendersOtherSchemaMessages) {
  v1::AgentConfig config;
  config.set_state_file("/etc/nodewarden/node.yaml");
  config.mutable_healing()->set_crash_loop_restarts(5);
  config.mutable_metrics();
  EXPECT_EQ(nlohmann::json::parse(toDocument(config)),
            nlohmann::json::parse(R"({"stateFile": "/etc/nodewarden/node.yaml",
                                      "healing": {"crashLoopRestarts": 5}, "metrics": {}})"));
  expectMessageRoundTrips(config);
}

}  // namespace
}  // namespace nodewarden::state
