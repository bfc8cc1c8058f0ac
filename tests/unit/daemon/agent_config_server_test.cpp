// The control plane section of /etc/nodewarden/agent.yaml: what a node
// enrolls with, and each mistake refused at load rather than at enrollment.

#include "agent/daemon/agent_config.h"

#include <sched.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>

namespace nodewarden::daemon {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

constexpr char kToken[] = "abcdef.0123456789abcdef";
const std::string kHash = "sha256:" + std::string(64, 'a');

class AgentConfigServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char templ[] = "/tmp/nodewarden-agent-config-XXXXXX";
    ASSERT_NE(::mkdtemp(templ), nullptr);
    dir_ = templ;
    path_ = dir_ + "/agent.yaml";
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string write(const std::string& name, const std::string& text) {
    const std::string path = dir_ + "/" + name;
    std::ofstream(path) << text;
    return path;
  }

  core::Result<AgentConfig> load(const std::string& yaml) {
    write("agent.yaml", yaml);
    return loadAgentConfig(path_);
  }

  // The connection `yaml` configures; fails the test when it does not load.
  ServerConnection connectionOf(const std::string& yaml) {
    auto config = load(yaml);
    EXPECT_TRUE(config.isOk()) << config.status().message();
    return config.isOk() ? config->connection : ServerConnection{};
  }

  // The error loading `yaml` gives; fails the test when it loads.
  std::string errorOf(const std::string& yaml) {
    auto config = load(yaml);
    EXPECT_FALSE(config.isOk()) << yaml;
    if (config.isOk()) return "";
    EXPECT_EQ(config.status().code(), core::Status::Code::kInvalidArgument);
    return config.status().message();
  }

