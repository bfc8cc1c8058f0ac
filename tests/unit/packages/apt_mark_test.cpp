#include "agent/packages/apt_mark.h"

#include <gtest/gtest.h>

namespace nodewarden::packages {
namespace {

using Names = std::set<std::string, std::less<>>;

TEST(AptMarkTest, ReadsOneHeldPackagePerLine) {
  core::Result<Names> held = parseAptMarkShowhold("containerd\nkubelet\nlibc6:i386\n");
  ASSERT_TRUE(held.isOk()) << held.status().message();
  EXPECT_EQ(*held, (Names{"containerd", "kubelet", "libc6:i386"}));
}

TEST(AptMarkTest, NothingHeldIsEmptyOutput) {
  core::Result<Names> held = parseAptMarkShowhold("");
  ASSERT_TRUE(held.isOk());
  EXPECT_TRUE(held->empty());
}

TEST(AptMarkTest, IgnoresBlankLinesAndSurroundingSpace) {
  core::Result<Names> held = parseAptMarkShowhold("\n  g++-12 \n\nlibstdc++6\nx.org\n");
  ASSERT_TRUE(held.isOk()) << held.status().message();
  EXPECT_EQ(*held, (Names{"g++-12", "libstdc++6", "x.org"}));
}

TEST(AptMarkTest, RejectsALineThatIsNotAPackageName) {
  core::Result<Names> held = parseAptMarkShowhold("kubelet\nW: some warning\n");
  ASSERT_FALSE(held.isOk());
  EXPECT_EQ(held.status().message(),
            "apt-mark showhold line 2: 'W: some warning' is not a package name");
  EXPECT_FALSE(parseAptMarkShowhold("Kubelet\n").isOk());
  EXPECT_FALSE(parseAptMarkShowhold("libc6:\n").isOk());
  EXPECT_FALSE(parseAptMarkShowhold("-foo\n").isOk());
}

}  // namespace
}  // namespace nodewarden::packages
