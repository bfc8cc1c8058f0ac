#include "agent/state/diagnostic.h"

#include <gtest/gtest.h>

#include "agent/state/canonical.h"
#include "agent/state/loader.h"
#include "tests/unit/state/state_test_support.h"

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

TEST(CanonicalBytesTest, SpellingDoesNotChangeTheState) {
  LoadResult a = loadString(std::string(test::kHeader) +
                                "metadata:\n"
                                "  labels: {a: \"1\", b: \"2\", c: \"3\"}\n"
                                "files:\n"
                                "  - path: /etc/a\n"
                                "    mode: 0644\n"
                                "units:\n"
                                "  - {name: a.service, state: Running}\n",
                            "a.yaml");
  LoadResult b = loadString(std::string(test::kHeader) +
                                "units: [{state: running, name: a.service}]\n"
                                "files:\n"
                                "  - mode: \"644\"\n"
                                "    path: \"/etc/a\"\n"
                                "metadata:\n"
                                "  labels:\n"
                                "    c: \"3\"\n"
                                "    b: \"2\"\n"
                                "    a: \"1\"\n",
                            "b.yaml");
  ASSERT_TRUE(a.ok());
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(canonicalBytes(*a.state), canonicalBytes(*b.state));

  b.state->mutable_files(0)->set_mode(0600);
  EXPECT_NE(canonicalBytes(*a.state), canonicalBytes(*b.state));
}

}  // namespace
}  // namespace nodewarden::state
