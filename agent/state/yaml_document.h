#pragma once

#include <cstddef>
#include <deque>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "agent/state/diagnostic.h"

namespace nodewarden::state {

// Internal to agent/state: a YAML stream parsed by libyaml, for the mapper.

// Deeper nesting is refused: no schema comes close, and libyaml's work for
// each token grows with the number of open flow collections (`[[[[...`).
inline constexpr size_t kMaxYamlNesting = 64;

// One node of a YamlDocument. Nodes belong to their document and are only
// handed out const; an alias is the node its anchor names, so one node may sit
// in several places (or, through a self-referential alias, inside itself).
class YamlNode final {
 public:
  enum class Kind { kNull, kScalar, kSequence, kMapping };
  enum class Style { kPlain, kSingleQuoted, kDoubleQuoted, kLiteral, kFolded };

  // A mapping entry in document order; duplicate keys are all kept.
  struct Entry {
    const YamlNode* key;
    const YamlNode* value;
  };

  Kind kind() const { return kind_; }
  bool isNull() const { return kind_ == Kind::kNull; }
  bool isScalar() const { return kind_ == Kind::kScalar; }
  bool isSequence() const { return kind_ == Kind::kSequence; }
  bool isMapping() const { return kind_ == Kind::kMapping; }

  // A scalar's text after escapes and folding; empty for other kinds.
  const std::string& text() const { return text_; }
  // How a scalar was written: only plain ones resolve to null, booleans and
  // numbers.
  Style style() const { return style_; }
  // The tag as written, with its handle expanded (`!!str` is
  // "tag:yaml.org,2002:str"); empty when the node has none.
  const std::string& tag() const { return tag_; }
  // Where the node starts, its anchor or tag included.
  Position position() const { return position_; }

  // A sequence's elements (never null); empty for other kinds.
  std::span<const YamlNode* const> items() const { return items_; }
  // A mapping's entries; empty for other kinds.
  std::span<const Entry> entries() const { return entries_; }

 private:
  friend class YamlTreeBuilder;

  Kind kind_ = Kind::kNull;
  Style style_ = Style::kPlain;
  Position position_;
  std::string text_;
  std::string tag_;
  std::vector<const YamlNode*> items_;
  std::vector<Entry> entries_;
};

// Every document of a YAML stream as a tree of YamlNodes. Move-only: nodes
// point at each other, so the document owns them all in one place.
class YamlDocument final {
 public:
  // Parses all of `text`, so that a syntax error in any document is found.
  // On failure returns where and why (libyaml's words for syntax errors),
  // with `file` as the diagnostic's file.
  static std::variant<YamlDocument, Diagnostic> parse(std::string_view text,
                                                      const std::string& file);

  YamlDocument(YamlDocument&&) = default;
  YamlDocument& operator=(YamlDocument&&) = default;
  YamlDocument(const YamlDocument&) = delete;
  YamlDocument& operator=(const YamlDocument&) = delete;
  ~YamlDocument() = default;

  // The root of each document in order (never null); none for a stream with
  // only comments or nothing at all. An empty document's root is a null node.
  std::span<const YamlNode* const> documents() const { return documents_; }

 private:
  friend class YamlTreeBuilder;

  YamlDocument() = default;

  std::deque<YamlNode> nodes_;  // a deque: growing it keeps nodes where they are
  std::vector<const YamlNode*> documents_;
};

}  // namespace nodewarden::state
