#include "agent/state/yaml_mapping.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/message.h>

#include <algorithm>
#include <cassert>
#include <cctype>
#include <charconv>
#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <variant>

#include "agent/state/field_names.h"
#include "agent/state/yaml_document.h"

namespace nodewarden::state {

namespace {

namespace pb = google::protobuf;

using Cpp = pb::FieldDescriptor::CppType;

constexpr uint32_t kMaxMode = 07777;
constexpr size_t kShownScalarBytes = 40;

struct EnumNumber {
  int number = 0;
};
using Value = std::variant<std::string, bool, int64_t, uint64_t, double, EnumNumber>;

// An empty value (`mode:` and nothing) has no text to point at, so errors
// about a null value point at its key instead.
Position valuePosition(const YamlNode& key, const YamlNode& value) {
  return value.isNull() ? key.position() : value.position();
}

// Plain scalars are the ones YAML resolves to booleans and numbers; a quoted
// "true" is a string, and so is a tagged one (`!!str true`).
bool isPlain(const YamlNode& node) {
  return node.style() == YamlNode::Style::kPlain && node.tag().empty();
}

std::string quoted(std::string_view text) {
  if (text.size() <= kShownScalarBytes) return "\"" + std::string(text) + "\"";
  return "\"" + std::string(text.substr(0, kShownScalarBytes)) + "...\"";
}

std::string describeNode(const YamlNode& node) {
  switch (node.kind()) {
    case YamlNode::Kind::kNull:
      return "null";
    case YamlNode::Kind::kScalar:
      return quoted(node.text());
    case YamlNode::Kind::kSequence:
      return "a sequence";
    case YamlNode::Kind::kMapping:
      return "a mapping";
  }
  return "nothing";
}

// The values a person may write: all but 0, which proto3 reserves for "not set"
// (the *_UNSPECIFIED value), written by leaving the field out.
std::vector<const pb::EnumValueDescriptor*> writableEnumValues(const pb::EnumDescriptor* type) {
  std::vector<const pb::EnumValueDescriptor*> values;
  for (int i = 0; i < type->value_count(); ++i) {
    if (type->value(i)->number() != 0) values.push_back(type->value(i));
  }
  return values;
}

std::string enumChoices(const pb::EnumDescriptor* type) {
  const std::string prefix = enumValuePrefix(type);
  std::string out;
  for (const auto* value : writableEnumValues(type)) {
    out += (out.empty() ? "" : ", ") + writtenEnumName(value, prefix);
  }
  return out;
}

// What a scalar field (or one element of a repeated one) takes.
std::string expectedKind(const pb::FieldDescriptor* field) {
  if (isOctalMode(field)) return "an octal mode like 0644";
  switch (field->cpp_type()) {
    case Cpp::CPPTYPE_STRING:
      return "a string";
    case Cpp::CPPTYPE_BOOL:
      return "true or false";
    case Cpp::CPPTYPE_ENUM:
      return "one of: " + enumChoices(field->enum_type());
    case Cpp::CPPTYPE_MESSAGE:
      return "a mapping";
    case Cpp::CPPTYPE_DOUBLE:
    case Cpp::CPPTYPE_FLOAT:
      return "a number";
    default:
      return "an integer";
  }
}

// Optimal string alignment distance (edits, with a transposition counting as
// one), ignoring case: "contnet" is one edit from "content".
size_t editDistance(std::string_view a, std::string_view b) {
  const std::string x = lowercase(a);
  const std::string y = lowercase(b);
  std::vector<std::vector<size_t>> d(x.size() + 1, std::vector<size_t>(y.size() + 1));
  for (size_t i = 0; i <= x.size(); ++i) d[i][0] = i;
  for (size_t j = 0; j <= y.size(); ++j) d[0][j] = j;
  for (size_t i = 1; i <= x.size(); ++i) {
    for (size_t j = 1; j <= y.size(); ++j) {
      const size_t cost = x[i - 1] == y[j - 1] ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && x[i - 1] == y[j - 2] && x[i - 2] == y[j - 1]) {
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[x.size()][y.size()];
}

// "restart_on" and "RestartOn" are spellings of restartOn, not typos.
std::string foldSpelling(std::string_view name) {
  std::string out;
  for (char c : lowercase(name)) {
    if (c != '_' && c != '-') out += c;
  }
  return out;
}

std::string unknownFieldMessage(const pb::Descriptor* type, std::string_view name) {
  std::vector<std::string> names;
  std::string all;
  for (int i = 0; i < type->field_count(); ++i) {
    names.push_back(type->field(i)->json_name());
    all += (all.empty() ? "" : ", ") + names.back();
  }
  if (auto nearest = nearestName(name, names)) {
    return "unknown field; did you mean \"" + *nearest + "\"?";
  }
  return "unknown field; expected one of: " + all;
}

const pb::FieldDescriptor* findField(const pb::Descriptor* type, std::string_view jsonName) {
  for (int i = 0; i < type->field_count(); ++i) {
    if (type->field(i)->json_name() == jsonName) return type->field(i);
  }
  return nullptr;
}

// Modes are octal however they are written: 0644, "0644", "644", 0o644.
std::optional<uint32_t> parseOctalMode(std::string_view text, std::string& problem) {
  std::string_view digits = text;
  if (digits.starts_with("0o")) digits.remove_prefix(2);
  if (digits.empty() || digits.find_first_not_of("01234567") != std::string_view::npos) {
    problem = std::string(text) + " is not an octal mode";
    return std::nullopt;
  }
  uint32_t mode = 0;
  for (char c : digits) {
    mode = mode * 8 + static_cast<uint32_t>(c - '0');
    if (mode > kMaxMode) {
      problem = std::string(text) + " is greater than 07777";
      return std::nullopt;
    }
  }
  return mode;
}

template <typename T>
std::optional<T> parseNumber(std::string_view text) {
  T value{};
  const char* end = text.data() + text.size();
  auto [next, error] = std::from_chars(text.data(), end, value);
  if (error != std::errc() || next != end || text.empty()) return std::nullopt;
  return value;
}

template <typename T>
bool fits(const pb::FieldDescriptor* field, T value) {
  switch (field->cpp_type()) {
    case Cpp::CPPTYPE_INT32:
      return std::in_range<int32_t>(value);
    case Cpp::CPPTYPE_INT64:
      return std::in_range<int64_t>(value);
    case Cpp::CPPTYPE_UINT32:
      return std::in_range<uint32_t>(value);
    default:
      return std::in_range<uint64_t>(value);
  }
}

Value defaultValue(const pb::FieldDescriptor* field) {
  switch (field->cpp_type()) {
    case Cpp::CPPTYPE_STRING:
      return std::string();
    case Cpp::CPPTYPE_BOOL:
      return false;
    case Cpp::CPPTYPE_INT32:
    case Cpp::CPPTYPE_INT64:
      return int64_t{0};
    case Cpp::CPPTYPE_UINT32:
    case Cpp::CPPTYPE_UINT64:
      return uint64_t{0};
    case Cpp::CPPTYPE_DOUBLE:
    case Cpp::CPPTYPE_FLOAT:
      return 0.0;
    case Cpp::CPPTYPE_ENUM:
      return EnumNumber{};
    case Cpp::CPPTYPE_MESSAGE:
      break;
  }
  assert(false && "messages are not scalars");
  return std::string();
}

// Sets a singular field or appends to a repeated one; `value` matches the
// field's type (convert() made it so).
void store(pb::Message& message, const pb::FieldDescriptor* field, Value value) {
  const pb::Reflection* r = message.GetReflection();
  const bool add = field->is_repeated();
  switch (field->cpp_type()) {
    case Cpp::CPPTYPE_STRING: {
      auto& text = std::get<std::string>(value);
      add ? r->AddString(&message, field, std::move(text))
          : r->SetString(&message, field, std::move(text));
      return;
    }
    case Cpp::CPPTYPE_BOOL:
      add ? r->AddBool(&message, field, std::get<bool>(value))
          : r->SetBool(&message, field, std::get<bool>(value));
      return;
    case Cpp::CPPTYPE_INT32: {
      const auto v = static_cast<int32_t>(std::get<int64_t>(value));
      add ? r->AddInt32(&message, field, v) : r->SetInt32(&message, field, v);
      return;
    }
    case Cpp::CPPTYPE_INT64: {
      const int64_t v = std::get<int64_t>(value);
      add ? r->AddInt64(&message, field, v) : r->SetInt64(&message, field, v);
      return;
    }
    case Cpp::CPPTYPE_UINT32: {
      const auto v = static_cast<uint32_t>(std::get<uint64_t>(value));
      add ? r->AddUInt32(&message, field, v) : r->SetUInt32(&message, field, v);
      return;
    }
    case Cpp::CPPTYPE_UINT64: {
      const uint64_t v = std::get<uint64_t>(value);
      add ? r->AddUInt64(&message, field, v) : r->SetUInt64(&message, field, v);
      return;
    }
    case Cpp::CPPTYPE_DOUBLE: {
      const double v = std::get<double>(value);
      add ? r->AddDouble(&message, field, v) : r->SetDouble(&message, field, v);
      return;
    }
    case Cpp::CPPTYPE_FLOAT: {
      const auto v = static_cast<float>(std::get<double>(value));
      add ? r->AddFloat(&message, field, v) : r->SetFloat(&message, field, v);
      return;
    }
    case Cpp::CPPTYPE_ENUM: {
      const int v = std::get<EnumNumber>(value).number;
      add ? r->AddEnumValue(&message, field, v) : r->SetEnumValue(&message, field, v);
      return;
    }
    case Cpp::CPPTYPE_MESSAGE:
      break;
  }
  assert(false && "messages are not scalars");
}

// Converts a scalar for `field`, or says why it does not fit.
std::optional<Value> convert(const YamlNode& node, const pb::FieldDescriptor* field,
                             std::string& problem) {
  if (!node.isScalar()) {
    problem = "expected " + expectedKind(field) + ", got " + describeNode(node);
    if (node.isNull() && field->cpp_type() == Cpp::CPPTYPE_STRING) {
      problem += "; write \"\" for an empty string";
    }
    return std::nullopt;
  }
  const std::string& text = node.text();
  switch (field->cpp_type()) {
    case Cpp::CPPTYPE_STRING:
      return text;
    case Cpp::CPPTYPE_BOOL:
      if (isPlain(node)) {
        if (text == "true" || text == "True" || text == "TRUE") return true;
        if (text == "false" || text == "False" || text == "FALSE") return false;
        problem = text + " is not a boolean; write true or false (YAML 1.2: yes, no, on and off " +
                  "are strings)";
      } else {
        problem = "expected true or false, got the quoted string " + quoted(text) +
                  "; write it without quotes";
      }
      return std::nullopt;
    case Cpp::CPPTYPE_ENUM: {
      const auto* type = field->enum_type();
      const std::string prefix = enumValuePrefix(type);
      for (const auto* value : writableEnumValues(type)) {
        if (writtenEnumName(value, prefix) == lowercase(text)) return EnumNumber{value->number()};
      }
      problem = quoted(text) + " is not valid; expected one of: " + enumChoices(type);
      return std::nullopt;
    }
    case Cpp::CPPTYPE_INT32:
    case Cpp::CPPTYPE_INT64:
    case Cpp::CPPTYPE_UINT32:
    case Cpp::CPPTYPE_UINT64: {
      const bool isUnsigned =
          field->cpp_type() == Cpp::CPPTYPE_UINT32 || field->cpp_type() == Cpp::CPPTYPE_UINT64;
      if (isOctalMode(field)) {
        auto mode = parseOctalMode(text, problem);
        if (!mode) return std::nullopt;
        return isUnsigned ? Value(uint64_t{*mode}) : Value(int64_t{*mode});
      }
      if (!isPlain(node)) {
        problem = "expected an integer, got the quoted string " + quoted(text);
        return std::nullopt;
      }
      if (isUnsigned) {
        auto value = parseNumber<uint64_t>(text);
        if (value && fits(field, *value)) return *value;
      } else {
        auto value = parseNumber<int64_t>(text);
        if (value && fits(field, *value)) return *value;
      }
      problem = quoted(text) + " is not " + (isUnsigned ? "a non-negative " : "an ") +
                "integer in the range of " + field->cpp_type_name();
      return std::nullopt;
    }
    case Cpp::CPPTYPE_DOUBLE:
    case Cpp::CPPTYPE_FLOAT: {
      auto value = isPlain(node) ? parseNumber<double>(text) : std::nullopt;
      if (value) return *value;
      problem = "expected a number, got " + quoted(text);
      return std::nullopt;
    }
    case Cpp::CPPTYPE_MESSAGE:
      break;
  }
  assert(false && "messages are not scalars");
  return std::nullopt;
}

class Mapper final {
 public:
  Mapper(const MappingLimits& limits, SourceMap& sources) : limits_(limits), sources_(sources) {}

  void mapMessage(const YamlNode& node, pb::Message& message, const std::string& path) {
    if (!charge(node, 0)) return;
    // A mapping left empty (`metadata:` with nothing after it) sets nothing.
    if (node.isNull()) return;
    if (!node.isMapping()) {
      error(node.position(), path, "expected a mapping, got " + describeNode(node));
      return;
    }
    const pb::Descriptor* type = message.GetDescriptor();
    std::map<std::string, Position, std::less<>> seen;
    std::map<const pb::OneofDescriptor*, const pb::FieldDescriptor*> oneofs;
    for (const auto [keyNode, valueNode] : node.entries()) {
      const YamlNode& key = *keyNode;
      const YamlNode& value = *valueNode;
      if (!charge(key, 0)) return;
      const Position keyPosition = key.position();
      if (!key.isScalar()) {
        error(keyPosition, path, "expected a field name, got " + describeNode(key));
        continue;
      }
      const std::string& name = key.text();
      const std::string fieldPath = path.empty() ? name : path + "." + name;
      if (auto [first, inserted] = seen.try_emplace(name, keyPosition); !inserted) {
        // The document keeps both entries; the first one wins and this one is an error.
        error(keyPosition, fieldPath, "duplicate field; first set at " + where(first->second));
        continue;
      }
      const pb::FieldDescriptor* field = findField(type, name);
      if (!field) {
        error(keyPosition, fieldPath, unknownFieldMessage(type, name));
        continue;
      }
      if (const auto* oneof = field->real_containing_oneof()) {
        if (auto [other, inserted] = oneofs.try_emplace(oneof, field); !inserted) {
          error(keyPosition, fieldPath,
                "\"" + other->second->json_name() + "\" and \"" + field->json_name() +
                    "\" are alternatives; set only one");
          continue;
        }
      }
      mapField(key, value, message, field, fieldPath);
    }
  }

  std::vector<Diagnostic> takeErrors() { return std::move(errors_); }
  bool exhausted() const { return exhausted_; }

 private:
  void mapField(const YamlNode& key, const YamlNode& value, pb::Message& message,
                const pb::FieldDescriptor* field, const std::string& path) {
    const Position position = valuePosition(key, value);
    sources_.add(path, position);
    if (field->is_map()) {
      mapStringMap(value, position, message, field, path);
    } else if (field->is_repeated()) {
      mapSequence(value, position, message, field, path);
    } else if (field->cpp_type() == Cpp::CPPTYPE_MESSAGE) {
      // `metadata:` with nothing after it leaves the message unset, not empty.
      if (value.isNull()) return;
      mapMessage(value, *message.GetReflection()->MutableMessage(&message, field), path);
    } else {
      mapScalar(value, position, message, field, path);
    }
  }

  void mapSequence(const YamlNode& node, Position position, pb::Message& message,
                   const pb::FieldDescriptor* field, const std::string& path) {
    if (node.isNull()) return;
    if (!node.isSequence()) {
      error(position, path, "expected a sequence, got " + describeNode(node));
      return;
    }
    size_t index = 0;
    for (const YamlNode* item : node.items()) {
      if (exhausted_) return;
      const YamlNode& element = *item;
      const std::string elementPath = path + "[" + std::to_string(index++) + "]";
      const Position elementPosition = element.isNull() ? position : element.position();
      sources_.add(elementPath, elementPosition);
      if (field->cpp_type() == Cpp::CPPTYPE_MESSAGE) {
        mapMessage(element, *message.GetReflection()->AddMessage(&message, field), elementPath);
      } else {
        mapScalar(element, elementPosition, message, field, elementPath);
      }
    }
  }

  // map<K, V> fields are repeated entry messages to reflection; the YAML form is
  // a mapping of scalars (labels: {role: worker}).
  void mapStringMap(const YamlNode& node, Position position, pb::Message& message,
                    const pb::FieldDescriptor* field, const std::string& path) {
    if (node.isNull()) return;
    if (!node.isMapping()) {
      error(position, path, "expected a mapping, got " + describeNode(node));
      return;
    }
    const pb::Descriptor* entryType = field->message_type();
    const pb::FieldDescriptor* keyField = entryType->map_key();
    const pb::FieldDescriptor* valueField = entryType->map_value();
    std::map<std::string, Position, std::less<>> seen;
    for (const auto [keyNode, valueNode] : node.entries()) {
      const YamlNode& key = *keyNode;
      const YamlNode& value = *valueNode;
      if (!charge(key, 0)) return;
      const Position keyPosition = key.position();
      std::string problem;
      auto keyValue = convert(key, keyField, problem);
      if (!keyValue) {
        error(keyPosition, path, "key: " + problem);
        continue;
      }
      const std::string entryPath = path + "[\"" + key.text() + "\"]";
      if (auto [first, inserted] = seen.try_emplace(key.text(), keyPosition); !inserted) {
        error(keyPosition, entryPath, "duplicate key; first set at " + where(first->second));
        continue;
      }
      if (valueField->cpp_type() == Cpp::CPPTYPE_MESSAGE) {
        error(keyPosition, entryPath, "maps of messages are not supported");
        continue;
      }
      const Position valueAt = valuePosition(key, value);
      sources_.add(entryPath, valueAt);
      auto converted = convert(value, valueField, problem);
      if (!converted) {
        error(valueAt, entryPath, problem);
        continue;
      }
      if (!charge(value, key.text().size() + value.text().size())) return;
      pb::Message* mapEntry = message.GetReflection()->AddMessage(&message, field);
      store(*mapEntry, keyField, std::move(*keyValue));
      store(*mapEntry, valueField, std::move(*converted));
    }
  }

  void mapScalar(const YamlNode& node, Position position, pb::Message& message,
                 const pb::FieldDescriptor* field, const std::string& path) {
    std::string problem;
    std::optional<Value> value = convert(node, field, problem);
    const bool copies = value && field->cpp_type() == Cpp::CPPTYPE_STRING;
    if (!charge(node, copies ? node.text().size() : 0)) return;
    if (value) {
      store(message, field, std::move(*value));
      return;
    }
    error(position, path, problem);
    // A default element keeps the indices after it matching the document.
    if (field->is_repeated()) store(message, field, defaultValue(field));
  }

  // Counts a visited node and copied bytes against the limits; false (after
  // one error) once they are exceeded, and mapping stops.
  bool charge(const YamlNode& node, size_t bytes) {
    if (exhausted_) return false;
    nodes_ += 1;
    bytes_ += bytes;
    if (nodes_ <= limits_.maxNodes && bytes_ <= limits_.maxBytes) return true;
    exhausted_ = true;
    error(node.position(), "",
          "the document expands (through aliases) beyond the size limit of a state");
    return false;
  }

  std::string where(Position position) const {
    return Diagnostic{.file = sources_.file(), .line = position.line, .column = position.column}
        .toString();
  }

  void error(Position position, std::string path, std::string message) {
    errors_.push_back(Diagnostic{.file = sources_.file(),
                                 .line = position.line,
                                 .column = position.column,
                                 .path = std::move(path),
                                 .message = std::move(message)});
  }

  const MappingLimits limits_;
  SourceMap& sources_;
  std::vector<Diagnostic> errors_;
  size_t nodes_ = 0;
  size_t bytes_ = 0;
  bool exhausted_ = false;
};

}  // namespace

std::optional<std::string> nearestName(std::string_view name,
                                       const std::vector<std::string>& candidates) {
  // Names longer than any field or package are not worth an O(n·m) comparison.
  constexpr size_t kLongestCompared = 64;
  if (name.size() > kLongestCompared) return std::nullopt;
  const std::string* nearest = nullptr;
  size_t nearestDistance = std::numeric_limits<size_t>::max();
  for (const std::string& candidate : candidates) {
    if (candidate.size() > kLongestCompared) continue;
    const size_t distance =
        foldSpelling(name) == foldSpelling(candidate) ? 0 : editDistance(name, candidate);
    // A third of the longer name may differ: "state" → "status" is close,
    // "name" → "mode" is not.
    const size_t allowed = std::max<size_t>(1, std::max(name.size(), candidate.size()) / 3);
    if (distance <= allowed && distance < nearestDistance) {
      nearest = &candidate;
      nearestDistance = distance;
    }
  }
  if (!nearest) return std::nullopt;
  return *nearest;
}

MappingOutcome mapYaml(const YamlNode& node, pb::Message& message, const MappingLimits& limits,
                       SourceMap& sources) {
  Mapper mapper(limits, sources);
  mapper.mapMessage(node, message, "");
  return MappingOutcome{.errors = mapper.takeErrors(), .complete = !mapper.exhausted()};
}

}  // namespace nodewarden::state
