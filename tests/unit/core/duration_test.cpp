#include "agent/core/duration.h"

#include <gtest/gtest.h>

namespace nodewarden::core {
namespace {

using namespace std::chrono_literals;

TEST(DurationTest, ParsesEachUnitAndCombinations) {
  EXPECT_EQ(*parseDuration("500ms"), Duration(500ms));
  EXPECT_EQ(*parseDuration("90s"), Duration(90s));
  EXPECT_EQ(*parseDuration("5m"), Duration(5min));
  EXPECT_EQ(*parseDuration("1h30m"), Duration(90min));
  EXPECT_EQ(*parseDuration("2d"), Duration(48h));
}

TEST(DurationTest, RejectsWhatIsNotADurationAndSaysWhy) {
  for (const char* text : {"", "5", "m", "5x", "-5s", "1.5h", "5 m"}) {
    auto parsed = parseDuration(text);
    EXPECT_FALSE(parsed.isOk()) << text;
  }
  EXPECT_NE(parseDuration("5x").status().message().find("not one of ms, s, m, h, d"),
            std::string::npos);
}

TEST(DurationTest, FormatsTheShortestFormThatParsesBack) {
  EXPECT_EQ(formatDuration(5min), "5m");
  EXPECT_EQ(formatDuration(90min), "1h30m");
  EXPECT_EQ(formatDuration(250ms), "250ms");
  EXPECT_EQ(formatDuration(Duration::zero()), "0s");
  for (Duration d : {Duration(1h + 1s), Duration(36h), Duration(1500ms)}) {
    EXPECT_EQ(*parseDuration(formatDuration(d)), d);
  }
}

}  // namespace
}  // namespace nodewarden::core
