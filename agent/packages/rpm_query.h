#pragma once

#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "agent/core/status.h"
#include "agent/packages/installed_package.h"

namespace nodewarden::packages {

// The format parseRpmQuery reads; pass it to `rpm -qa --queryformat`.
inline constexpr std::string_view kRpmQueryFormat =
    "%{NAME}\\t%{EPOCHNUM}\\t%{VERSION}\\t%{RELEASE}\\t%{ARCH}\\n";

// Packages by name. rpm can hold several versions of one name at once (kernel, gpg-pubkey),
// so each name maps to all of them, oldest first by rpm's version order.
using RpmPackages = std::map<std::string, std::vector<InstalledPackage>, std::less<>>;

// Parses the output of one `rpm -qa --queryformat kRpmQueryFormat` call. Versions read
// "epoch:version-release", without the epoch when it is 0; an architecture of "(none)"
// becomes empty. A line without exactly five fields is an error naming the line.
[[nodiscard]] core::Result<RpmPackages> parseRpmQuery(std::string_view output);

}  // namespace nodewarden::packages
