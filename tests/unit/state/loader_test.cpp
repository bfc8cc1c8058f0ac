#include "agent/state/loader.h"

#include <fcntl.h>
#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "tests/unit/state/state_test_support.h"

namespace nodewarden::state {
namespace {

using test::errorsOf;
using test::kHeader;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr std::string_view kFullDocument = R"(apiVersion: nodewarden.io/v1
kind: NodeState
metadata:
  name: worker
  labels:
    role: worker
    nodewarden.io/pool: general
directories:
  - path: /etc/containerd
    mode: "0755"
files:
  - path: /etc/containerd/config.toml
    content: |
      version = 2
    mode: "0644"
    owner: root
  - path: /etc/old.conf
    ensure: absent
  - path: /usr/local/bin/x
    contentBase64: aGVsbG8=
    mode: 0755
    group: "0"
units:
  - name: containerd.service
    content: |
      [Service]
      ExecStart=/usr/bin/containerd
    dropIns:
      - name: 10-limits.conf
        content: "[Service]\nLimitNOFILE=1048576\n"
    enabled: true
    state: running
    restartOn: [/etc/containerd/config.toml]
  - name: kubelet.service
    enabled: false
    state: stopped
)";

TEST(LoaderTest, FullDocumentMapsOntoTheProto) {
  LoadResult result = loadString(kFullDocument, "node.yaml");
  ASSERT_TRUE(result.ok()) << (result.errors.empty() ? "" : result.errors.front().toString());
  EXPECT_TRUE(result.errors.empty());
  const v1::NodeState& state = *result.state;

  EXPECT_EQ(state.api_version(), "nodewarden.io/v1");
  EXPECT_EQ(state.kind(), "NodeState");
  EXPECT_EQ(state.metadata().name(), "worker");
  ASSERT_EQ(state.metadata().labels_size(), 2);
  EXPECT_EQ(state.metadata().labels().at("role"), "worker");
  EXPECT_EQ(state.metadata().labels().at("nodewarden.io/pool"), "general");

  ASSERT_EQ(state.directories_size(), 1);
  EXPECT_EQ(state.directories(0).path(), "/etc/containerd");
  ASSERT_TRUE(state.directories(0).has_mode());
  EXPECT_EQ(state.directories(0).mode(), 0755u);
  EXPECT_EQ(state.directories(0).ensure(), v1::ENSURE_UNSPECIFIED);

  ASSERT_EQ(state.files_size(), 3);
  const v1::File& config = state.files(0);
  EXPECT_EQ(config.path(), "/etc/containerd/config.toml");
  EXPECT_EQ(config.source_case(), v1::File::kContent);
  EXPECT_EQ(config.content(), "version = 2\n");
  EXPECT_EQ(config.mode(), 0644u);
  EXPECT_EQ(config.owner(), "root");
  EXPECT_EQ(config.group(), "");

  const v1::File& old = state.files(1);
  EXPECT_EQ(old.ensure(), v1::ENSURE_ABSENT);
  EXPECT_EQ(old.source_case(), v1::File::SOURCE_NOT_SET);
  EXPECT_FALSE(old.has_mode());

  const v1::File& binary = state.files(2);
  EXPECT_EQ(binary.content_base64(), "aGVsbG8=");
  EXPECT_EQ(binary.mode(), 0755u);
  EXPECT_EQ(binary.group(), "0");

  ASSERT_EQ(state.units_size(), 2);
  const v1::Unit& containerd = state.units(0);
  EXPECT_EQ(containerd.name(), "containerd.service");
  ASSERT_TRUE(containerd.has_content());
  EXPECT_EQ(containerd.content(), "[Service]\nExecStart=/usr/bin/containerd\n");
  ASSERT_EQ(containerd.drop_ins_size(), 1);
  EXPECT_EQ(containerd.drop_ins(0).name(), "10-limits.conf");
  EXPECT_EQ(containerd.drop_ins(0).content(), "[Service]\nLimitNOFILE=1048576\n");
  ASSERT_TRUE(containerd.has_enabled());
  EXPECT_TRUE(containerd.enabled());
  EXPECT_EQ(containerd.state(), v1::UNIT_STATE_RUNNING);
  ASSERT_EQ(containerd.restart_on_size(), 1);
  EXPECT_EQ(containerd.restart_on(0), "/etc/containerd/config.toml");

  const v1::Unit& kubelet = state.units(1);
  EXPECT_FALSE(kubelet.has_content());
  ASSERT_TRUE(kubelet.has_enabled());
  EXPECT_FALSE(kubelet.enabled());
  EXPECT_EQ(kubelet.state(), v1::UNIT_STATE_STOPPED);
}

TEST(LoaderTest, LeftOutFieldsKeepTheirDefaultsAndPresence) {
  LoadResult result = loadString(std::string(kHeader) +
                                     "files:\n"
                                     "  - path: /etc/a\n"
                                     "units:\n"
                                     "  - name: a.service\n",
                                 "node.yaml");
  ASSERT_TRUE(result.ok());
  EXPECT_FALSE(result.state->files(0).has_mode());
  EXPECT_EQ(result.state->files(0).ensure(), v1::ENSURE_UNSPECIFIED);
  EXPECT_FALSE(result.state->units(0).has_enabled());
  EXPECT_FALSE(result.state->units(0).has_content());
  EXPECT_EQ(result.state->units(0).state(), v1::UNIT_STATE_UNSPECIFIED);
}

TEST(LoaderTest, HeaderIsAllAValidDocumentNeeds) {
  LoadResult result = loadString(kHeader, "node.yaml");
  ASSERT_TRUE(result.ok());
  EXPECT_EQ(result.state->files_size(), 0);
}

TEST(LoaderTest, WrongApiVersionAndKindPointAtTheirValues) {
  LoadResult result = loadString("apiVersion: nodewarden.io/v2\nkind: Node\n", "node.yaml");
  EXPECT_FALSE(result.ok());
  EXPECT_FALSE(result.state.has_value());
  std::vector<std::string> errors;
  for (const auto& e : result.errors) errors.push_back(e.toString());
  EXPECT_THAT(errors,
              ElementsAre("node.yaml:1:13: apiVersion: \"nodewarden.io/v2\" is not a supported "
                          "version; expected nodewarden.io/v1",
                          "node.yaml:2:7: kind: \"Node\" is not a kind this agent reads; expected "
                          "NodeState"));
}

TEST(LoaderTest, MissingApiVersionAndKindPointAtTheDocument) {
  LoadResult result = loadString("metadata:\n  name: worker\n", "node.yaml");
  ASSERT_EQ(result.errors.size(), 2u);
  EXPECT_EQ(result.errors[0].toString(),
            "node.yaml:1:1: apiVersion: required; write apiVersion: nodewarden.io/v1");
  EXPECT_EQ(result.errors[1].toString(), "node.yaml:1:1: kind: required; write kind: NodeState");
}

TEST(LoaderTest, EmptyDocumentIsAClearError) {
  for (std::string_view text : {"", "# nothing yet\n", "---\n", "~\n"}) {
    LoadResult result = loadString(text, "node.yaml");
    ASSERT_EQ(result.errors.size(), 1u) << text;
    EXPECT_EQ(result.errors[0].toString(),
              "node.yaml: the document is empty; a state starts with apiVersion: "
              "nodewarden.io/v1 and kind: NodeState")
        << text;
  }
}

TEST(LoaderTest, TopLevelMustBeAMapping) {
  LoadResult result = loadString("- apiVersion: nodewarden.io/v1\n", "node.yaml");
  ASSERT_EQ(result.errors.size(), 1u);
  EXPECT_EQ(result.errors[0].toString(), "node.yaml:1:1: expected a mapping, got a sequence");
}

TEST(LoaderTest, SecondDocumentIsAnError) {
  LoadResult result =
      loadString(std::string(kHeader) + "---\n" + std::string(kHeader), "node.yaml");
  ASSERT_EQ(result.errors.size(), 1u);
  EXPECT_EQ(result.errors[0].toString(),
            "node.yaml:4:1: a second document; a state file holds one NodeState");
}

TEST(LoaderTest, SyntaxErrorCarriesItsPosition) {
  LoadResult result = loadString(std::string(kHeader) + "files: [\n  {path: /a}\n", "node.yaml");
  ASSERT_EQ(result.errors.size(), 1u);
  const Diagnostic& error = result.errors[0];
  EXPECT_EQ(error.file, "node.yaml");
  EXPECT_EQ(error.line, 5);
  EXPECT_EQ(error.column, 1);
  EXPECT_EQ(error.path, "");
  EXPECT_EQ(error.toString(),
            "node.yaml:5:1: did not find expected ',' or ']' (while parsing a flow sequence at "
            "node.yaml:3:8)");
}

TEST(LoaderTest, SyntaxErrorInsideAMapping) {
  EXPECT_THAT(errorsOf("metadata:\n  name: a: b\n"),
              ElementsAre("node.yaml:4:10: mapping values are not allowed in this context"));
}

TEST(LoaderTest, UnknownFieldSuggestsTheNearestName) {
  EXPECT_THAT(errorsOf("files:\n"
                       "  - path: /etc/a\n"
                       "    contnet: x\n"),
              ElementsAre("node.yaml:5:5: files[0].contnet: unknown field; did you mean "
                          "\"content\"?"));
}

TEST(LoaderTest, UnknownFieldSuggestionCoversCaseAndSnakeCase) {
  EXPECT_THAT(errorsOf("units:\n"
                       "  - name: a.service\n"
                       "    restart_on: []\n"
                       "    dropins: []\n"
                       "    status: running\n"),
              ElementsAre("node.yaml:5:5: units[0].restart_on: unknown field; did you mean "
                          "\"restartOn\"?",
                          "node.yaml:6:5: units[0].dropins: unknown field; did you mean "
                          "\"dropIns\"?",
                          "node.yaml:7:5: units[0].status: unknown field; did you mean "
                          "\"state\"?"));
}

TEST(LoaderTest, UnknownFieldFarFromAnyListsTheValidOnes) {
  EXPECT_THAT(errorsOf("metadata:\n  colour: blue\n"),
              ElementsAre("node.yaml:4:3: metadata.colour: unknown field; expected one of: "
                          "name, labels"));
}

TEST(LoaderTest, CollectsEveryErrorInOnePass) {
  EXPECT_THAT(errorsOf("directories:\n"
                       "  - path: /etc/a\n"
                       "    mode: 0999\n"
                       "files:\n"
                       "  - path: /etc/b\n"
                       "    ensure: gone\n"
                       "  - path: etc/c\n"
                       "units:\n"
                       "  - name: a.service\n"
                       "    enabled: yes\n"
                       "    extra: 1\n"),
              ElementsAre("node.yaml:5:11: directories[0].mode: 0999 is not an octal mode",
                          "node.yaml:8:13: files[0].ensure: \"gone\" is not valid; expected one "
                          "of: present, absent",
                          "node.yaml:9:11: files[1].path: etc/c is not an absolute path",
                          "node.yaml:12:14: units[0].enabled: yes is not a boolean; write true "
                          "or false (YAML 1.2: yes, no, on and off are strings)",
                          "node.yaml:13:5: units[0].extra: unknown field; expected one of: name, "
                          "content, dropIns, enabled, state, restartOn, probe"));
}

TEST(LoaderTest, OneofMembersAreExclusive) {
  EXPECT_THAT(errorsOf("files:\n"
                       "  - path: /etc/a\n"
                       "    content: hello\n"
                       "    contentBase64: aGVsbG8=\n"),
              ElementsAre("node.yaml:6:5: files[0].contentBase64: \"content\" and "
                          "\"contentBase64\" are alternatives; set only one"));
}

TEST(LoaderTest, EnumsAreWrittenWithoutTheirPrefixInAnyCase) {
  LoadResult result = loadString(std::string(kHeader) +
                                     "files:\n"
                                     "  - path: /etc/a\n"
                                     "    ensure: Present\n"
                                     "units:\n"
                                     "  - name: a.service\n"
                                     "    state: STOPPED\n"
                                     "  - name: b.service\n"
                                     "    state: \"running\"\n",
                                 "node.yaml");
  ASSERT_TRUE(result.ok()) << result.errors.front().toString();
  EXPECT_EQ(result.state->files(0).ensure(), v1::ENSURE_PRESENT);
  EXPECT_EQ(result.state->units(0).state(), v1::UNIT_STATE_STOPPED);
  EXPECT_EQ(result.state->units(1).state(), v1::UNIT_STATE_RUNNING);
}

TEST(LoaderTest, UnspecifiedEnumValueIsNotWritable) {
  EXPECT_THAT(errorsOf("units:\n"
                       "  - name: a.service\n"
                       "    state: unspecified\n"
                       "  - name: b.service\n"
                       "    state: UNIT_STATE_RUNNING\n"),
              ElementsAre("node.yaml:5:12: units[0].state: \"unspecified\" is not valid; "
                          "expected one of: running, stopped",
                          "node.yaml:7:12: units[1].state: \"UNIT_STATE_RUNNING\" is not valid; "
                          "expected one of: running, stopped"));
}

TEST(LoaderTest, OctalModesAcceptTheUsualSpellings) {
  LoadResult result = loadString(std::string(kHeader) +
                                     "directories:\n"
                                     "  - {path: /a, mode: 0644}\n"
                                     "  - {path: /b, mode: \"0644\"}\n"
                                     "  - {path: /c, mode: \"644\"}\n"
                                     "  - {path: /d, mode: \"01777\"}\n"
                                     "  - {path: /e, mode: 0o750}\n"
                                     "  - {path: /f, mode: 0}\n",
                                 "node.yaml");
  ASSERT_TRUE(result.ok()) << result.errors.front().toString();
  const auto& d = result.state->directories();
  EXPECT_EQ(d[0].mode(), 0644u);
  EXPECT_EQ(d[1].mode(), 0644u);
  EXPECT_EQ(d[2].mode(), 0644u);
  EXPECT_EQ(d[3].mode(), 01777u);
  EXPECT_EQ(d[4].mode(), 0750u);
  ASSERT_TRUE(d[5].has_mode());
  EXPECT_EQ(d[5].mode(), 0u);
}

TEST(LoaderTest, OctalModesRejectOtherDigitsAndLargeValues) {
  EXPECT_THAT(errorsOf("directories:\n"
                       "  - path: /a\n"
                       "    mode: 0999\n"
                       "  - path: /b\n"
                       "    mode: 017777\n"
                       "  - path: /c\n"
                       "    mode: \"rw-r--r--\"\n"
                       "  - path: /d\n"
                       "    mode: -1\n"
                       "  - path: /e\n"
                       "    mode: [0644]\n"),
              ElementsAre("node.yaml:5:11: directories[0].mode: 0999 is not an octal mode",
                          "node.yaml:7:11: directories[1].mode: 017777 is greater than 07777",
                          "node.yaml:9:11: directories[2].mode: rw-r--r-- is not an octal mode",
                          "node.yaml:11:11: directories[3].mode: -1 is not an octal mode",
                          "node.yaml:13:11: directories[4].mode: expected an octal mode like "
                          "0644, got a sequence"));
}

TEST(LoaderTest, BooleansFollowYaml12) {
  EXPECT_THAT(errorsOf("units:\n"
                       "  - name: a.service\n"
                       "    enabled: \"true\"\n"
                       "  - name: b.service\n"
                       "    enabled: on\n"),
              ElementsAre("node.yaml:5:14: units[0].enabled: expected true or false, got the "
                          "quoted string \"true\"; write it without quotes",
                          "node.yaml:7:14: units[1].enabled: on is not a boolean; write true or "
                          "false (YAML 1.2: yes, no, on and off are strings)"));
}

TEST(LoaderTest, StringFieldsTakeAnyScalarButNotNullOrCollections) {
  LoadResult ok =
      loadString(std::string(kHeader) + "files:\n  - {path: /a, owner: 0}\n", "node.yaml");
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(ok.state->files(0).owner(), "0");

  EXPECT_THAT(errorsOf("files:\n"
                       "  - path: /a\n"
                       "    content:\n"
                       "    owner: {name: root}\n"),
              ElementsAre("node.yaml:5:5: files[0].content: expected a string, got null; write "
                          "\"\" for an empty string",
                          "node.yaml:6:12: files[0].owner: expected a string, got a mapping"));
}

// Operators write kernel parameters as YAML numbers and booleans; the kernel
// takes their text.
TEST(LoaderTest, SysctlValuesTakeBareScalarsAsWritten) {
  LoadResult result = loadString(std::string(kHeader) +
                                     "kernelModules: [overlay, br_netfilter]\n"
                                     "sysctls:\n"
                                     "  net.ipv4.ip_forward: 1\n"
                                     "  vm.overcommit_ratio: 050\n"
                                     "  kernel.panic_on_oops: true\n"
                                     "  net.ipv4.ip_local_port_range: 32768 60999\n"
                                     "  vm.dirty_ratio: \"10\"\n",
                                 "node.yaml");
  ASSERT_TRUE(result.ok()) << result.errors.front().toString();
  EXPECT_THAT(result.state->kernel_modules(), ElementsAre("overlay", "br_netfilter"));
  const auto& sysctls = result.state->sysctls();
  EXPECT_EQ(sysctls.at("net.ipv4.ip_forward"), "1");
  EXPECT_EQ(sysctls.at("vm.overcommit_ratio"), "050");
  EXPECT_EQ(sysctls.at("kernel.panic_on_oops"), "true");
  EXPECT_EQ(sysctls.at("net.ipv4.ip_local_port_range"), "32768 60999");
  EXPECT_EQ(sysctls.at("vm.dirty_ratio"), "10");

  EXPECT_THAT(errorsOf("sysctls:\n"
                       "  net.ipv4.ip_forward:\n"
                       "  vm.swappiness: [1]\n"),
              ElementsAre("node.yaml:4:3: sysctls[\"net.ipv4.ip_forward\"]: expected a string, "
                          "got null; write \"\" for an empty string",
                          "node.yaml:5:18: sysctls[\"vm.swappiness\"]: expected a string, got a "
                          "sequence"));
}

TEST(LoaderTest, SequencesAndMappingsMustHaveTheirShape) {
  EXPECT_THAT(errorsOf("metadata: worker\n"
                       "files:\n"
                       "  path: /etc/a\n"
                       "units:\n"
                       "  - name: a.service\n"
                       "    restartOn: /etc/a\n"),
              ElementsAre("node.yaml:3:11: metadata: expected a mapping, got \"worker\"",
                          "node.yaml:5:3: files: expected a sequence, got a mapping",
                          "node.yaml:8:16: units[0].restartOn: expected a sequence, got "
                          "\"/etc/a\""));
}

TEST(LoaderTest, EmptyCollectionsAreEmpty) {
  LoadResult result =
      loadString(std::string(kHeader) + "files:\nunits: []\nmetadata:\n", "node.yaml");
  ASSERT_TRUE(result.ok()) << result.errors.front().toString();
  EXPECT_EQ(result.state->files_size(), 0);
  EXPECT_FALSE(result.state->has_metadata());
}

TEST(LoaderTest, DuplicateKeysAreErrors) {
  EXPECT_THAT(errorsOf("metadata:\n"
                       "  name: a\n"
                       "  labels: {role: x, role: y}\n"
                       "  name: b\n"),
              ElementsAre("node.yaml:5:21: metadata.labels[\"role\"]: duplicate key; first set "
                          "at node.yaml:5:12",
                          "node.yaml:6:3: metadata.name: duplicate field; first set at "
                          "node.yaml:4:3"));
}

TEST(LoaderTest, MapValuesMustBeScalars) {
  EXPECT_THAT(errorsOf("metadata:\n  labels:\n    role: [a]\n"),
              ElementsAre("node.yaml:5:11: metadata.labels[\"role\"]: expected a string, got a "
                          "sequence"));
}

TEST(LoaderTest, BadElementKeepsTheIndicesOfTheOthers) {
  EXPECT_THAT(errorsOf("files:\n"
                       "  - /etc/a\n"
                       "  - path: etc/b\n"
                       "units:\n"
                       "  - name: a.service\n"
                       "    restartOn: [[x], relative]\n"),
              ElementsAre("node.yaml:4:5: files[0]: expected a mapping, got \"/etc/a\"",
                          "node.yaml:5:11: files[1].path: etc/b is not an absolute path",
                          "node.yaml:8:17: units[0].restartOn[0]: expected a string, got a "
                          "sequence",
                          "node.yaml:8:22: units[0].restartOn[1]: relative is neither an "
                          "absolute path nor a package declared in this state"));
}

TEST(LoaderTest, AliasesMayShareContent) {
  LoadResult result = loadString(std::string(kHeader) +
                                     "files:\n"
                                     "  - {path: /a, content: &shared \"x = 1\\n\"}\n"
                                     "  - {path: /b, content: *shared}\n",
                                 "node.yaml");
  ASSERT_TRUE(result.ok());
  EXPECT_EQ(result.state->files(1).content(), "x = 1\n");
}

bool hasBoundError(const LoadResult& result) {
  for (const auto& e : result.errors) {
    if (e.message == "the document expands (through aliases) beyond the size limit of a state") {
      return true;
    }
  }
  return false;
}

TEST(LoaderTest, AliasesCannotMultiplyContent) {
  // 600 references to 64 KiB: 38 MiB of strings from an 88 KiB document.
  std::string yaml(kHeader);
  yaml += "files:\n  - {path: /f0, content: &big " + std::string(64 << 10, 'x') + "}\n";
  for (int i = 1; i < 600; ++i) yaml += "  - {path: /f" + std::to_string(i) + ", content: *big}\n";
  LoadResult result = loadString(yaml, "node.yaml");
  ASSERT_FALSE(result.ok());
  EXPECT_TRUE(hasBoundError(result));
}

TEST(LoaderTest, AliasesCannotMultiplyNodes) {
  // Two nested levels of 2000 references: four million drop-ins from 22 KiB.
  std::string yaml = std::string(kHeader) + "units:\n  - &u {name: a.service, dropIns: [";
  for (int i = 0; i < 2000; ++i) yaml += i == 0 ? "&d {name: a.conf}" : ", *d";
  yaml += "]}\n";
  for (int i = 1; i < 2000; ++i) yaml += "  - *u\n";
  LoadResult result = loadString(yaml, "node.yaml");
  ASSERT_FALSE(result.ok());
  EXPECT_TRUE(hasBoundError(result));
  EXPECT_EQ(result.errors.size(), 1u) << "a partial state is not validated";
}

TEST(LoaderTest, SelfReferentialAliasIsRejected) {
  LoadResult result = loadString(
      std::string(kHeader) + "units:\n  - name: a.service\n    restartOn: &r [*r]\n", "node.yaml");
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.errors[0].path, "units[0].restartOn[0]");
}

