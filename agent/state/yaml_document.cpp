#include "agent/state/yaml_document.h"

#include <yaml.h>

#include <cstdio>
#include <map>
#include <memory>
#include <new>
#include <optional>
#include <string>
#include <utility>

namespace nodewarden::state {

namespace {

struct ParserDeleter {
  void operator()(yaml_parser_t* parser) const {
    yaml_parser_delete(parser);
    delete parser;
  }
};

// Heap-allocated because libyaml keeps a pointer to the parser inside it.
using ParserHandle = std::unique_ptr<yaml_parser_t, ParserDeleter>;

ParserHandle openParser(std::string_view text) {
  auto parser = std::make_unique<yaml_parser_t>();
  if (!yaml_parser_initialize(parser.get())) return nullptr;
  ParserHandle handle(parser.release());
  yaml_parser_set_input_string(handle.get(), reinterpret_cast<const unsigned char*>(text.data()),
                               text.size());
  return handle;
}

// One event from the parser, with the strings libyaml allocated for it.
class ParserEvent final {
 public:
  ParserEvent() = default;
  ParserEvent(ParserEvent&& other) noexcept : event_(std::exchange(other.event_, {})) {}
  ParserEvent& operator=(ParserEvent&& other) noexcept {
    if (this != &other) {
      yaml_event_delete(&event_);
      event_ = std::exchange(other.event_, {});
    }
    return *this;
  }
  ParserEvent(const ParserEvent&) = delete;
  ParserEvent& operator=(const ParserEvent&) = delete;
  ~ParserEvent() { yaml_event_delete(&event_); }

  // False on a syntax error, which the parser then describes.
  bool next(yaml_parser_t& parser) {
    yaml_event_delete(&event_);
    return yaml_parser_parse(&parser, &event_) != 0;
  }
  const yaml_event_t& operator*() const { return event_; }
  const yaml_event_t* operator->() const { return &event_; }

 private:
  yaml_event_t event_{};
};

Position positionOf(const yaml_mark_t& mark) {
  return {static_cast<int>(mark.line) + 1, static_cast<int>(mark.column) + 1};
}

// libyaml gives the reader's errors (bad UTF-8, control characters) as a byte
// offset; columns count characters, as libyaml's marks do.
Position positionAtOffset(std::string_view text, size_t offset) {
  Position position{1, 1};
  for (size_t i = 0; i < offset && i < text.size(); ++i) {
    const auto byte = static_cast<unsigned char>(text[i]);
    if (byte == '\n') {
      position.line += 1;
      position.column = 1;
    } else if ((byte & 0xC0) != 0x80) {
      position.column += 1;
    }
  }
  return position;
}

std::string_view view(const yaml_char_t* text) {
  return text ? std::string_view(reinterpret_cast<const char*>(text)) : std::string_view();
}

std::string where(const std::string& file, Position position) {
  return Diagnostic{.file = file, .line = position.line, .column = position.column}.toString();
}

Diagnostic parserError(const yaml_parser_t& parser, std::string_view text,
                       const std::string& file) {
  Diagnostic error{.file = file};
  switch (parser.error) {
    case YAML_READER_ERROR: {
      const Position at = positionAtOffset(text, parser.problem_offset);
      error.line = at.line;
      error.column = at.column;
      error.message = parser.problem ? parser.problem : "cannot read the document";
      if (parser.problem_value >= 0) {
        char value[16];
        std::snprintf(value, sizeof value, " (0x%02X)",
                      static_cast<unsigned>(parser.problem_value));
        error.message += value;
      }
      return error;
    }
    case YAML_SCANNER_ERROR:
    case YAML_PARSER_ERROR: {
      const Position at = positionOf(parser.problem_mark);
      error.line = at.line;
      error.column = at.column;
      error.message = parser.problem ? parser.problem : "invalid YAML";
      // "while parsing a flow sequence" says most when it points elsewhere:
      // at the `[` that was never closed.
      const Position context = positionOf(parser.context_mark);
      if (parser.context && (context.line != at.line || context.column != at.column)) {
        error.message += std::string(" (") + parser.context + " at " + where(file, context) + ")";
      }
      return error;
    }
    case YAML_MEMORY_ERROR:
      error.message = "cannot parse YAML: out of memory";
      return error;
    default:
      error.message = std::string("cannot parse YAML: ") +
                      (parser.problem ? parser.problem : "unknown libyaml error");
      return error;
  }
}

// YAML 1.2's core schema: these plain scalars are null, as they were under
// yaml-cpp.
bool isNullText(std::string_view text) {
  return text.empty() || text == "~" || text == "null" || text == "Null" || text == "NULL";
}

YamlNode::Style styleOf(yaml_scalar_style_t style) {
  switch (style) {
    case YAML_SINGLE_QUOTED_SCALAR_STYLE:
      return YamlNode::Style::kSingleQuoted;
    case YAML_DOUBLE_QUOTED_SCALAR_STYLE:
      return YamlNode::Style::kDoubleQuoted;
    case YAML_LITERAL_SCALAR_STYLE:
      return YamlNode::Style::kLiteral;
    case YAML_FOLDED_SCALAR_STYLE:
      return YamlNode::Style::kFolded;
    default:
      return YamlNode::Style::kPlain;
  }
}

}  // namespace

// Turns the parser's events into nodes: collections open and close on a
// stack, anchors name the node they were set on until redefined or until the
// document ends.
class YamlTreeBuilder final {
 public:
  // Returns the error that stops parsing: an alias with no anchor before it,
  // or nesting beyond kMaxYamlNesting.
  std::optional<Diagnostic> add(const yaml_event_t& event, const std::string& file) {
    switch (event.type) {
      case YAML_DOCUMENT_START_EVENT:
        anchors_.clear();
        return std::nullopt;
      case YAML_ALIAS_EVENT: {
        auto it = anchors_.find(view(event.data.alias.anchor));
        if (it == anchors_.end()) {
          const Position at = positionOf(event.start_mark);
          return Diagnostic{
              .file = file,
              .line = at.line,
              .column = at.column,
              .message = "found undefined alias *" + std::string(view(event.data.alias.anchor))};
        }
        attach(it->second);
        return std::nullopt;
      }
      case YAML_SCALAR_EVENT: {
        const auto& scalar = event.data.scalar;
        YamlNode& node = addNode(event, scalar.anchor, scalar.tag);
        node.style_ = styleOf(scalar.style);
        node.text_.assign(reinterpret_cast<const char*>(scalar.value), scalar.length);
        const bool isNull =
            node.style_ == YamlNode::Style::kPlain && node.tag_.empty() && isNullText(node.text_);
        node.kind_ = isNull ? YamlNode::Kind::kNull : YamlNode::Kind::kScalar;
        if (isNull) node.text_.clear();
        return std::nullopt;
      }
      case YAML_SEQUENCE_START_EVENT: {
        if (open_.size() == kMaxYamlNesting) return tooDeep(event, file);
        YamlNode& node =
            addNode(event, event.data.sequence_start.anchor, event.data.sequence_start.tag);
        node.kind_ = YamlNode::Kind::kSequence;
        open_.push_back({&node});
        return std::nullopt;
      }
      case YAML_MAPPING_START_EVENT: {
        if (open_.size() == kMaxYamlNesting) return tooDeep(event, file);
        YamlNode& node =
            addNode(event, event.data.mapping_start.anchor, event.data.mapping_start.tag);
        node.kind_ = YamlNode::Kind::kMapping;
        open_.push_back({&node});
        return std::nullopt;
      }
      case YAML_SEQUENCE_END_EVENT:
      case YAML_MAPPING_END_EVENT:
        open_.pop_back();
        return std::nullopt;
      default:
        return std::nullopt;
    }
  }

