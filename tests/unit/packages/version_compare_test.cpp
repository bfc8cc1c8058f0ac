#include "agent/packages/version_compare.h"

#include <gtest/gtest.h>

#include <string_view>

namespace nodewarden::packages {
namespace {

struct Case {
  std::string_view a;
  std::string_view b;
  int expected;  // sign of a <=> b
};

int sign(std::weak_ordering order) { return order < 0 ? -1 : order > 0 ? 1 : 0; }

// From dpkg's rules (deb-version(7)) and its own test suite (lib/dpkg/t/t-version.c).
constexpr Case kDebianCases[] = {
    {"1.0", "1.0", 0},
    {"1.0~rc1", "1.0", -1},
    {"1.0~rc1", "1.0~rc2", -1},
    {"1.0~~", "1.0~", -1},
    {"1.0~", "1.0", -1},
    {"1:0.1", "2.0", 1},
    {"0:1.0", "1.0", 0},
    {"1.0-1", "1.0-1ubuntu1", -1},
    {"1.0-1", "1.0-2", -1},
    {"2.30", "2.4", 1},
    {"1.10", "1.9", 1},
    {"1.0", "1.00", 0},
    {"1.01", "1.1", 0},
    {"1.0a", "1.0", 1},
    {"1.0a", "1.0+", -1},  // letters before non-letters
    {"1.0+", "1.0.", -1},  // other characters by ASCII
    {"1.0", "1.0-0", 0},   // an absent revision equals "0"
    {"1.0-0", "1.0-", 0},
    {"1.2.3", "1.2.3.0", -1},
    {"1:1.0", "0:9.9", 1},
    {"10:1", "9:2", 1},
    {"2.36-9", "2.36-9+deb12u4", -1},
    {"1.6.20~ds1-1", "1.6.20-1", -1},
    {"1.2.13.dfsg-1", "1.2.13.dfsg-1+b1", -1},
    {"5.2.15-2+b8", "5.2.15-2+b10", -1},
    {"0.9", "0.10~beta", -1},
    {"a", "b", -1},
    {"", "", 0},
    {"1-2-3", "1-2-4", -1},  // the revision starts after the last hyphen
    {"99999999999999999999", "99999999999999999998", 1},
};

TEST(VersionCompareTest, ComparesDebianVersionsAsDpkgDoes) {
  for (const Case& c : kDebianCases) {
    EXPECT_EQ(sign(compareDebianVersions(c.a, c.b)), c.expected) << c.a << " vs " << c.b;
    EXPECT_EQ(sign(compareDebianVersions(c.b, c.a)), -c.expected) << c.b << " vs " << c.a;
  }
}

// From rpm's rules and its test suite (tests/rpmvercmp.at).
constexpr Case kRpmCases[] = {
    {"1.0", "1.0", 0},
    {"1.0", "2.0", -1},
    {"2.0.1", "2.0.1", 0},
    {"2.0", "2.0.1", -1},
    {"2.0.1a", "2.0.1", 1},
    {"5.5p1", "5.5p2", -1},
    {"5.5p10", "5.5p1", 1},
    {"10xyz", "10.1xyz", -1},
    {"xyz10", "xyz10.1", -1},
    {"xyz.4", "xyz.4", 0},
    {"xyz.4", "8", -1},
    {"5.5p1", "5.5.p1", 0},  // separators only separate
    {"5.6p1", "5.5p1", 1},
    {"1b.fc17", "1b.fc17", 0},
    {"1b.fc17", "1.fc17", -1},  // "b" against "fc"
    {"1g.fc17", "1.fc17", 1},
    {"1.0.1", "1.0.a", 1},  // digits newer than letters
    {"1.0a", "1.0.a", 0},
    {"1.0", "1.0a", -1},
    {"2.30", "2.4", 1},
    {"1.0~rc1", "1.0", -1},
    {"1.0~rc1", "1.0~rc2", -1},
    {"1.0~rc1~git123", "1.0~rc1", -1},
    {"1.0^", "1.0", 1},
    {"1.0^git1", "1.0", 1},
    {"1.0^git1", "1.01", -1},
    {"1.0^git1", "1.0^git2", -1},
    {"1.0^git1", "1.0.1", -1},
    {"1.0^20160101", "1.0.1", -1},
    {"1.0~rc1^git1", "1.0~rc1", 1},
    {"1.0^git1~pre", "1.0^git1", -1},
    {"1.01", "1.1", 0},
    {"001", "1", 0},
    // Epochs and releases.
    {"1:1.0-1", "2.0-1", 1},
    {"0:1.0-1", "1.0-1", 0},
    {"1.0-1", "1.0-2", -1},
    {"5.14.0-70.13.1.el9_0", "5.14.0-427.13.1.el9_4", -1},
    {"1.0", "1.0-5", 0},  // a release is compared only when both have one
    {"3.0.7-27.el9", "1:3.0.7-1.el9", -1},
};

TEST(VersionCompareTest, ComparesRpmVersionsAsRpmDoes) {
  for (const Case& c : kRpmCases) {
    EXPECT_EQ(sign(compareRpmVersions(c.a, c.b)), c.expected) << c.a << " vs " << c.b;
    EXPECT_EQ(sign(compareRpmVersions(c.b, c.a)), -c.expected) << c.b << " vs " << c.a;
  }
}

}  // namespace
}  // namespace nodewarden::packages
