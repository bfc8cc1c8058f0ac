#include "agent/core/address.h"

namespace nodewarden::core {

bool isHostPort(std::string_view text, HostPart host) {
  const size_t colon = text.rfind(':');
  if (colon == std::string_view::npos || colon + 1 == text.size()) return false;
  if (colon == 0 && host == HostPart::kRequired) return false;
  return text.find_first_not_of("0123456789", colon + 1) == std::string_view::npos;
}

}  // namespace nodewarden::core
