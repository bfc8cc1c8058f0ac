#include "agent/packages/dpkg_status.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>

namespace nodewarden::packages {
namespace {

std::string readFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

std::size_t countPackageLines(const std::string& text) {
  std::size_t count = text.rfind("Package: ", 0) == 0 ? 1 : 0;
  for (std::size_t at = text.find("\nPackage: "); at != std::string::npos;
       at = text.find("\nPackage: ", at + 1)) {
    ++count;
  }
  return count;
}

DpkgPackages parseOk(std::string_view text) {
  core::Result<DpkgPackages> packages = parseDpkgStatus(text);
  EXPECT_TRUE(packages.isOk()) << packages.status().message();
  return packages ? std::move(packages).value() : DpkgPackages{};
}

std::string parseError(std::string_view text) {
  core::Result<DpkgPackages> packages = parseDpkgStatus(text);
  EXPECT_FALSE(packages.isOk());
  return packages.status().message();
}

TEST(DpkgStatusTest, ParsesASliceOfARealStatusFile) {
  const std::string text = readFile(PACKAGES_TEST_DATA "/dpkg_status_slice");
  ASSERT_FALSE(text.empty());
  const DpkgPackages packages = parseOk(text);

  EXPECT_EQ(packages.size(), 13u);
  EXPECT_EQ(packages.size(), countPackageLines(text));
  EXPECT_EQ(packages.at("adduser"), (InstalledPackage{.name = "adduser",
                                                      .architecture = "all",
                                                      .version = "3.134",
                                                      .status = "install ok installed",
                                                      .installed = true}));
  EXPECT_EQ(packages.at("bash").version, "5.2.15-2+b8");
  EXPECT_EQ(packages.at("bash").architecture, "amd64");
  EXPECT_EQ(packages.at("base-files").version, "12.4+deb12u11");
  EXPECT_TRUE(std::all_of(packages.begin(), packages.end(),
                          [](const auto& entry) { return entry.second.installed; }));
}

TEST(DpkgStatusTest, SkipsContinuationLinesOfMultiLineFields) {
  const DpkgPackages packages = parseOk(
      "Package: foo\n"
      "Status: install ok installed\n"
      "Conffiles:\n"
      " /etc/foo.conf 0123456789abcdef\n"
      "\t/etc/foo.d/x.conf 0123456789abcdef obsolete\n"
      "Description: a foo\n"
      " Version: 9.9 is not a field here\n"
      " .\n"
      " Package: nor is this\n"
      "Architecture: amd64\n"
      "Version: 1.2-3\n");
  ASSERT_EQ(packages.size(), 1u);
  EXPECT_EQ(packages.at("foo").version, "1.2-3");
  EXPECT_EQ(packages.at("foo").architecture, "amd64");
}

TEST(DpkgStatusTest, KeysANameInstalledForTwoArchitecturesByArchitecture) {
  const DpkgPackages packages = parseOk(
      "Package: libc6\n"
      "Status: install ok installed\n"
      "Multi-Arch: same\n"
      "Architecture: amd64\n"
      "Version: 2.36-9\n"
      "\n"
      "Package: libc6\n"
      "Status: install ok installed\n"
      "Multi-Arch: same\n"
      "Architecture: i386\n"
      "Version: 2.36-9\n"
      "\n"
      "Package: zlib1g\n"
      "Status: install ok installed\n"
      "Multi-Arch: same\n"
      "Architecture: amd64\n"
      "Version: 1:1.2.13\n");
  ASSERT_EQ(packages.size(), 3u);
  EXPECT_EQ(packages.at("libc6:amd64").architecture, "amd64");
  EXPECT_EQ(packages.at("libc6:i386").architecture, "i386");
  EXPECT_EQ(packages.at("libc6:i386").name, "libc6");
  EXPECT_EQ(packages.count("libc6"), 0u);
  EXPECT_EQ(packages.at("zlib1g").version, "1:1.2.13");
}

TEST(DpkgStatusTest, OnlyOkInstalledCountsAsInstalled) {
  const DpkgPackages packages = parseOk(
      "Package: removed\n"
      "Status: deinstall ok config-files\n"
      "Architecture: amd64\n"
      "Version: 1.0\n"
      "Conffiles:\n"
      " /etc/removed.conf 0123456789abcdef\n"
      "\n"
      "Package: broken\n"
      "Status: install reinstreq half-installed\n"
      "Architecture: amd64\n"
      "Version: 2.0\n"
      "\n"
      "Package: held\n"
      "Status: hold ok installed\n"
      "Architecture: all\n"
      "Version: 3.0\n"
      "\n"
      "Package: unpacked\n"
      "Status: install ok unpacked\n"
      "Architecture: all\n"
      "Version: 4.0\n");
  ASSERT_EQ(packages.size(), 4u);
  EXPECT_FALSE(packages.at("removed").installed);
  EXPECT_EQ(packages.at("removed").status, "deinstall ok config-files");
  EXPECT_FALSE(packages.at("broken").installed);
  EXPECT_EQ(packages.at("broken").status, "install reinstreq half-installed");
  EXPECT_TRUE(packages.at("held").installed);
  EXPECT_FALSE(packages.at("unpacked").installed);
}

TEST(DpkgStatusTest, AcceptsAStanzaWithoutVersionOrArchitecture) {
  const DpkgPackages packages = parseOk(
      "Package: wanted\n"
      "Status: install ok not-installed\n");
  ASSERT_EQ(packages.size(), 1u);
  EXPECT_EQ(packages.at("wanted").version, "");
  EXPECT_EQ(packages.at("wanted").architecture, "");
  EXPECT_FALSE(packages.at("wanted").installed);
}

TEST(DpkgStatusTest, ToleratesExtraBlankLinesAndNoFinalNewline) {
  const DpkgPackages packages = parseOk(
      "\n\n"
      "Package: a\n"
      "Status: install ok installed\n"
      "\n"
      "   \n"
      "\n"
      "Package: b\n"
      "status: install ok installed\n"
      "VERSION: 1");
  ASSERT_EQ(packages.size(), 2u);
  EXPECT_EQ(packages.at("b").version, "1");
  EXPECT_TRUE(packages.at("b").installed);
}

TEST(DpkgStatusTest, EmptyTextHasNoPackages) { EXPECT_TRUE(parseOk("").empty()); }

TEST(DpkgStatusTest, RejectsAStanzaWithoutAPackageAndSaysWhere) {
  EXPECT_EQ(parseError("Package: a\n"
                       "Status: install ok installed\n"
                       "\n"
                       "Status: install ok installed\n"
                       "Version: 1\n"),
            "status line 4: field without a package");
}

TEST(DpkgStatusTest, RejectsAStanzaWithoutStatus) {
  EXPECT_EQ(parseError("Package: a\nVersion: 1\n"), "status line 1: package a has no Status field");
}

TEST(DpkgStatusTest, RejectsAMalformedStatus) {
  EXPECT_EQ(parseError("Package: a\nVersion: 1\nStatus: installed\n"),
            "status line 3: package a: Status 'installed' is not 'want flag status'");
}

TEST(DpkgStatusTest, RejectsALineWithoutAFieldName) {
  EXPECT_EQ(parseError("Package: a\nStatus: install ok installed\nnot a field\n"),
            "status line 3: expected 'Field: value', got 'not a field'");
}

TEST(DpkgStatusTest, RejectsAContinuationLineOutsideAField) {
  EXPECT_EQ(parseError("Package: a\nStatus: install ok installed\n\n continued\n"),
            "status line 4: continuation line outside a field");
}

TEST(DpkgStatusTest, RejectsTheSamePackageTwice) {
  EXPECT_EQ(parseError("Package: a\nStatus: install ok installed\nArchitecture: all\n\n"
                       "Package: a\nStatus: install ok installed\nArchitecture: all\n"),
            "status line 5: package a:all appears twice");
}

TEST(DpkgStatusTest, RejectsARepeatedField) {
  EXPECT_EQ(parseError("Package: a\nStatus: install ok installed\nVersion: 1\nVersion: 2\n"),
            "status line 4: second Version field in one stanza");
}

// Not a timed assertion (DESIGN.md: performance is measured by bench/); prints the figure.
TEST(DpkgStatusTest, ParsesTheHostStatusFile) {
  const std::string text = readFile("/var/lib/dpkg/status");
  if (text.empty()) GTEST_SKIP() << "no /var/lib/dpkg/status on this host";

  constexpr int kRuns = 20;
  std::chrono::nanoseconds fastest = std::chrono::nanoseconds::max();
  std::size_t count = 0;
  for (int run = 0; run < kRuns; ++run) {
    const auto start = std::chrono::steady_clock::now();
    core::Result<DpkgPackages> packages = parseDpkgStatus(text);
    const auto elapsed = std::chrono::steady_clock::now() - start;
    ASSERT_TRUE(packages.isOk()) << packages.status().message();
    fastest = std::min(fastest, std::chrono::duration_cast<std::chrono::nanoseconds>(elapsed));
    count = packages->size();
  }
  EXPECT_EQ(count, countPackageLines(text));
  std::cout << "parseDpkgStatus(/var/lib/dpkg/status): " << count << " packages, " << text.size()
            << " bytes, fastest of " << kRuns << ": "
            << std::chrono::duration<double, std::micro>(fastest).count() << " us\n";
}

}  // namespace
}  // namespace nodewarden::packages