  YamlDocument finish() { return std::move(document_); }

 private:
  struct OpenCollection {
    YamlNode* node;
    const YamlNode* pendingKey = nullptr;
  };

  static Diagnostic tooDeep(const yaml_event_t& event, const std::string& file) {
    const Position at = positionOf(event.start_mark);
    return Diagnostic{.file = file,
                      .line = at.line,
                      .column = at.column,
                      .message = "collections nest more than " + std::to_string(kMaxYamlNesting) +
                                 " levels deep"};
  }

  YamlNode& addNode(const yaml_event_t& event, const yaml_char_t* anchor, const yaml_char_t* tag) {
    YamlNode& node = document_.nodes_.emplace_back();
    node.position_ = positionOf(event.start_mark);
    node.tag_ = view(tag);
    // Anchored before its contents are added, so an alias inside refers to it.
    if (anchor) anchors_.insert_or_assign(std::string(view(anchor)), &node);
    attach(&node);
    return node;
  }

  void attach(const YamlNode* node) {
    if (open_.empty()) {
      document_.documents_.push_back(node);
      return;
    }
    OpenCollection& parent = open_.back();
    if (parent.node->kind_ == YamlNode::Kind::kSequence) {
      parent.node->items_.push_back(node);
    } else if (!parent.pendingKey) {
      parent.pendingKey = node;
    } else {
      parent.node->entries_.push_back({parent.pendingKey, node});
      parent.pendingKey = nullptr;
    }
  }

  YamlDocument document_;
  std::vector<OpenCollection> open_;
  std::map<std::string, const YamlNode*, std::less<>> anchors_;
};

std::variant<YamlDocument, Diagnostic> YamlDocument::parse(std::string_view text,
                                                           const std::string& file) {
  try {
    ParserHandle parser = openParser(text);
    if (!parser) return Diagnostic{.file = file, .message = "cannot parse YAML: out of memory"};
    YamlTreeBuilder builder;
    ParserEvent event;
    do {
      if (!event.next(*parser)) return parserError(*parser, text, file);
      if (auto error = builder.add(*event, file)) return std::move(*error);
    } while (event->type != YAML_STREAM_END_EVENT);
    return builder.finish();
  } catch (const std::bad_alloc&) {
    // The tree grows with the document; a document too big for memory is
    // rejected, not the agent stopped.
    return Diagnostic{.file = file, .message = "cannot parse YAML: out of memory"};
  }
}

}  // namespace nodewarden::state
