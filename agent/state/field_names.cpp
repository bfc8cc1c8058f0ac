#include "agent/state/field_names.h"

#include <google/protobuf/descriptor.h>

#include <algorithm>
#include <cctype>

#include "nodewarden/v1/options.pb.h"

namespace nodewarden::state {

std::string lowercase(std::string_view text) {
  std::string out(text);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

std::string enumValuePrefix(const google::protobuf::EnumDescriptor* type) {
  std::string prefix;
  const std::string& name = type->name();
  for (size_t i = 0; i < name.size(); ++i) {
    const auto c = static_cast<unsigned char>(name[i]);
    if (i > 0 && std::isupper(c) && !std::isupper(static_cast<unsigned char>(name[i - 1]))) {
      prefix += '_';
    }
    prefix += static_cast<char>(std::toupper(c));
  }
  return prefix + "_";
}

std::string writtenEnumName(const google::protobuf::EnumValueDescriptor* value,
                            const std::string& prefix) {
  std::string_view name = value->name();
  if (name.starts_with(prefix)) name.remove_prefix(prefix.size());
  return lowercase(name);
}

bool isOctalMode(const google::protobuf::FieldDescriptor* field) {
  return field->options().GetExtension(v1::hints).octal_mode();
}

}  // namespace nodewarden::state
