#include "agent/packages/dpkg_status.h"

#include <cstddef>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "agent/packages/text_lines.h"

namespace nodewarden::packages {
namespace {

using core::Result;
using core::Status;

// Field names are case-insensitive in Debian control files.
bool fieldIs(std::string_view field, std::string_view expected) {
  if (field.size() != expected.size()) return false;
  for (std::size_t i = 0; i < field.size(); ++i) {
    char c = field[i];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    char e = expected[i];
    if (e >= 'A' && e <= 'Z') e = static_cast<char>(e - 'A' + 'a');
    if (c != e) return false;
  }
  return true;
}

Status lineError(std::size_t line, std::string_view what) {
  return Status::invalidArgument("status line " + std::to_string(line) + ": " + std::string(what));
}

// Quotes a line for an error message, cut short so a binary file doesn't flood the log.
std::string quoted(std::string_view line) {
  constexpr std::size_t kMax = 60;
  if (line.size() <= kMax) return "'" + std::string(line) + "'";
  return "'" + std::string(line.substr(0, kMax)) + "...'";
}

// The fields of one stanza this parser needs, as views into the text.
struct Stanza {
  std::size_t firstLine = 0;  // 0 while between stanzas
  std::size_t statusLine = 0;
  std::string_view package;
  std::string_view status;
  std::string_view architecture;
  std::string_view version;
  bool seenPackage = false;
  bool seenStatus = false;
  bool seenArchitecture = false;
  bool seenVersion = false;
};

struct Parsed {
  InstalledPackage package;
  std::size_t line;
};

// "want flag status": three words separated by single spaces.
bool splitStatusWords(std::string_view status, std::string_view& flag, std::string_view& state) {
  const std::size_t first = status.find(' ');
  if (first == std::string_view::npos || first == 0) return false;
  const std::size_t second = status.find(' ', first + 1);
  if (second == std::string_view::npos || second == first + 1) return false;
  flag = status.substr(first + 1, second - first - 1);
  state = status.substr(second + 1);
  return !state.empty() && state.find(' ') == std::string_view::npos;
}

Result<Parsed> finishStanza(const Stanza& stanza) {
  if (!stanza.seenPackage) return lineError(stanza.firstLine, "field without a package");
  if (!stanza.seenStatus) {
    return lineError(stanza.firstLine,
                     "package " + std::string(stanza.package) + " has no Status field");
  }
  std::string_view flag;
  std::string_view state;
  if (!splitStatusWords(stanza.status, flag, state)) {
    return lineError(stanza.statusLine, "package " + std::string(stanza.package) + ": Status " +
                                            quoted(stanza.status) + " is not 'want flag status'");
  }
  Parsed parsed{.package =
                    InstalledPackage{
                        .name = std::string(stanza.package),
                        .architecture = std::string(stanza.architecture),
                        .version = std::string(stanza.version),
                        .status = std::string(stanza.status),
                        .installed = flag == "ok" && state == "installed",
                    },
                .line = stanza.firstLine};
  return parsed;
}

// Records one "Field: value" line into the stanza; other fields are skipped.
Status readField(std::string_view field, std::string_view value, std::size_t line, Stanza& stanza) {
  struct Slot {
    std::string_view name;
    std::string_view* value;
    bool* seen;
  };
  const Slot slots[] = {
      {"Package", &stanza.package, &stanza.seenPackage},
      {"Status", &stanza.status, &stanza.seenStatus},
      {"Architecture", &stanza.architecture, &stanza.seenArchitecture},
      {"Version", &stanza.version, &stanza.seenVersion},
  };
  for (const Slot& slot : slots) {
    if (!fieldIs(field, slot.name)) continue;
    if (*slot.seen) {
      return lineError(line, "second " + std::string(slot.name) + " field in one stanza");
    }
    if (slot.name == "Package" && value.empty()) return lineError(line, "empty Package field");
    *slot.seen = true;
    *slot.value = value;
    if (slot.name == "Status") stanza.statusLine = line;
    return Status::ok();
  }
  return Status::ok();
}

}  // namespace

Result<DpkgPackages> parseDpkgStatus(std::string_view statusFileText) {
  std::vector<Parsed> parsed;
  parsed.reserve(statusFileText.size() / 1024);
  Stanza stanza;

  TextLines lines(statusFileText);
  std::string_view line;
  while (lines.next(line)) {
    if (trimBlanks(line).empty()) {
      if (stanza.firstLine != 0) {
        Result<Parsed> done = finishStanza(stanza);
        if (!done) return done.status();
        parsed.push_back(std::move(done).value());
        stanza = Stanza{};
      }
      continue;
    }
    if (line.front() == ' ' || line.front() == '\t') {
      // Continuation of a multi-line field (Description, Conffiles); none this parser reads.
      if (stanza.firstLine == 0) {
        return lineError(lines.number(), "continuation line outside a field");
      }
      continue;
    }
    const std::size_t colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0) {
      return lineError(lines.number(), "expected 'Field: value', got " + quoted(line));
    }
    if (stanza.firstLine == 0) stanza.firstLine = lines.number();
    Status read = readField(line.substr(0, colon), trimBlanks(line.substr(colon + 1)),
                            lines.number(), stanza);
    if (!read) return read;
  }
  if (stanza.firstLine != 0) {
    Result<Parsed> done = finishStanza(stanza);
    if (!done) return done.status();
    parsed.push_back(std::move(done).value());
  }

  // Counted before any entry is moved: the keys are views into the entries' names.
  std::unordered_map<std::string_view, int> namesSeen;
  namesSeen.reserve(parsed.size());
  for (const Parsed& entry : parsed) ++namesSeen[entry.package.name];
  std::vector<bool> byArchitecture;
  byArchitecture.reserve(parsed.size());
  for (const Parsed& entry : parsed) byArchitecture.push_back(namesSeen[entry.package.name] > 1);

  DpkgPackages packages;
  for (std::size_t i = 0; i < parsed.size(); ++i) {
    InstalledPackage& package = parsed[i].package;
    std::string key = byArchitecture[i] ? package.name + ":" + package.architecture : package.name;
    auto [it, inserted] = packages.try_emplace(std::move(key));
    if (!inserted) return lineError(parsed[i].line, "package " + it->first + " appears twice");
    it->second = std::move(package);
  }
  return packages;
}

}  // namespace nodewarden::packages
