// /etc/nodewarden/server.yaml: the defaults an operator gets without one,
// every field read, and each mistake refused with where it is.

#include "server/cmd/server_config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>

namespace nodewarden::server {
namespace {

using namespace std::chrono_literals;
using ::testing::AllOf;
using ::testing::ContainsRegex;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

class ServerConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char templ[] = "/tmp/nodewarden-server-config-XXXXXX";
    ASSERT_NE(::mkdtemp(templ), nullptr);
    dir_ = templ;
    path_ = dir_ + "/server.yaml";
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  core::Result<ServerConfig> load(const std::string& yaml) {
    std::ofstream(path_) << yaml;
    return loadServerConfig(path_);
  }

  // The error loading `yaml` gives; fails the test when it loads.
  std::string errorOf(const std::string& yaml) {
    auto config = load(yaml);
    EXPECT_FALSE(config.isOk()) << yaml;
    if (config.isOk()) return "";
    EXPECT_EQ(config.status().code(), core::Status::Code::kInvalidArgument);
    return config.status().message();
  }

  std::string dir_;
  std::string path_;
};

TEST_F(ServerConfigTest, AMissingFileIsTheDefaults) {
  auto config = loadServerConfig(dir_ + "/absent.yaml");
  ASSERT_TRUE(config.isOk()) << config.status().message();
  EXPECT_EQ(config->listen, "0.0.0.0:9443");
  EXPECT_EQ(config->adminSocket, kDefaultAdminSocket);
  EXPECT_EQ(config->stateDirectory, "/var/lib/nodewarden-server");
  EXPECT_THAT(config->serverNames, IsEmpty());
  EXPECT_TRUE(config->caCertificateFile.empty());
  EXPECT_TRUE(config->caKeyFile.empty());
  EXPECT_EQ(config->nodeCertificateValidity, 24h * 365);
  EXPECT_EQ(config->logLevel, spdlog::level::info);
  EXPECT_EQ(config->limits.diskPercent, 85u);
  EXPECT_EQ(config->limits.notSeenFor, 2min);
  EXPECT_TRUE(config->limits.crashLooping);
  EXPECT_THAT(config->groupLimits, IsEmpty());
  EXPECT_TRUE(config->webhookUrl.empty());
  EXPECT_EQ(config->alertCheckInterval, 15s);
}

TEST_F(ServerConfigTest, EveryFieldIsRead) {
  auto config = load(R"(listen: "[::]:8443"
adminSocket: /run/nw/admin.sock
stateDirectory: /srv/nodewarden
serverNames: [nodewarden.example, 10.0.0.5]
caCertificateFile: /etc/nodewarden/ca.crt
caKeyFile: /etc/nodewarden/ca.key
nodeCertificateValidity: 720h
logLevel: debug
alerting:
  limits:
    diskPercent: 70
    notSeenFor: 5m
    crashLooping: false
  webhookUrl: https://hooks.example/nodewarden
  checkInterval: 1m
)");
  ASSERT_TRUE(config.isOk()) << config.status().message();
  EXPECT_EQ(config->listen, "[::]:8443");
  EXPECT_EQ(config->adminSocket, "/run/nw/admin.sock");
  EXPECT_EQ(config->stateDirectory, "/srv/nodewarden");
  EXPECT_EQ(config->serverNames, (std::vector<std::string>{"nodewarden.example", "10.0.0.5"}));
  EXPECT_EQ(config->caCertificateFile, "/etc/nodewarden/ca.crt");
  EXPECT_EQ(config->caKeyFile, "/etc/nodewarden/ca.key");
  EXPECT_EQ(config->nodeCertificateValidity, 720h);
  EXPECT_EQ(config->logLevel, spdlog::level::debug);
  EXPECT_EQ(config->limits.diskPercent, 70u);
  EXPECT_EQ(config->limits.notSeenFor, 5min);
  EXPECT_FALSE(config->limits.crashLooping);
  EXPECT_EQ(config->webhookUrl, "https://hooks.example/nodewarden");
  EXPECT_EQ(config->alertCheckInterval, 1min);
}

TEST_F(ServerConfigTest, AListenAddressNeedsAHostAndANumericPort) {
  for (const std::string listen : {"localhost", "localhost:", "localhost:https", "9443"}) {
    EXPECT_THAT(errorOf("listen: \"" + listen + "\"\n"),
                HasSubstr(path_ + ": listen: \"" + listen + "\" is not host:port"))
        << listen;
  }
}

TEST_F(ServerConfigTest, PathsAreAbsolute) {
  for (const std::string field : {"adminSocket", "stateDirectory"}) {
    EXPECT_THAT(errorOf(field + ": run/admin.sock\n"),
                HasSubstr(path_ + ": " + field + ": \"run/admin.sock\" is not an absolute path"));
  }
  EXPECT_THAT(errorOf("caCertificateFile: ca.crt\ncaKeyFile: /etc/ca.key\n"),
              HasSubstr(path_ + ": caCertificateFile: \"ca.crt\" is not an absolute path"));
  EXPECT_THAT(errorOf("caCertificateFile: /etc/ca.crt\ncaKeyFile: ca.key\n"),
              HasSubstr(path_ + ": caKeyFile: \"ca.key\" is not an absolute path"));
}

TEST_F(ServerConfigTest, AGivenCaNeedsBothItsFiles) {
  EXPECT_THAT(errorOf("caCertificateFile: /etc/ca.crt\n"),
              HasSubstr(path_ + ": caKeyFile: a given CA needs both"));
  EXPECT_THAT(errorOf("caKeyFile: /etc/ca.key\n"),
              HasSubstr(path_ + ": caCertificateFile: a given CA needs both"));
}

TEST_F(ServerConfigTest, ADiskLimitIsAPercentage) {
  EXPECT_THAT(errorOf("alerting:\n  limits:\n    diskPercent: 101\n"),
              HasSubstr(path_ + ": alerting.limits.diskPercent: is a percentage"));
  auto hundred = load("alerting:\n  limits:\n    diskPercent: 100\n");
  ASSERT_TRUE(hundred.isOk()) << hundred.status().message();
  EXPECT_EQ(hundred->limits.diskPercent, 100u);
}

TEST_F(ServerConfigTest, DurationsAreWrittenWithUnitsAndPositive) {
  EXPECT_THAT(errorOf("nodeCertificateValidity: a year\n"),
              HasSubstr(path_ + ": nodeCertificateValidity: \"a year\" is not a duration"));
  EXPECT_THAT(errorOf("alerting:\n  limits:\n    notSeenFor: 5\n"),
              HasSubstr(path_ + ": alerting.limits.notSeenFor: "));
  EXPECT_THAT(errorOf("alerting:\n  checkInterval: 0s\n"),
              HasSubstr(path_ + ": alerting.checkInterval: must be longer than 0"));
}

TEST_F(ServerConfigTest, AWebhookIsAnHttpUrl) {
  for (const std::string url : {"hooks.example/alerts", "ftp://hooks.example/alerts"}) {
    EXPECT_THAT(errorOf("alerting:\n  webhookUrl: " + url + "\n"),
                HasSubstr(path_ + ": alerting.webhookUrl: \"" + url +
                          "\" is not an http:// or https:// URL"));
  }
  auto http = load("alerting:\n  webhookUrl: http://10.0.0.1:8080/alerts\n");
  ASSERT_TRUE(http.isOk()) << http.status().message();
  EXPECT_EQ(http->webhookUrl, "http://10.0.0.1:8080/alerts");
}

TEST_F(ServerConfigTest, AnUnknownLogLevelIsRefused) {
  EXPECT_THAT(errorOf("logLevel: verbose\n"),
              HasSubstr(path_ + ": logLevel: \"verbose\" is not one of"));
}

TEST_F(ServerConfigTest, MistakesInTheDocumentAreGivenByLineAndColumn) {
  EXPECT_THAT(errorOf("listen: 0.0.0.0:9443\nalerting:\n  limits:\n    diskPercnt: 90\n"),
              ContainsRegex("^" + path_ + ":4:5: .*diskPercnt"));
  EXPECT_THAT(errorOf("alerting:\n  limits:\n    diskPercent: lots\n"),
              ContainsRegex("^" + path_ + ":3:18: alerting.limits.diskPercent"));
}

TEST_F(ServerConfigTest, EveryMistakeIsListed) {
  const std::string error =
      errorOf("listen: nowhere\nstateDirectory: relative\nalerting:\n  webhookUrl: x\n");
  EXPECT_THAT(error, AllOf(HasSubstr("listen: "), HasSubstr("stateDirectory: "),
                           HasSubstr("alerting.webhookUrl: ")));
}

TEST_F(ServerConfigTest, AnUnreadableFileIsAnErrorNotTheDefaults) {
  std::filesystem::create_directory(path_);
  auto config = loadServerConfig(path_);
  EXPECT_FALSE(config.isOk());
}

TEST_F(ServerConfigTest, AGroupsLimitsStartFromTheFleetsAndAreChecked) {
  auto config = load(R"(alerting:
  limits:
    diskPercent: 80
    notSeenFor: 3m
  groupLimits:
    - group: gpu
      limits:
        diskPercent: 95
        notSeenFor: 10m
    - group: edge
      limits:
        crashLooping: false
)");
  ASSERT_TRUE(config.isOk()) << config.status().message();
  ASSERT_EQ(config->groupLimits.size(), 2u);
  EXPECT_EQ(config->groupLimits.at("gpu").diskPercent, 95u);
  EXPECT_EQ(config->groupLimits.at("gpu").notSeenFor, std::chrono::minutes(10));
  EXPECT_TRUE(config->groupLimits.at("gpu").crashLooping);
  EXPECT_EQ(config->groupLimits.at("edge").diskPercent, 80u);
  EXPECT_EQ(config->groupLimits.at("edge").notSeenFor, std::chrono::minutes(3));
  EXPECT_FALSE(config->groupLimits.at("edge").crashLooping);

  auto twice = load("alerting:\n  groupLimits:\n    - group: gpu\n    - group: gpu\n");
  ASSERT_FALSE(twice.isOk());
  EXPECT_THAT(twice.status().message(),
              ::testing::HasSubstr("alerting.groupLimits[1].group: \"gpu\" has limits already"));
  auto percent =
      load("alerting:\n  groupLimits:\n    - group: db\n      limits: {diskPercent: 150}\n");
  ASSERT_FALSE(percent.isOk());
  EXPECT_THAT(percent.status().message(),
              ::testing::HasSubstr("alerting.groupLimits[0].limits.diskPercent: is a percentage"));
}

}  // namespace
}  // namespace nodewarden::server
