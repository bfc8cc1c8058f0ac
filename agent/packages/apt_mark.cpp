#include "agent/packages/apt_mark.h"

#include <string>

#include "agent/packages/text_lines.h"

namespace nodewarden::packages {
namespace {

bool isLowerAlnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }

// Debian policy: lower-case letters, digits, '+', '-', '.', starting with a letter or digit;
// apt adds ":arch" for a package of a foreign architecture.
bool isPackageName(std::string_view text) {
  const std::size_t colon = text.find(':');
  const std::string_view name = text.substr(0, colon);
  if (name.empty() || !isLowerAlnum(name.front())) return false;
  for (char c : name) {
    if (!isLowerAlnum(c) && c != '+' && c != '-' && c != '.') return false;
  }
  if (colon == std::string_view::npos) return true;
  const std::string_view architecture = text.substr(colon + 1);
  if (architecture.empty()) return false;
  for (char c : architecture) {
    if (!isLowerAlnum(c) && c != '-') return false;
  }
  return true;
}

}  // namespace

core::Result<std::set<std::string, std::less<>>> parseAptMarkShowhold(std::string_view output) {
  std::set<std::string, std::less<>> held;
  TextLines lines(output);
  std::string_view line;
  while (lines.next(line)) {
    const std::string_view name = trimBlanks(line);
    if (name.empty()) continue;
    if (!isPackageName(name)) {
      return core::Status::invalidArgument("apt-mark showhold line " +
                                           std::to_string(lines.number()) + ": '" +
                                           std::string(name) + "' is not a package name");
    }
    held.emplace(name);
  }
  return held;
}

}  // namespace nodewarden::packages
