#include "agent/state/yaml_document.h"

#include <gtest/gtest.h>

#include <string>
#include <variant>

namespace nodewarden::state {
namespace {

using Kind = YamlNode::Kind;
using Style = YamlNode::Style;

YamlDocument parseOk(std::string_view text) {
  auto parsed = YamlDocument::parse(text, "node.yaml");
  if (auto* error = std::get_if<Diagnostic>(&parsed)) {
    ADD_FAILURE() << error->toString();
    return std::get<YamlDocument>(YamlDocument::parse("", "node.yaml"));
  }
  return std::move(std::get<YamlDocument>(parsed));
}

std::string errorOf(std::string_view text) {
  auto parsed = YamlDocument::parse(text, "node.yaml");
  auto* error = std::get_if<Diagnostic>(&parsed);
  return error ? error->toString() : "no error";
}

const YamlNode& root(const YamlDocument& document) {
  EXPECT_FALSE(document.documents().empty());
  return *document.documents().front();
}

TEST(YamlDocumentTest, ScalarsKeepTextStyleTagAndPosition) {
  YamlDocument document = parseOk(
      "plain: x y\n"
      "single: 'a''b'\n"
      "double: \"tab\\there\"\n"
      "literal: |\n"
      "  line\n"
      "folded: >\n"
      "  one\n"
      "  two\n"
      "tagged: !!str 5\n");
  const auto entries = root(document).entries();
  ASSERT_EQ(entries.size(), 6u);
  struct Expected {
    std::string key;
    std::string text;
    Style style;
    int line;
    int column;
  };
  const Expected expected[] = {
      {"plain", "x y", Style::kPlain, 1, 8},
      {"single", "a'b", Style::kSingleQuoted, 2, 9},
      {"double", "tab\there", Style::kDoubleQuoted, 3, 9},
      {"literal", "line\n", Style::kLiteral, 4, 10},
      {"folded", "one two\n", Style::kFolded, 6, 9},
      {"tagged", "5", Style::kPlain, 9, 9},
  };
  for (size_t i = 0; i < entries.size(); ++i) {
    const YamlNode& key = *entries[i].key;
    const YamlNode& value = *entries[i].value;
    EXPECT_EQ(key.text(), expected[i].key);
    EXPECT_EQ(key.position().line, expected[i].line);
    EXPECT_EQ(key.position().column, 1);
    EXPECT_EQ(value.kind(), Kind::kScalar) << expected[i].key;
    EXPECT_EQ(value.text(), expected[i].text);
    EXPECT_EQ(value.style(), expected[i].style) << expected[i].key;
    EXPECT_EQ(value.position().line, expected[i].line) << expected[i].key;
    EXPECT_EQ(value.position().column, expected[i].column) << expected[i].key;
  }
  EXPECT_EQ(entries[5].value->tag(), "tag:yaml.org,2002:str");
  EXPECT_EQ(entries[0].value->tag(), "");
}

TEST(YamlDocumentTest, OnlyUntaggedPlainNullSpellingsAreNull) {
  YamlDocument document = parseOk(
      "- ~\n"
      "- null\n"
      "- Null\n"
      "- NULL\n"
      "-\n"
      "- '~'\n"
      "- \"null\"\n"
      "- !!str null\n"
      "- nil\n");
  const auto items = root(document).items();
  ASSERT_EQ(items.size(), 9u);
  for (size_t i = 0; i < 5; ++i) {
    EXPECT_TRUE(items[i]->isNull()) << i;
    EXPECT_EQ(items[i]->text(), "") << i;
  }
  for (size_t i = 5; i < items.size(); ++i) EXPECT_TRUE(items[i]->isScalar()) << i;
}

TEST(YamlDocumentTest, MappingsKeepEveryEntryInOrder) {
  YamlDocument document = parseOk("b: 1\na: 2\nb: 3\n? [k]\n: 4\n");
  const auto entries = root(document).entries();
  ASSERT_EQ(entries.size(), 4u);
  EXPECT_EQ(entries[0].key->text(), "b");
  EXPECT_EQ(entries[1].key->text(), "a");
  EXPECT_EQ(entries[2].key->text(), "b");
  EXPECT_EQ(entries[2].value->text(), "3");
  EXPECT_EQ(entries[2].key->position().line, 3);
  EXPECT_TRUE(entries[3].key->isSequence());
  EXPECT_EQ(entries[3].value->text(), "4");
}

TEST(YamlDocumentTest, CollectionsStartAtTheirFirstTokenOrAnchor) {
  YamlDocument document = parseOk("top:\n  - x\nflow: &f {k: v}\n");
  const auto entries = root(document).entries();
  ASSERT_EQ(entries.size(), 2u);
  EXPECT_EQ(root(document).position().line, 1);
  EXPECT_EQ(entries[0].value->position().line, 2);
  EXPECT_EQ(entries[0].value->position().column, 3);
  EXPECT_EQ(entries[1].value->position().line, 3);
  EXPECT_EQ(entries[1].value->position().column, 7);
}

TEST(YamlDocumentTest, AnAliasIsTheAnchoredNode) {
  YamlDocument document = parseOk("a: &x {k: v}\nb: *x\nc: &x other\nd: *x\n");
  const auto entries = root(document).entries();
  ASSERT_EQ(entries.size(), 4u);
  EXPECT_EQ(entries[1].value, entries[0].value);
  EXPECT_EQ(entries[3].value, entries[2].value) << "a redefined anchor names the later node";
}

TEST(YamlDocumentTest, ASelfReferentialAliasIsACycle) {
  YamlDocument document = parseOk("&r [*r]\n");
  const YamlNode& sequence = root(document);
  ASSERT_EQ(sequence.items().size(), 1u);
  EXPECT_EQ(sequence.items()[0], &sequence);
}

TEST(YamlDocumentTest, AnUndefinedAliasIsAnErrorAtTheAlias) {
  EXPECT_EQ(errorOf("a: 1\nb: *nope\n"), "node.yaml:2:4: found undefined alias *nope");
  EXPECT_EQ(errorOf("a: &x 1\n---\nb: *x\n"), "node.yaml:3:4: found undefined alias *x")
      << "anchors end with their document";
}

TEST(YamlDocumentTest, EveryDocumentIsParsed) {
  YamlDocument document = parseOk("a: 1\n---\nb: 2\n--- c\n");
  const auto roots = document.documents();
  ASSERT_EQ(roots.size(), 3u);
  EXPECT_EQ(roots[1]->position().line, 3);
  EXPECT_EQ(roots[2]->text(), "c");
  EXPECT_EQ(errorOf("a: 1\n---\nb: [\n"), "node.yaml:4:1: did not find expected node content");
}

TEST(YamlDocumentTest, NothingButCommentsHasNoDocument) {
  EXPECT_TRUE(parseOk("").documents().empty());
  EXPECT_TRUE(parseOk("# a comment\n").documents().empty());
  ASSERT_EQ(parseOk("---\n").documents().size(), 1u);
  EXPECT_TRUE(parseOk("---\n").documents().front()->isNull());
}

TEST(YamlDocumentTest, SyntaxErrorsGiveLibyamlsProblemAndItsPosition) {
  EXPECT_EQ(errorOf("a: \"\\q\"\n"),
            "node.yaml:1:5: found unknown escape character (while parsing a quoted scalar at "
            "node.yaml:1:4)");
  EXPECT_EQ(errorOf("a:\n\tb: 1\n"), "node.yaml:2:1: found character that cannot start any token");
}

TEST(YamlDocumentTest, InvalidUtf8IsAnErrorAtItsCharacter) {
  EXPECT_EQ(errorOf("a: ok\nb: \xc3\xa9\xff\n"),
            "node.yaml:2:5: invalid leading UTF-8 octet (0xFF)");
}

TEST(YamlDocumentTest, NestingIsBounded) {
  const std::string deepest = std::string(kMaxYamlNesting, '[') + std::string(kMaxYamlNesting, ']');
  EXPECT_TRUE(root(parseOk(deepest)).isSequence());

  const std::string tooDeep =
      std::string(kMaxYamlNesting + 1, '[') + std::string(kMaxYamlNesting + 1, ']');
  EXPECT_EQ(errorOf(tooDeep), "node.yaml:1:" + std::to_string(kMaxYamlNesting + 1) +
                                  ": collections nest more than " +
                                  std::to_string(kMaxYamlNesting) + " levels deep");
  // A mapping and 64 sequences: "a:\n- - - … x".
  std::string block = "a:\n";
  for (size_t i = 0; i < kMaxYamlNesting; ++i) block += "- ";
  EXPECT_EQ(errorOf(block + "x\n"), "node.yaml:2:" + std::to_string(2 * kMaxYamlNesting - 1) +
                                        ": collections nest more than " +
                                        std::to_string(kMaxYamlNesting) + " levels deep");
}

TEST(YamlDocumentTest, MovingTheDocumentKeepsItsNodes) {
  YamlDocument first = parseOk("a: &x [1]\nb: *x\n");
  const YamlNode* before = first.documents().front();
  YamlDocument second = std::move(first);
  ASSERT_EQ(second.documents().front(), before);
  EXPECT_EQ(before->entries()[1].value->items()[0]->text(), "1");
}

}  // namespace
}  // namespace nodewarden::state
