#include "agent/packages/version_compare.h"

#include <cstddef>

namespace nodewarden::packages {
namespace {

bool isDigit(char c) { return c >= '0' && c <= '9'; }
bool isAlpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

// The character at i, or '\0' past the end, as dpkg's C strings read.
char at(std::string_view text, std::size_t i) { return i < text.size() ? text[i] : '\0'; }

std::weak_ordering fromInt(int difference) {
  if (difference < 0) return std::weak_ordering::less;
  if (difference > 0) return std::weak_ordering::greater;
  return std::weak_ordering::equivalent;
}

// Compares runs of digits as numbers of any length: without leading zeros, the longer is
// larger, and equal lengths compare digit by digit.
std::weak_ordering compareNumbers(std::string_view a, std::string_view b) {
  while (!a.empty() && a.front() == '0') a.remove_prefix(1);
  while (!b.empty() && b.front() == '0') b.remove_prefix(1);
  if (a.size() != b.size())
    return a.size() < b.size() ? std::weak_ordering::less : std::weak_ordering::greater;
  return fromInt(a.compare(b));
}

// dpkg's order of a non-digit character: '~' first, then the end of the part and digits,
// then letters, then everything else.
int debianOrder(char c) {
  if (isDigit(c)) return 0;
  if (isAlpha(c)) return c;
  if (c == '~') return -1;
  if (c != '\0') return static_cast<unsigned char>(c) + 256;
  return 0;
}

// dpkg's verrevcmp(), over an upstream version or a revision.
std::weak_ordering compareDebianPart(std::string_view a, std::string_view b) {
  std::size_t i = 0;
  std::size_t j = 0;
  while (i < a.size() || j < b.size()) {
    while ((i < a.size() && !isDigit(a[i])) || (j < b.size() && !isDigit(b[j]))) {
      const int ac = debianOrder(at(a, i));
      const int bc = debianOrder(at(b, j));
      if (ac != bc) return fromInt(ac - bc);
      ++i;
      ++j;
    }
    const std::size_t aStart = i;
    const std::size_t bStart = j;
    while (i < a.size() && isDigit(a[i])) ++i;
    while (j < b.size() && isDigit(b[j])) ++j;
    const std::weak_ordering numbers =
        compareNumbers(a.substr(aStart, i - aStart), b.substr(bStart, j - bStart));
    if (numbers != 0) return numbers;
  }
  return std::weak_ordering::equivalent;
}

struct DebianVersion {
  std::string_view epoch;  // digits; empty means 0
  std::string_view upstream;
  std::string_view revision;
};

DebianVersion splitDebianVersion(std::string_view version) {
  DebianVersion parts;
  const std::size_t colon = version.find(':');
  if (colon != std::string_view::npos) {
    parts.epoch = version.substr(0, colon);
    version.remove_prefix(colon + 1);
  }
  const std::size_t hyphen = version.rfind('-');
  parts.upstream = version.substr(0, hyphen);
  if (hyphen != std::string_view::npos) parts.revision = version.substr(hyphen + 1);
  return parts;
}

bool isAlnum(char c) { return isDigit(c) || isAlpha(c); }

// rpm's rpmvercmp().
std::weak_ordering rpmvercmp(std::string_view a, std::string_view b) {
  if (a == b) return std::weak_ordering::equivalent;
  std::size_t i = 0;
  std::size_t j = 0;
  while (i < a.size() || j < b.size()) {
    while (i < a.size() && !isAlnum(a[i]) && a[i] != '~' && a[i] != '^') ++i;
    while (j < b.size() && !isAlnum(b[j]) && b[j] != '~' && b[j] != '^') ++j;
    const char ac = at(a, i);
    const char bc = at(b, j);

    // '~' sorts before everything, even the end: 1.0~rc1 < 1.0.
    if (ac == '~' || bc == '~') {
      if (ac != '~') return std::weak_ordering::greater;
      if (bc != '~') return std::weak_ordering::less;
      ++i;
      ++j;
      continue;
    }
    // '^' sorts after the end but before anything else: 1.0 < 1.0^git1 < 1.0.1.
    if (ac == '^' || bc == '^') {
      if (ac == '\0') return std::weak_ordering::less;
      if (bc == '\0') return std::weak_ordering::greater;
      if (ac != '^') return std::weak_ordering::greater;
      if (bc != '^') return std::weak_ordering::less;
      ++i;
      ++j;
      continue;
    }
    if (ac == '\0' || bc == '\0') break;

    const std::size_t aStart = i;
    const std::size_t bStart = j;
    const bool numeric = isDigit(ac);
    const auto inSegment = numeric ? isDigit : isAlpha;
    while (i < a.size() && inSegment(a[i])) ++i;
    while (j < b.size() && inSegment(b[j])) ++j;
    // A numeric segment is newer than an alphabetic one.
    if (j == bStart) return numeric ? std::weak_ordering::greater : std::weak_ordering::less;

    const std::string_view aSegment = a.substr(aStart, i - aStart);
    const std::string_view bSegment = b.substr(bStart, j - bStart);
    const std::weak_ordering segments =
        numeric ? compareNumbers(aSegment, bSegment) : fromInt(aSegment.compare(bSegment));
    if (segments != 0) return segments;
  }
  // Equal segments; the one with text left over is newer. Different separators are equal.
  const bool aDone = i >= a.size();
  const bool bDone = j >= b.size();
  if (aDone && bDone) return std::weak_ordering::equivalent;
  return aDone ? std::weak_ordering::less : std::weak_ordering::greater;
}

struct RpmVersion {
  std::string_view epoch = "0";
  std::string_view version;
  std::string_view release;
  bool hasRelease = false;
};

// As rpm's parseEVR(): leading digits then ':' are the epoch; the last '-' starts the release.
RpmVersion splitRpmVersion(std::string_view evr) {
  RpmVersion parts;
  std::size_t digits = 0;
  while (digits < evr.size() && isDigit(evr[digits])) ++digits;
  if (digits < evr.size() && evr[digits] == ':') {
    if (digits > 0) parts.epoch = evr.substr(0, digits);
    evr.remove_prefix(digits + 1);
  }
  const std::size_t hyphen = evr.rfind('-');
  parts.version = evr.substr(0, hyphen);
  if (hyphen != std::string_view::npos) {
    parts.release = evr.substr(hyphen + 1);
    parts.hasRelease = true;
  }
  return parts;
}

}  // namespace

std::weak_ordering compareDebianVersions(std::string_view a, std::string_view b) {
  const DebianVersion left = splitDebianVersion(a);
  const DebianVersion right = splitDebianVersion(b);
  if (std::weak_ordering epochs = compareNumbers(left.epoch, right.epoch); epochs != 0) {
    return epochs;
  }
  if (std::weak_ordering upstreams = compareDebianPart(left.upstream, right.upstream);
      upstreams != 0) {
    return upstreams;
  }
  return compareDebianPart(left.revision, right.revision);
}

std::weak_ordering compareRpmVersions(std::string_view a, std::string_view b) {
  const RpmVersion left = splitRpmVersion(a);
  const RpmVersion right = splitRpmVersion(b);
  if (std::weak_ordering epochs = rpmvercmp(left.epoch, right.epoch); epochs != 0) return epochs;
  if (std::weak_ordering versions = rpmvercmp(left.version, right.version); versions != 0) {
    return versions;
  }
  if (!left.hasRelease || !right.hasRelease) return std::weak_ordering::equivalent;
  return rpmvercmp(left.release, right.release);
}

}  // namespace nodewarden::packages
