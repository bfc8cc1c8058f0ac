#pragma once

#include <functional>
#include <set>
#include <string>
#include <string_view>

#include "agent/core/status.h"

namespace nodewarden::packages {

// Parses the output of `apt-mark showhold`: one held package per line ("name" or
// "name:arch"). Blank lines are ignored; a line that isn't a package name is an error.
[[nodiscard]] core::Result<std::set<std::string, std::less<>>> parseAptMarkShowhold(
    std::string_view output);

}  // namespace nodewarden::packages
