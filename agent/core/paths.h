#pragma once

#include <string>

namespace nodewarden::core {

// The directory holding `path`: "/etc" for "/etc/x", "/" for "/x", "." for a
// bare name. Purely textual: nothing is resolved on disk.
std::string parentDirectory(const std::string& path);

// The last component of `path`: "x" for "/etc/x".
std::string baseName(const std::string& path);

}  // namespace nodewarden::core
