#pragma once

#include <compare>
#include <string_view>

namespace nodewarden::packages {

// Orders two Debian versions "[epoch:]upstream[-revision]" as dpkg does: epochs by number,
// then upstream and revision alternating non-digit runs (where '~' sorts before everything,
// even the end, and letters before other characters) and numbers. "1.0" and "1.00" are
// equivalent. Versions are not validated here; the desired state's loader does that.
std::weak_ordering compareDebianVersions(std::string_view a, std::string_view b);

// Orders two rpm versions "[epoch:]version[-release]" as rpm does: epochs, then versions,
// then releases when both have one, each by rpmvercmp (alphanumeric segments, digits newer
// than letters, '~' older than anything, '^' newer than the end but older than more text).
std::weak_ordering compareRpmVersions(std::string_view a, std::string_view b);

}  // namespace nodewarden::packages