  static std::string hostName() {
    char host[256] = {};
    EXPECT_EQ(::gethostname(host, sizeof(host) - 1), 0);
    std::string name = host;
    std::transform(name.begin(), name.end(), name.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return name;
  }

  std::string dir_;
  std::string path_;
};

TEST_F(AgentConfigServerTest, WithoutAServerTheNodeRunsAlone) {
  auto config = loadAgentConfig(dir_ + "/absent.yaml");
  ASSERT_TRUE(config.isOk()) << config.status().message();
  EXPECT_TRUE(config->connection.server.empty());
  EXPECT_TRUE(config->connection.bootstrapToken.empty());
  EXPECT_TRUE(config->connection.caCertHash.empty());
  EXPECT_THAT(config->connection.labels, IsEmpty());
  EXPECT_EQ(config->connection.usageInterval, 1min);
}

TEST_F(AgentConfigServerTest, EveryConnectionFieldIsRead) {
  ServerConnection connection =
      connectionOf("server: nodewarden.example:9443\nbootstrapToken: " + std::string(kToken) +
                   "\ncaCertHash: " + kHash + "\n" + R"(nodeName: worker-7.rack-4
labels:
  zone: a
  role: gpu
usageInterval: 30s
)");
  EXPECT_EQ(connection.server, "nodewarden.example:9443");
  EXPECT_EQ(connection.bootstrapToken, kToken);
  EXPECT_EQ(connection.caCertHash, kHash);
  EXPECT_EQ(connection.nodeName, "worker-7.rack-4");
  EXPECT_EQ(connection.labels,
            (std::map<std::string, std::string>{{"role", "gpu"}, {"zone", "a"}}));
  EXPECT_EQ(connection.usageInterval, 30s);
}

TEST_F(AgentConfigServerTest, AServerAddressIsHostAndPort) {
  EXPECT_EQ(connectionOf("server: \"[fd00::1]:9443\"\ncaCertHash: " + kHash + "\n").server,
            "[fd00::1]:9443");
  for (const std::string server :
       {"nodewarden.example", ":9443", "nodewarden.example:", "nodewarden.example:grpc"}) {
    EXPECT_THAT(errorOf("server: \"" + server + "\"\ncaCertHash: " + kHash + "\n"),
                HasSubstr(path_ + ": server: \"" + server + "\" is not host:port"))
        << server;
  }
}

TEST_F(AgentConfigServerTest, AServerWithoutTheCaPinIsRefused) {
  EXPECT_THAT(
      errorOf("server: nodewarden.example:9443\nbootstrapToken: " + std::string(kToken) + "\n"),
      HasSubstr(path_ + ": caCertHash: is needed with server"));
}

TEST_F(AgentConfigServerTest, ACaPinIsSha256AndSixtyFourLowerCaseHexDigits) {
  for (const std::string& hash : {
           std::string(64, 'a'),                    // no algorithm
           "sha256:" + std::string(63, 'a'),        // short
           "sha256:" + std::string(65, 'a'),        // long
           "sha256:" + std::string(64, 'A'),        // upper case
           "sha256:" + std::string(63, 'a') + "g",  // not hex
           "sha1:" + std::string(64, 'a'),          // another algorithm
           "SHA256:" + std::string(64, 'a'),
       }) {
    EXPECT_THAT(errorOf("server: nodewarden.example:9443\ncaCertHash: \"" + hash + "\"\n"),
                HasSubstr(path_ + ": caCertHash: \"" + hash + "\" is not sha256:"))
        << hash;
  }
}

TEST_F(AgentConfigServerTest, AMalformedTokenIsRefused) {
  for (const std::string token : {
           "abcdef0123456789abcdef",    // no dot
           "abcdef.0123456789abcde",    // short
           "abcdef.0123456789abcdef0",  // long
           "ABCDEF.0123456789abcdef",   // upper case
           "abcdef-0123456789abcdef",   // another separator
           "abcdefg.123456789abcdef",   // the dot out of place
           "abc_ef.0123456789abcdef",
           // The right length with a second dot: the server would refuse it.
           "abcdef.0123456.89abcdef",
           "abcdef..123456789abcdef",
           "abcdef.0123456789abcde.",
       }) {
    EXPECT_THAT(errorOf("bootstrapToken: \"" + token + "\"\n"),
                HasSubstr(path_ + ": bootstrapToken: a bootstrap token looks like "
                                  "abcdef.0123456789abcdef"))
        << token;
  }
}

TEST_F(AgentConfigServerTest, ATokenAndATokenFileTogetherAreRefused) {
  const std::string file = write("token", std::string(kToken) + "\n");
  EXPECT_THAT(
      errorOf("bootstrapToken: " + std::string(kToken) + "\nbootstrapTokenFile: " + file + "\n"),
      HasSubstr(path_ + ": bootstrapTokenFile: give the token or a file holding it, "
                        "not both"));
}

TEST_F(AgentConfigServerTest, ATokenFileIsReadAndItsTrailingWhitespaceDropped) {
  for (const std::string& contents :
       {std::string(kToken), std::string(kToken) + "\n", std::string(kToken) + " \r\n\t\n"}) {
    const std::string file = write("token", contents);
    EXPECT_EQ(connectionOf("bootstrapTokenFile: " + file + "\n").bootstrapToken, kToken);
  }
}

TEST_F(AgentConfigServerTest, AMissingOrMalformedTokenFileIsRefusedByName) {
  EXPECT_THAT(errorOf("bootstrapTokenFile: " + dir_ + "/absent\n"),
              HasSubstr(path_ + ": bootstrapTokenFile: "));
  const std::string file = write("token", "not a token\n");
  EXPECT_THAT(errorOf("bootstrapTokenFile: " + file + "\n"),
              HasSubstr(path_ + ": bootstrapTokenFile: a bootstrap token looks like"));
}

TEST_F(AgentConfigServerTest, TheNodeNameIsTheHostNameUnlessGiven) {
  EXPECT_EQ(connectionOf("usageInterval: 5m\n").nodeName, hostName());
  EXPECT_EQ(connectionOf("nodeName: worker-1\n").nodeName, "worker-1");
}

TEST_F(AgentConfigServerTest, TheHostNameIsLowerCasedAsKubernetesNamesAre) {
  write("agent.yaml", "usageInterval: 5m\n");
  // A host name of our own needs a UTS namespace of our own: in a child.
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::close(fds[0]);
    if (::unshare(CLONE_NEWUTS) != 0 && ::unshare(CLONE_NEWUSER | CLONE_NEWUTS) != 0) _exit(2);
    constexpr std::string_view kHost = "Worker-7.Rack-4.EXAMPLE";
    if (::sethostname(kHost.data(), kHost.size()) != 0) _exit(2);
    auto config = loadAgentConfig(path_);
    const std::string name = config.isOk() ? config->connection.nodeName : "(error)";
    _exit(::write(fds[1], name.data(), name.size()) == ssize_t(name.size()) ? 0 : 1);
  }
  ::close(fds[1]);
  std::string name;
  char buffer[256];
  for (ssize_t n; (n = ::read(fds[0], buffer, sizeof(buffer))) > 0;) name.append(buffer, size_t(n));
  ::close(fds[0]);
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  if (WEXITSTATUS(status) == 2) GTEST_SKIP() << "cannot have a host name of our own here";
  ASSERT_EQ(WEXITSTATUS(status), 0);
  EXPECT_EQ(name, "worker-7.rack-4.example");
}

TEST_F(AgentConfigServerTest, TheUsageIntervalIsAPositiveDuration) {
  EXPECT_EQ(connectionOf("usageInterval: 1h30m\n").usageInterval, 90min);
  EXPECT_THAT(errorOf("usageInterval: 0s\n"),
              HasSubstr(path_ + ": usageInterval: must be longer than 0"));
  EXPECT_THAT(errorOf("usageInterval: often\n"),
              HasSubstr(path_ + ": usageInterval: \"often\" is not a duration"));
}

TEST_F(AgentConfigServerTest, LabelsAreStringsByLineAndColumn) {
  EXPECT_THAT(errorOf("labels:\n  zone: [a, b]\n"),
              ::testing::ContainsRegex("^" + path_ + ":2:[0-9]+: labels"));
}

}  // namespace
}  // namespace nodewarden::daemon