TEST(LoaderTest, ErrorsAreBounded) {
  std::string yaml(kHeader);
  yaml += "files:\n";
  for (int i = 0; i < 300; ++i) yaml += "  - path: relative\n";
  LoadResult result = loadString(yaml, "node.yaml");
  ASSERT_EQ(result.errors.size(), kMaxDiagnostics + 1);
  EXPECT_EQ(result.errors.back().toString(), "node.yaml: 200 more errors not shown");
}

TEST(LoaderTest, DocumentLargerThanTheLimitIsRefusedBeforeParsing) {
  std::string yaml(kMaxDocumentBytes + 1, '#');
  LoadResult result = loadString(yaml, "node.yaml");
  ASSERT_EQ(result.errors.size(), 1u);
  EXPECT_EQ(result.errors[0].toString(),
            "node.yaml: the document is 16777217 bytes; a state is limited to 16 MiB (16777216 "
            "bytes)");
}

class LoadFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char templ[] = "/tmp/nodewarden-state-XXXXXX";
    ASSERT_NE(::mkdtemp(templ), nullptr);
    dir_ = templ;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string dir_;
};

TEST_F(LoadFileTest, ReadsAndNamesTheFileInErrors) {
  const std::string path = dir_ + "/node.yaml";
  std::ofstream(path) << kHeader << "files:\n  - path: relative\n";
  LoadResult result = loadFile(path);
  ASSERT_EQ(result.errors.size(), 1u);
  EXPECT_EQ(result.errors[0].toString(),
            path + ":4:11: files[0].path: relative is not an absolute path");
}

TEST_F(LoadFileTest, LoadsAValidFile) {
  const std::string path = dir_ + "/node.yaml";
  std::ofstream(path) << kFullDocument;
  LoadResult result = loadFile(path);
  ASSERT_TRUE(result.ok());
  EXPECT_EQ(result.state->units_size(), 2);
}

TEST_F(LoadFileTest, MissingFileIsOneError) {
  LoadResult result = loadFile(dir_ + "/missing.yaml");
  ASSERT_EQ(result.errors.size(), 1u);
  EXPECT_EQ(result.errors[0].toString(),
            "open " + dir_ + "/missing.yaml: No such file or directory");
}

TEST_F(LoadFileTest, LargeFileIsRefusedWithoutReadingIt) {
  const std::string path = dir_ + "/big.yaml";
  int fd = ::open(path.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::ftruncate(fd, kMaxDocumentBytes + 1), 0);  // sparse: no 16 MiB written
  ::close(fd);
  LoadResult result = loadFile(path);
  ASSERT_EQ(result.errors.size(), 1u);
  EXPECT_THAT(result.errors[0].toString(), HasSubstr("is larger than 16777216 bytes"));
}

}  // namespace
}  // namespace nodewarden::state
