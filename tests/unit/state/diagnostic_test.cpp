#include "agent/state/diagnostic.h"

#include <gtest/gtest.h>

namespace nodewarden::state {
namespace {

TEST(DiagnosticTest, ToStringLeavesOutWhatIsUnknown) {
  EXPECT_EQ(
      (Diagnostic{"node.yaml", 14, 5, "files[2].mode", "0999 is not an octal mode"}).toString(),
      "node.yaml:14:5: files[2].mode: 0999 is not an octal mode");
  EXPECT_EQ((Diagnostic{"node.yaml", 3, 0, "", "bad"}).toString(), "node.yaml:3: bad");
  EXPECT_EQ((Diagnostic{"node.yaml", 0, 0, "", "bad"}).toString(), "node.yaml: bad");
  EXPECT_EQ((Diagnostic{"", 0, 0, "files[0].path", "required"}).toString(),
            "files[0].path: required");
  EXPECT_EQ((Diagnostic{"", 0, 0, "", "bad"}).toString(), "bad");
}

TEST(SourceMapTest, MissingFieldFallsBackToItsNearestAncestor) {
  SourceMap sources("node.yaml");
  sources.add("", {1, 1});
  sources.add("files", {4, 3});
  sources.add("files[0]", {4, 5});
  sources.add("metadata.labels[\"a.b\"]", {9, 9});
  EXPECT_EQ(sources.find("files[0].path").line, 4);
  EXPECT_EQ(sources.find("files[0].path").column, 5);
  EXPECT_EQ(sources.find("files[7]").column, 3);
  EXPECT_EQ(sources.find("units[0].name").line, 1);
  EXPECT_EQ(sources.find("metadata.labels[\"a.b\"]").line, 9);
  EXPECT_EQ(sources.describe("files[0]"), "node.yaml:4:5");
  EXPECT_EQ(sources.describe("units[0]"), "units[0]");
}

TEST(ParentPathTest, CutsOneLevel) {
  EXPECT_EQ(parentPath("units[0].dropIns[1].name"), "units[0].dropIns[1]");
  EXPECT_EQ(parentPath("units[0].dropIns[1]"), "units[0].dropIns");
  EXPECT_EQ(parentPath("metadata.labels[\"a.b[c]\"]"), "metadata.labels");
  EXPECT_EQ(parentPath("files"), "");
  EXPECT_EQ(parentPath(""), "");
}

}  // namespace
}  // namespace nodewarden::state
