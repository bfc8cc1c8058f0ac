#include "agent/state/document.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/message.h>
#include <nlohmann/json.hpp>

#include <cassert>
#include <cstdint>
#include <cstdio>
#include <map>
#include <optional>
#include <string_view>
#include <utility>
#include <vector>

#include "agent/state/field_names.h"

namespace nodewarden::state {

namespace {

namespace pb = google::protobuf;

using Cpp = pb::FieldDescriptor::CppType;
// Keeps fields in the schema's order, as people write them.
using Json = nlohmann::ordered_json;

constexpr int kIndent = 2;

// "0644"; the leading 0 says octal to whoever reads it, set-id bits included
// ("04755").
std::string octalMode(uint64_t mode) {
  std::string digits;
  for (; mode != 0; mode /= 8) digits.insert(digits.begin(), static_cast<char>('0' + mode % 8));
  if (digits.size() < 3) digits.insert(0, 3 - digits.size(), '0');
  return "0" + digits;
}

std::string enumName(const pb::EnumValueDescriptor* value) {
  return writtenEnumName(value, enumValuePrefix(value->type()));
}

// One value of a scalar field: the singular field's when `index` is empty,
// else that element of the repeated field.
Json scalar(const pb::Message& message, const pb::FieldDescriptor* field,
            std::optional<int> index) {
  const pb::Reflection* r = message.GetReflection();
  auto integer = [&](auto value) -> Json {
    if (isOctalMode(field)) return octalMode(static_cast<uint64_t>(value));
    return value;
  };
  switch (field->cpp_type()) {
    case Cpp::CPPTYPE_STRING:
      return index ? r->GetRepeatedString(message, field, *index) : r->GetString(message, field);
    case Cpp::CPPTYPE_BOOL:
      return index ? r->GetRepeatedBool(message, field, *index) : r->GetBool(message, field);
    case Cpp::CPPTYPE_INT32:
      return integer(index ? r->GetRepeatedInt32(message, field, *index)
                           : r->GetInt32(message, field));
    case Cpp::CPPTYPE_INT64:
      return integer(index ? r->GetRepeatedInt64(message, field, *index)
                           : r->GetInt64(message, field));
    case Cpp::CPPTYPE_UINT32:
      return integer(index ? r->GetRepeatedUInt32(message, field, *index)
                           : r->GetUInt32(message, field));
    case Cpp::CPPTYPE_UINT64:
      return integer(index ? r->GetRepeatedUInt64(message, field, *index)
                           : r->GetUInt64(message, field));
    case Cpp::CPPTYPE_DOUBLE:
      return index ? r->GetRepeatedDouble(message, field, *index) : r->GetDouble(message, field);
    case Cpp::CPPTYPE_FLOAT:
      // The loader reads a double and narrows it, which gives back this float.
      return static_cast<double>(index ? r->GetRepeatedFloat(message, field, *index)
                                       : r->GetFloat(message, field));
    case Cpp::CPPTYPE_ENUM:
      return enumName(index ? r->GetRepeatedEnum(message, field, *index)
                            : r->GetEnum(message, field));
    case Cpp::CPPTYPE_MESSAGE:
      break;
  }
  assert(false && "messages are not scalars");
  return nullptr;
}

// A map key as an object key: only string keys read back (see document.h).
std::string mapKey(const pb::Message& entry, const pb::FieldDescriptor* keyField) {
  const Json key = scalar(entry, keyField, std::nullopt);
  return key.is_string() ? key.get<std::string>() : key.dump();
}

Json object(const pb::Message& message);

Json fieldValue(const pb::Message& message, const pb::FieldDescriptor* field) {
  const pb::Reflection* r = message.GetReflection();
  if (field->is_map()) {
    const pb::FieldDescriptor* keyField = field->message_type()->map_key();
    const pb::FieldDescriptor* valueField = field->message_type()->map_value();
    // A map's iteration order is unspecified; sorted, equal maps make equal
    // documents.
    std::map<std::string, Json> sorted;
    for (int i = 0; i < r->FieldSize(message, field); ++i) {
      const pb::Message& entry = r->GetRepeatedMessage(message, field, i);
      sorted.emplace(mapKey(entry, keyField),
                     valueField->cpp_type() == Cpp::CPPTYPE_MESSAGE
                         ? object(entry.GetReflection()->GetMessage(entry, valueField))
                         : scalar(entry, valueField, std::nullopt));
    }
    Json out = Json::object();
    for (auto& [key, value] : sorted) out[key] = std::move(value);
    return out;
  }
  if (field->is_repeated()) {
    Json out = Json::array();
    for (int i = 0; i < r->FieldSize(message, field); ++i) {
      out.push_back(field->cpp_type() == Cpp::CPPTYPE_MESSAGE
                        ? object(r->GetRepeatedMessage(message, field, i))
                        : scalar(message, field, i));
    }
    return out;
  }
  if (field->cpp_type() == Cpp::CPPTYPE_MESSAGE) return object(r->GetMessage(message, field));
  return scalar(message, field, std::nullopt);
}

Json object(const pb::Message& message) {
  // ListFields() gives the fields the message holds, in field-number order:
  // what proto3 leaves out (defaults, unset messages, empty lists) is not there.
  std::vector<const pb::FieldDescriptor*> fields;
  message.GetReflection()->ListFields(message, &fields);
  Json out = Json::object();
  for (const pb::FieldDescriptor* field : fields) {
    out[field->json_name()] = fieldValue(message, field);
  }
  return out;
}

// The code point of the UTF-8 sequence at `at` and its length in bytes; the
// dump is valid UTF-8 (invalid input was replaced).
std::pair<uint32_t, size_t> codePointAt(std::string_view text, size_t at) {
  const auto lead = static_cast<unsigned char>(text[at]);
  const size_t length = lead < 0x80 ? 1 : lead < 0xe0 ? 2 : lead < 0xf0 ? 3 : 4;
  uint32_t c = length == 1 ? lead : lead & (0x7fu >> length);
  for (size_t i = 1; i < length && at + i < text.size(); ++i) {
    c = (c << 6) | (static_cast<unsigned char>(text[at + i]) & 0x3fu);
  }
  return {c, length};
}

// Code points JSON allows raw in a string but YAML does not read back as
// themselves: libyaml refuses DEL, the C1 controls, U+FFFE and U+FFFF, takes
// U+0085, U+2028 and U+2029 for line breaks (folded in a quoted scalar), and
// skips U+FEFF as a byte order mark in places.
bool unreadableInYaml(uint32_t c) {
  return (c >= 0x7f && c <= 0x9f) || c == 0x2028 || c == 0x2029 || c == 0xfeff || c == 0xfffe ||
         c == 0xffff;
}

}  // namespace

std::string toDocument(const pb::Message& message) {
  const std::string json =
      object(message).dump(kIndent, ' ', false, Json::error_handler_t::replace);
  std::string out;
  out.reserve(json.size() + 1);
  // Escaping is safe anywhere: these code points occur only inside strings.
  for (size_t i = 0; i < json.size();) {
    const auto [c, length] = codePointAt(json, i);
    if (unreadableInYaml(c)) {
      char escape[sizeof "\\uffff"];
      std::snprintf(escape, sizeof escape, "\\u%04x", static_cast<unsigned>(c));
      out += escape;
    } else {
      out.append(json, i, length);
    }
    i += length;
  }
  out += '\n';
  return out;
}

}  // namespace nodewarden::state
