#pragma once

#include <functional>
#include <map>
#include <string>
#include <string_view>

#include "agent/core/status.h"
#include "agent/packages/installed_package.h"

namespace nodewarden::packages {

// Packages by name. A name dpkg records for more than one architecture (libc6:amd64 and
// libc6:i386) is keyed "name:arch" for each of them; every other package by its bare name.
using DpkgPackages = std::map<std::string, InstalledPackage, std::less<>>;

// Parses dpkg's status database (/var/lib/dpkg/status): stanzas of "Field: value" lines,
// continuation lines starting with a space or tab, blank lines between stanzas. Every stanza
// is kept, including packages that are only selected or left with their config files; check
// InstalledPackage::installed. Malformed text is an error naming the line.
[[nodiscard]] core::Result<DpkgPackages> parseDpkgStatus(std::string_view statusFileText);

}  // namespace nodewarden::packages
