#include "agent/core/loop_process_runner.h"

#include <signal.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <vector>

namespace nodewarden::core {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;

// Real processes on a real loop and clock.
class ProcessRunnerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto loop = Loop::create();
    ASSERT_TRUE(loop.isOk()) << loop.status().message();
    loop_ = std::move(*loop);
    clock_ = std::make_unique<LoopClock>(*loop_);
    auto runner = LoopProcessRunner::create(*loop_, *clock_, /*killGrace=*/200ms);
    ASSERT_TRUE(runner.isOk()) << runner.status().message();
    runner_ = std::move(*runner);
  }

  Result<ProcessResult> runToEnd(ProcessRequest request) {
    std::optional<Result<ProcessResult>> result;
    runner_->run(std::move(request),
                 [&](Result<ProcessResult> r) { result.emplace(std::move(r)); });
    EXPECT_FALSE(result.has_value()) << "done ran inside run()";
    Status s = loop_->runUntil([&] { return result.has_value(); });
    EXPECT_TRUE(s.isOk()) << s.message();
    return std::move(*result);
  }

  std::unique_ptr<Loop> loop_;
  std::unique_ptr<LoopClock> clock_;
  std::unique_ptr<LoopProcessRunner> runner_;
};

TEST_F(ProcessRunnerTest, CapturesStdoutAndStderrOfASuccessfulCommand) {
  auto result = runToEnd({.argv = {"/bin/sh", "-c", "echo out; echo err >&2"}});
  ASSERT_TRUE(result.isOk()) << result.status().message();
  EXPECT_EQ(result->exitCode, 0);
  EXPECT_FALSE(result->signal.has_value());
  EXPECT_TRUE(result->succeeded());
  EXPECT_EQ(result->stdoutData, "out\n");
  EXPECT_EQ(result->stderrData, "err\n");
  EXPECT_FALSE(result->timedOut);
  EXPECT_GT(result->duration, 0ns);
}

TEST_F(ProcessRunnerTest, FindsTheExecutableInThePathAndPassesArgvWithoutAShell) {
  auto result = runToEnd({.argv = {"echo", "hello", "$HOME; world"}});
  ASSERT_TRUE(result.isOk()) << result.status().message();
  EXPECT_EQ(result->stdoutData, "hello $HOME; world\n");
}

TEST_F(ProcessRunnerTest, ReportsANonZeroExitCode) {
  auto result = runToEnd({.argv = {"/bin/sh", "-c", "exit 100"}});
  ASSERT_TRUE(result.isOk()) << result.status().message();
  EXPECT_EQ(result->exitCode, 100);
  EXPECT_FALSE(result->succeeded());
}

TEST_F(ProcessRunnerTest, ReportsDeathBySignalEvenIfTheAgentBlocksIt) {
  // The loop blocks SIGTERM for itself; the child must not inherit that.
  sigset_t mask, previous;
  sigemptyset(&mask);
  sigaddset(&mask, SIGTERM);
  ASSERT_EQ(pthread_sigmask(SIG_BLOCK, &mask, &previous), 0);
  auto result = runToEnd({.argv = {"/bin/sh", "-c", "kill -TERM $$; sleep 5"}});
  pthread_sigmask(SIG_SETMASK, &previous, nullptr);
  ASSERT_TRUE(result.isOk()) << result.status().message();
  EXPECT_FALSE(result->exitCode.has_value());
  EXPECT_EQ(result->signal, SIGTERM);
  EXPECT_FALSE(result->timedOut);
  EXPECT_FALSE(result->succeeded());
}

TEST_F(ProcessRunnerTest, PassesStdinBytes) {
  std::string input = "line one\nline two\n";
  auto result = runToEnd({.argv = {"/bin/cat"}, .stdinData = input});
  ASSERT_TRUE(result.isOk()) << result.status().message();
  EXPECT_EQ(result->stdoutData, input);
}

TEST_F(ProcessRunnerTest, PassesStdinLargerThanAPipeBuffer) {
  std::string input(1 << 20, 'x');
  auto result = runToEnd({.argv = {"/bin/cat"}, .stdinData = input, .outputLimit = 2 << 20});
  ASSERT_TRUE(result.isOk()) << result.status().message();
  EXPECT_EQ(result->stdoutData.size(), input.size());
  EXPECT_FALSE(result->stdoutTruncated);
}

TEST_F(ProcessRunnerTest, StdinIsAtEofWhenNoneIsGiven) {
  auto result = runToEnd({.argv = {"/bin/cat"}, .timeout = 10s});
  ASSERT_TRUE(result.isOk()) << result.status().message();
  EXPECT_EQ(result->exitCode, 0);
  EXPECT_EQ(result->stdoutData, "");
}

TEST_F(ProcessRunnerTest, StdinTheChildDoesNotReadIsDropped) {
  auto result = runToEnd({.argv = {"/bin/true"}, .stdinData = std::string(1 << 20, 'x')});
  ASSERT_TRUE(result.isOk()) << result.status().message();
  EXPECT_EQ(result->exitCode, 0);
}

TEST_F(ProcessRunnerTest, KeepsOutputUpToTheLimitAndFlagsTheRest) {
  // 1 MiB of output, 1000 bytes kept; the child still runs to completion.
  auto result = runToEnd(
      {.argv = {"/bin/sh", "-c", "head -c 1048576 /dev/zero; echo done >&2"}, .outputLimit = 1000});
  ASSERT_TRUE(result.isOk()) << result.status().message();
  EXPECT_EQ(result->exitCode, 0);
  EXPECT_EQ(result->stdoutData, std::string(1000, '\0'));
  EXPECT_TRUE(result->stdoutTruncated);
  EXPECT_EQ(result->stderrData, "done\n");
  EXPECT_FALSE(result->stderrTruncated);
}

