#pragma once

#include <string>
#include <string_view>

namespace google::protobuf {
class EnumDescriptor;
class EnumValueDescriptor;
class FieldDescriptor;
}  // namespace google::protobuf

namespace nodewarden::state {

// Internal to agent/state: how documents spell what the schema names. The
// loader reads these spellings and toDocument() writes them, so both use
// these functions and cannot drift apart.

// ASCII lower case: names are compared ignoring case.
std::string lowercase(std::string_view text);

// "UnitState" → "UNIT_STATE_", the prefix proto style puts on every value.
std::string enumValuePrefix(const google::protobuf::EnumDescriptor* type);

// How people write an enum value: UNIT_STATE_RUNNING is `running`. `prefix` is
// enumValuePrefix() of the value's type.
std::string writtenEnumName(const google::protobuf::EnumValueDescriptor* value,
                            const std::string& prefix);

// The field is a Unix permission mode written in octal ("0644").
bool isOctalMode(const google::protobuf::FieldDescriptor* field);

}  // namespace nodewarden::state
