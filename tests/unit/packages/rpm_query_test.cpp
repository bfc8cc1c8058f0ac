#include "agent/packages/rpm_query.h"

#include <gtest/gtest.h>

namespace nodewarden::packages {
namespace {

// Recorded in the format of kRpmQueryFormat on a Rocky Linux 9 node (hand-trimmed).
constexpr std::string_view kRecorded =
    "bash\t0\t5.1.8\t9.el9\tx86_64\n"
    "kernel\t0\t5.14.0\t427.13.1.el9_4\tx86_64\n"
    "gpg-pubkey\t0\t350d275d\t6279464b\t(none)\n"
    "tzdata\t0\t2024a\t1.el9\tnoarch\n"
    "kernel\t0\t5.14.0\t362.8.1.el9_3\tx86_64\n"
    "containerd.io\t0\t1.6.31\t3.1.el9\tx86_64\n"
    "gpg-pubkey\t0\t621e9f35\t58adea78\t(none)\n"
    "kernel\t0\t5.14.0\t70.13.1.el9_0\tx86_64\n"
    "openssl\t1\t3.0.7\t27.el9\tx86_64\n"
    "glibc\t0\t2.34\t100.el9\ti686\n"
    "glibc\t0\t2.34\t100.el9\tx86_64\n";

RpmPackages parseOk(std::string_view text) {
  core::Result<RpmPackages> packages = parseRpmQuery(text);
  EXPECT_TRUE(packages.isOk()) << packages.status().message();
  return packages ? std::move(packages).value() : RpmPackages{};
}

std::vector<std::string> versionsOf(const RpmPackages& packages, const std::string& name) {
  std::vector<std::string> versions;
  for (const InstalledPackage& package : packages.at(name)) versions.push_back(package.version);
  return versions;
}

TEST(RpmQueryTest, ParsesEachPackageWithItsFullVersion) {
  const RpmPackages packages = parseOk(kRecorded);
  EXPECT_EQ(packages.size(), 7u);
  ASSERT_EQ(packages.at("bash").size(), 1u);
  EXPECT_EQ(packages.at("bash").front(), (InstalledPackage{.name = "bash",
                                                           .architecture = "x86_64",
                                                           .version = "5.1.8-9.el9",
                                                           .status = "installed",
                                                           .installed = true}));
  EXPECT_EQ(packages.at("containerd.io").front().version, "1.6.31-3.1.el9");
  EXPECT_EQ(packages.at("tzdata").front().architecture, "noarch");
}

TEST(RpmQueryTest, WritesANonZeroEpochOnly) {
  const RpmPackages packages = parseOk(kRecorded);
  EXPECT_EQ(packages.at("openssl").front().version, "1:3.0.7-27.el9");
  EXPECT_EQ(packages.at("bash").front().version, "5.1.8-9.el9");
}

TEST(RpmQueryTest, KeepsEveryInstalledVersionOldestFirst) {
  const RpmPackages packages = parseOk(kRecorded);
  EXPECT_EQ(versionsOf(packages, "kernel"),
            (std::vector<std::string>{"5.14.0-70.13.1.el9_0", "5.14.0-362.8.1.el9_3",
                                      "5.14.0-427.13.1.el9_4"}));
}

TEST(RpmQueryTest, KeepsBothArchitecturesOfOneVersion) {
  const RpmPackages packages = parseOk(kRecorded);
  ASSERT_EQ(packages.at("glibc").size(), 2u);
  EXPECT_EQ(packages.at("glibc")[0].architecture, "i686");
  EXPECT_EQ(packages.at("glibc")[1].architecture, "x86_64");
}

TEST(RpmQueryTest, KeepsImportedKeysWithoutAnArchitecture) {
  const RpmPackages packages = parseOk(kRecorded);
  ASSERT_EQ(packages.at("gpg-pubkey").size(), 2u);
  EXPECT_EQ(packages.at("gpg-pubkey")[0].version, "350d275d-6279464b");
  EXPECT_EQ(packages.at("gpg-pubkey")[0].architecture, "");
  EXPECT_EQ(packages.at("gpg-pubkey")[1].version, "621e9f35-58adea78");
}

TEST(RpmQueryTest, EmptyOutputHasNoPackages) { EXPECT_TRUE(parseOk("").empty()); }

TEST(RpmQueryTest, RejectsALineWithTheWrongNumberOfFields) {
  core::Result<RpmPackages> packages = parseRpmQuery("bash\t0\t5.1.8\t9.el9\tx86_64\nbash 5.1.8\n");
  ASSERT_FALSE(packages.isOk());
  EXPECT_EQ(packages.status().message(),
            "rpm query line 2: expected 5 tab-separated fields, got 1");
  EXPECT_FALSE(parseRpmQuery("a\t0\t1\t1\tx86_64\textra\n").isOk());
}

TEST(RpmQueryTest, RejectsAnEpochThatIsNotANumber) {
  core::Result<RpmPackages> packages = parseRpmQuery("bash\t(none)\t5.1.8\t9.el9\tx86_64\n");
  ASSERT_FALSE(packages.isOk());
  EXPECT_EQ(packages.status().message(),
            "rpm query line 1: package bash: epoch '(none)' is not a number");
}

TEST(RpmQueryTest, RejectsAnEmptyNameOrVersion) {
  EXPECT_FALSE(parseRpmQuery("\t0\t1\t1\tx86_64\n").isOk());
  EXPECT_FALSE(parseRpmQuery("a\t0\t\t1\tx86_64\n").isOk());
}

}  // namespace
}  // namespace nodewarden::packages