TEST_F(ProcessRunnerTest, KillsACommandThatOutlivesItsTimeout) {
  const MonotonicTime start = clock_->now();
  auto result = runToEnd({.argv = {"sleep", "10"}, .timeout = 100ms});
  ASSERT_TRUE(result.isOk()) << result.status().message();
  EXPECT_TRUE(result->timedOut);
  EXPECT_EQ(result->signal, SIGTERM);
  EXPECT_FALSE(result->succeeded());
  EXPECT_LT(clock_->now() - start, 5s);
  EXPECT_GE(result->duration, 100ms);
}

TEST_F(ProcessRunnerTest, KillsWithSigkillWhatIgnoresSigtermAfterTheGracePeriod) {
  // The shell and the sleep it starts both ignore SIGTERM; the whole group goes.
  const MonotonicTime start = clock_->now();
  auto result =
      runToEnd({.argv = {"/bin/sh", "-c", "trap '' TERM; sleep 10; echo late"}, .timeout = 100ms});
  ASSERT_TRUE(result.isOk()) << result.status().message();
  EXPECT_TRUE(result->timedOut);
  EXPECT_EQ(result->signal, SIGKILL);
  EXPECT_EQ(result->stdoutData, "");
  EXPECT_LT(clock_->now() - start, 5s);
  EXPECT_GE(result->duration, 300ms);  // timeout + grace
}

TEST_F(ProcessRunnerTest, MissingExecutableIsAClearError) {
  auto result = runToEnd({.argv = {"nodewarden-no-such-tool", "install"}});
  ASSERT_FALSE(result.isOk());
  EXPECT_EQ(result.status().message(), "run nodewarden-no-such-tool: No such file or directory");

  auto absolute = runToEnd({.argv = {"/nonexistent/apt-get"}});
  ASSERT_FALSE(absolute.isOk());
  EXPECT_EQ(absolute.status().message(), "run /nonexistent/apt-get: No such file or directory");
}

TEST_F(ProcessRunnerTest, EmptyArgvIsAnError) {
  auto result = runToEnd({});
  ASSERT_FALSE(result.isOk());
  EXPECT_EQ(result.status().code(), Status::Code::kInvalidArgument);
}

TEST_F(ProcessRunnerTest, ConcurrentChildrenEachGetTheirOwnResult) {
  std::vector<std::optional<Result<ProcessResult>>> results(5);
  for (size_t i = 0; i < results.size(); ++i) {
    // Later children finish first.
    const std::string script =
        "sleep 0.0" + std::to_string(results.size() - i) + "; echo " + std::to_string(i);
    runner_->run({.argv = {"/bin/sh", "-c", script}},
                 [&results, i](Result<ProcessResult> r) { results[i].emplace(std::move(r)); });
  }
  EXPECT_EQ(runner_->running(), results.size());
  ASSERT_TRUE(loop_
                  ->runUntil([&] {
                    for (const auto& r : results) {
                      if (!r) return false;
                    }
                    return true;
                  })
                  .isOk());
  for (size_t i = 0; i < results.size(); ++i) {
    ASSERT_TRUE(results[i]->isOk()) << results[i]->status().message();
    EXPECT_EQ((*results[i])->stdoutData, std::to_string(i) + "\n");
  }
  EXPECT_EQ(runner_->running(), 0u);
}

TEST_F(ProcessRunnerTest, EnvironmentIsMinimalPlusTheAdditions) {
  auto result =
      runToEnd({.argv = {"/usr/bin/env"},
                .environment = {{"DEBIAN_FRONTEND", "noninteractive"}, {"LC_ALL", "C.UTF-8"}}});
  ASSERT_TRUE(result.isOk()) << result.status().message();
  std::string expected = "DEBIAN_FRONTEND=noninteractive\nLC_ALL=C.UTF-8\nPATH=";
  expected += kProcessPath;
  expected += "\n";
  EXPECT_EQ(result->stdoutData, expected);
}

TEST_F(ProcessRunnerTest, ChildGetsOnlyStdinStdoutAndStderr) {
  auto result = runToEnd({.argv = {"/bin/ls", "/proc/self/fd"}});
  ASSERT_TRUE(result.isOk()) << result.status().message();
  // 0, 1, 2 and the directory ls itself opened.
  EXPECT_EQ(result->stdoutData, "0\n1\n2\n3\n");
}

TEST_F(ProcessRunnerTest, CallbackMayStartTheNextCommand) {
  std::optional<Result<ProcessResult>> second;
  runner_->run({.argv = {"echo", "first"}}, [&](Result<ProcessResult> first) {
    ASSERT_TRUE(first.isOk());
    runner_->run({.argv = {"/bin/cat"}, .stdinData = first->stdoutData},
                 [&](Result<ProcessResult> r) { second.emplace(std::move(r)); });
  });
  ASSERT_TRUE(loop_->runUntil([&] { return second.has_value(); }).isOk());
  ASSERT_TRUE(second->isOk());
  EXPECT_EQ((*second)->stdoutData, "first\n");
}

TEST_F(ProcessRunnerTest, DestroyingTheRunnerKillsAndReapsRunningChildren) {
  bool called = false;
  runner_->run({.argv = {"/bin/sh", "-c", "sleep 10 & sleep 10"}},
               [&](Result<ProcessResult>) { called = true; });
  EXPECT_EQ(runner_->running(), 1u);
  runner_.reset();
  EXPECT_FALSE(called);
  // No child left, not even a zombie.
  errno = 0;
  EXPECT_EQ(::waitpid(-1, nullptr, WNOHANG), -1);
  EXPECT_EQ(errno, ECHILD);
}

}  // namespace
}  // namespace nodewarden::core
