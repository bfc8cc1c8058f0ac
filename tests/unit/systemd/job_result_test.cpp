#include "agent/systemd/job_result.h"

#include <gtest/gtest.h>

namespace nodewarden::systemd {
namespace {

using namespace std::chrono_literals;
using Code = core::Status::Code;

TEST(JobResultTest, DoneIsOk) {
  EXPECT_TRUE(jobResultStatus(JobKind::kStart, "kubelet.service", "done").isOk());
  EXPECT_TRUE(jobResultStatus(JobKind::kStop, "kubelet.service", "done", "exit-code").isOk());
}

TEST(JobResultTest, FailedExplainsTheUnitsResult) {
  core::Status status = jobResultStatus(JobKind::kStart, "kubelet.service", "failed", "exit-code");
  EXPECT_EQ(status.code(), Code::kInternal);
  EXPECT_EQ(status.message(),
            "start kubelet.service: job failed because the control process exited with error "
            "code (result: exit-code)");
}

TEST(JobResultTest, FailedWithAnUnknownUnitResultNamesIt) {
  core::Status status =
      jobResultStatus(JobKind::kRestart, "x.socket", "failed", "trigger-limit-hit");
  EXPECT_EQ(status.message(), "restart x.socket: job failed (result: trigger-limit-hit)");
}

TEST(JobResultTest, FailedWithoutUnitResult) {
  core::Status status = jobResultStatus(JobKind::kStop, "x.target", "failed");
  EXPECT_EQ(status.code(), Code::kInternal);
  EXPECT_EQ(status.message(), "stop x.target: job failed");
}

TEST(JobResultTest, EachResultGetsItsCodeAndNamesTheUnit) {
  struct Case {
    const char* result;
    Code code;
  };
  for (const Case& c :
       {Case{"canceled", Code::kCancelled}, Case{"timeout", Code::kTimeout},
        Case{"dependency", Code::kFailedPrecondition}, Case{"skipped", Code::kFailedPrecondition},
        Case{"invalid", Code::kFailedPrecondition}, Case{"assert", Code::kFailedPrecondition},
        Case{"unsupported", Code::kFailedPrecondition}, Case{"collected", Code::kCancelled},
        Case{"once", Code::kFailedPrecondition}}) {
    core::Status status = jobResultStatus(JobKind::kStart, "containerd.service", c.result);
    EXPECT_EQ(status.code(), c.code) << c.result;
    EXPECT_TRUE(status.message().starts_with("start containerd.service: ")) << status.message();
  }
  EXPECT_EQ(jobResultStatus(JobKind::kStart, "containerd.service", "dependency").message(),
            "start containerd.service: a dependency of the unit failed");
}

TEST(JobResultTest, AnUnknownResultIsAnErrorThatNamesIt) {
  core::Status status = jobResultStatus(JobKind::kStart, "x.service", "frozen");
  EXPECT_EQ(status.code(), Code::kInternal);
  EXPECT_EQ(status.message(), "start x.service: job ended with result \"frozen\"");
}

TEST(JobResultTest, TimeoutNamesTheJobAndTheLimit) {
  core::Status status = jobTimeoutStatus(JobKind::kRestart, "kubelet.service", 90s);
  EXPECT_EQ(status.code(), Code::kTimeout);
  EXPECT_EQ(status.message(),
            "restart kubelet.service: job did not finish within 1m30s; systemd keeps running it");
}

}  // namespace
}  // namespace nodewarden::systemd
