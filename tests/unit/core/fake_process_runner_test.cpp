#include "tests/fakes/fake_process_runner.h"

#include <signal.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <optional>
#include <vector>

namespace nodewarden::core {
namespace {

using ::testing::ElementsAre;

struct Recorder {
  std::vector<Result<ProcessResult>> results;
  ProcessRunner::Callback callback() {
    return [this](Result<ProcessResult> r) { results.push_back(std::move(r)); };
  }
};

TEST(FakeProcessRunnerTest, RecordsRequestsInOrderAndDeliversOnlyOnComplete) {
  FakeProcessRunner runner;
  runner.respond({"dpkg-query"}, 0, "containerd\n");
  Recorder recorder;
  runner.run({.argv = {"dpkg-query", "-W"}, .environment = {{"DEBIAN_FRONTEND", "noninteractive"}}},
             recorder.callback());
  runner.run({.argv = {"dpkg-query", "-s", "kubelet"}}, recorder.callback());
  EXPECT_TRUE(recorder.results.empty());
  EXPECT_EQ(runner.pending(), 2u);
  EXPECT_THAT(runner.commands(), ElementsAre("dpkg-query -W", "dpkg-query -s kubelet"));
  EXPECT_EQ(runner.requests()[0].environment.at("DEBIAN_FRONTEND"), "noninteractive");

  EXPECT_EQ(runner.complete(), 2u);
  ASSERT_EQ(recorder.results.size(), 2u);
  ASSERT_TRUE(recorder.results[0].isOk());
  EXPECT_EQ(recorder.results[0]->exitCode, 0);
  EXPECT_EQ(recorder.results[0]->stdoutData, "containerd\n");
  EXPECT_EQ(runner.pending(), 0u);
}

TEST(FakeProcessRunnerTest, LongestMatchingPrefixWins) {
  FakeProcessRunner runner;
  runner.respond({"apt-get"}, 0);
  runner.respond({"apt-get", "install"}, 100, "", "E: Unable to locate package nope\n");
  Recorder recorder;
  runner.run({.argv = {"apt-get", "install", "-y", "nope"}}, recorder.callback());
  runner.run({.argv = {"apt-get", "update"}}, recorder.callback());
  runner.complete();
  ASSERT_EQ(recorder.results.size(), 2u);
  EXPECT_EQ(recorder.results[0]->exitCode, 100);
  EXPECT_EQ(recorder.results[0]->stderrData, "E: Unable to locate package nope\n");
  EXPECT_EQ(recorder.results[1]->exitCode, 0);
}

TEST(FakeProcessRunnerTest, UnscriptedCommandFailsToStartLikeAMissingTool) {
  FakeProcessRunner runner;
  Recorder recorder;
  runner.run({.argv = {"modprobe", "br_netfilter"}}, recorder.callback());
  runner.complete();
  ASSERT_EQ(recorder.results.size(), 1u);
  ASSERT_FALSE(recorder.results[0].isOk());
  EXPECT_EQ(recorder.results[0].status().message(), "run modprobe: No such file or directory");
}

TEST(FakeProcessRunnerTest, ScriptsTimeoutsSignalsAndStartFailures) {
  FakeProcessRunner runner;
  ProcessResult timedOut;
  timedOut.signal = SIGTERM;
  timedOut.timedOut = true;
  runner.respond({"crictl"}, timedOut);
  runner.respond({"sysctl"}, Status::internal("run sysctl: Permission denied"));
  Recorder recorder;
  runner.run({.argv = {"crictl", "ps"}}, recorder.callback());
  runner.run({.argv = {"sysctl", "-w", "net.ipv4.ip_forward=1"}}, recorder.callback());
  runner.complete();
  ASSERT_EQ(recorder.results.size(), 2u);
  EXPECT_TRUE(recorder.results[0]->timedOut);
  EXPECT_EQ(recorder.results[0]->signal, SIGTERM);
  EXPECT_EQ(recorder.results[1].status().message(), "run sysctl: Permission denied");
}

TEST(FakeProcessRunnerTest, TruncatesOutputAtTheRequestLimit) {
  FakeProcessRunner runner;
  runner.respond({"dpkg-query"}, 0, "0123456789", "ok");
  Recorder recorder;
  runner.run({.argv = {"dpkg-query", "-W"}, .outputLimit = 4}, recorder.callback());
  runner.complete();
  EXPECT_EQ(recorder.results[0]->stdoutData, "0123");
  EXPECT_TRUE(recorder.results[0]->stdoutTruncated);
  EXPECT_EQ(recorder.results[0]->stderrData, "ok");
  EXPECT_FALSE(recorder.results[0]->stderrTruncated);
}

TEST(FakeProcessRunnerTest, CompleteAlsoDeliversCommandsStartedByCallbacks) {
  FakeProcessRunner runner;
  runner.respond({"apt-get", "update"}, 0);
  runner.respond({"apt-get", "install"}, 0);
  Recorder recorder;
  runner.run({.argv = {"apt-get", "update"}}, [&](Result<ProcessResult>) {
    runner.run({.argv = {"apt-get", "install", "-y", "containerd"}}, recorder.callback());
  });
  EXPECT_EQ(runner.complete(), 2u);
  EXPECT_EQ(recorder.results.size(), 1u);
  EXPECT_THAT(runner.commands(), ElementsAre("apt-get update", "apt-get install -y containerd"));
}

}  // namespace
}  // namespace nodewarden::core
