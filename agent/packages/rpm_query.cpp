#include "agent/packages/rpm_query.h"

#include <algorithm>
#include <array>
#include <cstddef>

#include "agent/packages/text_lines.h"
#include "agent/packages/version_compare.h"

namespace nodewarden::packages {
namespace {

core::Status lineError(std::size_t line, const std::string& what) {
  return core::Status::invalidArgument("rpm query line " + std::to_string(line) + ": " + what);
}

bool allDigits(std::string_view text) {
  return !text.empty() &&
         std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; });
}

}  // namespace

core::Result<RpmPackages> parseRpmQuery(std::string_view output) {
  RpmPackages packages;
  TextLines lines(output);
  std::string_view line;
  while (lines.next(line)) {
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) continue;

    // NAME, EPOCHNUM, VERSION, RELEASE, ARCH.
    std::array<std::string_view, 5> fields;
    std::size_t count = 0;
    std::size_t start = 0;
    while (true) {
      const std::size_t tab = line.find('\t', start);
      if (count < fields.size()) fields[count] = line.substr(start, tab - start);
      ++count;
      if (tab == std::string_view::npos) break;
      start = tab + 1;
    }
    if (count != fields.size()) {
      return lineError(lines.number(),
                       "expected 5 tab-separated fields, got " + std::to_string(count));
    }
    const auto [name, epoch, version, release, architecture] = fields;
    if (name.empty()) return lineError(lines.number(), "empty package name");
    if (!allDigits(epoch)) {
      return lineError(lines.number(), "package " + std::string(name) + ": epoch '" +
                                           std::string(epoch) + "' is not a number");
    }
    if (version.empty()) {
      return lineError(lines.number(), "package " + std::string(name) + ": empty version");
    }

    std::string fullVersion;
    if (epoch.find_first_not_of('0') != std::string_view::npos) {
      fullVersion.append(epoch).append(":");
    }
    fullVersion.append(version);
    if (!release.empty()) fullVersion.append("-").append(release);

    auto it = packages.find(name);
    if (it == packages.end()) it = packages.try_emplace(std::string(name)).first;
    it->second.push_back(InstalledPackage{
        .name = std::string(name),
        .architecture = architecture == "(none)" ? std::string() : std::string(architecture),
        .version = std::move(fullVersion),
        .status = "installed",
        .installed = true,
    });
  }

  for (auto& [name, versions] : packages) {
    std::sort(versions.begin(), versions.end(),
              [](const InstalledPackage& a, const InstalledPackage& b) {
                const std::weak_ordering order = compareRpmVersions(a.version, b.version);
                if (order != 0) return order < 0;
                return a.architecture < b.architecture;
              });
  }
  return packages;
}

}  // namespace nodewarden::packages
