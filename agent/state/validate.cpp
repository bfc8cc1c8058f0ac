#include "agent/state/validate.h"

#include <algorithm>
#include <charconv>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <unordered_map>
#include <unordered_set>

#include "agent/core/base64.h"
#include "nodewarden/v1/state.pb.h"

namespace nodewarden::state {

namespace {

constexpr size_t kMaxPathBytes = 4095;  // PATH_MAX less its NUL
constexpr size_t kMaxNameBytes = 255;   // NAME_MAX, also systemd's longest unit name
constexpr size_t kMaxUserNameBytes = 32;
constexpr uint64_t kMaxId = 4294967294;  // (uid_t)-1 means "no change" to chown
constexpr uint32_t kMaxMode = 07777;

// The unit types that have unit files; devices and scopes come from udev and
// from the manager, never from a file.
constexpr std::string_view kUnitSuffixes[] = {
    ".service", ".socket", ".target", ".timer", ".path", ".mount", ".automount", ".swap", ".slice"};

bool isDigit(char c) { return c >= '0' && c <= '9'; }
bool isLetter(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

// systemd's VALID_CHARS for unit name prefixes; an instance may also hold '@'.
bool isUnitNameChar(char c) {
  return isDigit(c) || isLetter(c) || c == ':' || c == '-' || c == '_' || c == '.' || c == '\\';
}

std::string describeChar(char c) {
  auto byte = static_cast<unsigned char>(c);
  if (byte >= 0x20 && byte < 0x7f) return std::string("'") + c + "'";
  static constexpr char kHex[] = "0123456789abcdef";
  return std::string("byte 0x") + kHex[byte >> 4] + kHex[byte & 0xf];
}

std::string octal(uint32_t mode) {
  char digits[16];
  auto end = std::to_chars(digits, digits + sizeof digits, mode, 8).ptr;
  return "0" + std::string(digits, end);
}

// Managed paths are compared as strings (duplicates, restartOn), so each
// file has exactly one spelling: absolute, no empty, "." or ".." components,
// no trailing slash.
std::optional<std::string> pathProblem(std::string_view path) {
  if (path.find('\0') != std::string_view::npos) return "the path contains a NUL byte";
  if (!path.starts_with('/')) return std::string(path) + " is not an absolute path";
  if (path.size() > kMaxPathBytes) {
    return "the path is longer than " + std::to_string(kMaxPathBytes) + " bytes";
  }
  std::string normalized;
  bool isNormal = true;
  size_t start = 1;
  while (start <= path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string_view::npos) end = path.size();
    std::string_view component = path.substr(start, end - start);
    if (component == "..") return std::string(path) + " contains a .. component";
    if (component.size() > kMaxNameBytes) {
      return std::string(path) + " has a component longer than " + std::to_string(kMaxNameBytes) +
             " bytes";
    }
    if (component.empty() || component == ".") {
      isNormal = false;
    } else {
      normalized += "/" + std::string(component);
    }
    start = end + 1;
  }
  if (normalized.empty()) return std::string(path) + " is the root directory, which is not managed";
  if (!isNormal) return std::string(path) + " is not normalized; write " + normalized;
  return std::nullopt;
}

// systemd's unit_name_is_valid(): prefix[@instance].type.
std::optional<std::string> unitNameProblem(std::string_view name) {
  const std::string shown(name);
  if (name.size() > kMaxNameBytes) {
    return "unit names are at most " + std::to_string(kMaxNameBytes) + " characters";
  }
  const size_t dot = name.rfind('.');
  const std::string_view suffix = dot == std::string_view::npos ? "" : name.substr(dot);
  if (std::find(std::begin(kUnitSuffixes), std::end(kUnitSuffixes), suffix) ==
      std::end(kUnitSuffixes)) {
    std::string known;
    for (auto s : kUnitSuffixes) known += (known.empty() ? "" : ", ") + std::string(s);
    return shown + " does not end in a unit type (" + known + ")";
  }
  const std::string_view stem = name.substr(0, dot);
  const size_t at = stem.find('@');
  const std::string_view prefix = stem.substr(0, at);
  if (prefix.empty()) return shown + " has an empty name before its type";
  for (char c : prefix) {
    if (!isUnitNameChar(c))
      return shown + " contains " + describeChar(c) + ", not allowed in unit names";
  }
  if (at != std::string_view::npos) {
    for (char c : stem.substr(at + 1)) {
      if (!isUnitNameChar(c) && c != '@') {
        return shown + " contains " + describeChar(c) + ", not allowed in unit instance names";
      }
    }
  }
  return std::nullopt;
}

bool isTemplate(std::string_view unitName) {
  const size_t at = unitName.find('@');
  return at != std::string_view::npos && at + 1 < unitName.size() && unitName[at + 1] == '.';
}

std::optional<std::string> dropInNameProblem(std::string_view name) {
  const std::string shown(name);
  if (name.find('/') != std::string_view::npos)
    return shown + " contains /; name a file in <unit>.d/";
  if (name.find('\0') != std::string_view::npos) return "the name contains a NUL byte";
  if (!name.ends_with(".conf") || name.size() == 5) {
    return shown + " does not end in .conf; systemd reads only *.conf drop-ins";
  }
  // systemd skips hidden files when it lists drop-ins.
  if (name.starts_with('.')) return shown + " starts with a dot; systemd ignores hidden drop-ins";
  if (name.size() > kMaxNameBytes) {
    return "drop-in names are at most " + std::to_string(kMaxNameBytes) + " bytes";
  }
  return std::nullopt;
}

// Names as useradd accepts them (letters, digits, '_', '.', '-', not starting
// with a digit or '-', an optional trailing '$' for machine accounts), or a
// numeric id.
std::optional<std::string> accountProblem(std::string_view name, std::string_view kind) {
  const std::string shown(name);
  if (std::all_of(name.begin(), name.end(), isDigit)) {
    uint64_t id = 0;
    auto [end, error] = std::from_chars(name.data(), name.data() + name.size(), id);
    if (error == std::errc() && id <= kMaxId) return std::nullopt;
    return shown + " is not a valid numeric id (at most " + std::to_string(kMaxId) + ")";
  }
  std::string_view body = name.ends_with('$') ? name.substr(0, name.size() - 1) : name;
  bool valid = !body.empty() && name.size() <= kMaxUserNameBytes &&
               (isLetter(body.front()) || body.front() == '_');
  for (char c : body) {
    valid = valid && (isLetter(c) || isDigit(c) || c == '_' || c == '.' || c == '-');
  }
  if (valid) return std::nullopt;
  return shown + " is not a valid " + std::string(kind) + " name or numeric id";
}

std::string sizeProblem(size_t bytes) {
  return "inline content is limited to 1 MiB (" + std::to_string(kMaxContentBytes) +
         " bytes); this is " + std::to_string(bytes) + " bytes";
}

// Where systemd reads the unit files and drop-ins that units[] write (see
// agent/converge/units.cpp).
constexpr std::string_view kUnitDirectory = "/etc/systemd/system";

// One path that the state writes or removes, for the checks that look across
// resources: a file or directory, or the unit file or a drop-in of a unit.
struct Declared {
  enum class Kind { kDirectory, kFile, kUnitFile, kDropIn };

  std::string path;
  std::string fieldPath;  // "files[3].path", "units[0].content"
  Kind kind = Kind::kFile;
  std::string unit;  // the unit whose unit file or drop-in this is
  bool absent = false;
  Position position;

  bool isDirectory() const { return kind == Kind::kDirectory; }
  bool isUnitDefinition() const { return kind == Kind::kUnitFile || kind == Kind::kDropIn; }

  // The path as the subject of a message: "the drop-in /etc/…/10-x.conf".
  std::string subject() const {
    switch (kind) {
      case Kind::kUnitFile:
        return "the unit file " + path;
      case Kind::kDropIn:
        return "the drop-in " + path;
      default:
        return path;
    }
  }

  // What it is declared as: "a file", "the unit file of app.service".
  std::string what() const {
    switch (kind) {
      case Kind::kDirectory:
        return "a directory";
      case Kind::kFile:
        return "a file";
      case Kind::kUnitFile:
        return "the unit file of " + unit;
      case Kind::kDropIn:
        return "a drop-in of " + unit;
    }
    return "a file";
  }
};

class Validator final {
 public:
  explicit Validator(const SourceMap& sources) : sources_(sources) {}

  std::vector<Diagnostic> run(const v1::NodeState& state) {
    std::vector<Declared> declared;
    for (int i = 0; i < state.directories_size(); ++i) {
      const auto& directory = state.directories(i);
      const std::string at = "directories[" + std::to_string(i) + "]";
      checkAttributes(at, directory.path(), directory.has_mode(), directory.mode(),
                      directory.owner(), directory.group(), directory.ensure(), declared,
                      Declared::Kind::kDirectory);
    }
    std::unordered_set<std::string_view> files;
    for (int i = 0; i < state.files_size(); ++i) {
      const auto& file = state.files(i);
      const std::string at = "files[" + std::to_string(i) + "]";
      checkAttributes(at, file.path(), file.has_mode(), file.mode(), file.owner(), file.group(),
                      file.ensure(), declared, Declared::Kind::kFile);
      checkFileSource(at, file);
      files.insert(file.path());
    }

    const size_t unitErrors = errors_.size();
    std::unordered_map<std::string_view, std::string> units;
    for (int i = 0; i < state.units_size(); ++i) {
      checkUnit("units[" + std::to_string(i) + "]", state.units(i), files, units, declared);
    }
    const size_t acrossErrors = errors_.size();
    checkAcrossPaths(declared);
    // checkUnit() runs first for the paths units declare, but its problems
    // follow those between paths: a state without positions (from the server)
    // keeps them in the order of its fields, files before units.
    std::rotate(errors_.begin() + static_cast<std::ptrdiff_t>(unitErrors),
                errors_.begin() + static_cast<std::ptrdiff_t>(acrossErrors), errors_.end());
    return std::move(errors_);
  }

 private:
  void error(std::string path, std::string message) {
    errors_.push_back(sources_.diagnostic(std::move(path), std::move(message)));
  }

  void declare(std::vector<Declared>& declared, std::string path, std::string fieldPath,
               Declared::Kind kind, std::string unit, bool absent) {
    Position position = sources_.find(fieldPath);
    declared.push_back(Declared{.path = std::move(path),
                                .fieldPath = std::move(fieldPath),
                                .kind = kind,
                                .unit = std::move(unit),
                                .absent = absent,
                                .position = position});
  }

  // "node.yaml:20:7 (units[0].content)": where a unit's definition is declared
  // says little without the field, unlike a files[] or directories[] path.
  std::string describe(const Declared& d) const {
    std::string where = sources_.describe(d.fieldPath);
    if (d.isUnitDefinition() && where != d.fieldPath) where += " (" + d.fieldPath + ")";
    return where;
  }

  void checkAttributes(const std::string& at, const std::string& path, bool hasMode, uint32_t mode,
                       const std::string& owner, const std::string& group, v1::Ensure ensure,
                       std::vector<Declared>& declared, Declared::Kind kind) {
    if (path.empty()) {
      error(at + ".path", "required");
    } else if (auto problem = pathProblem(path)) {
      error(at + ".path", *problem);
    } else {
      declare(declared, path, at + ".path", kind, {}, ensure == v1::ENSURE_ABSENT);
    }
    if (hasMode && mode > kMaxMode) error(at + ".mode", octal(mode) + " is greater than 07777");
    if (!owner.empty()) {
      if (auto problem = accountProblem(owner, "user")) error(at + ".owner", *problem);
    }
    if (!group.empty()) {
      if (auto problem = accountProblem(group, "group")) error(at + ".group", *problem);
    }
    if (!v1::Ensure_IsValid(ensure)) {
      error(at + ".ensure", "unknown value " + std::to_string(ensure));
    }
    if (ensure == v1::ENSURE_ABSENT) {
      // An absent resource has nothing to own or to set; a state saying so is
      // contradicting itself.
      if (hasMode) error(at + ".mode", "has no effect with ensure: absent");
      if (!owner.empty()) error(at + ".owner", "has no effect with ensure: absent");
      if (!group.empty()) error(at + ".group", "has no effect with ensure: absent");
    }
  }

  void checkFileSource(const std::string& at, const v1::File& file) {
    switch (file.source_case()) {
      case v1::File::kContent:
        if (file.content().size() > kMaxContentBytes) {
          error(at + ".content", sizeProblem(file.content().size()));
        }
        break;
      case v1::File::kContentBase64: {
        auto decoded = core::decodeBase64(file.content_base64());
        if (!decoded) {
          error(at + ".contentBase64", decoded.status().message());
        } else if (decoded->size() > kMaxContentBytes) {
          error(at + ".contentBase64", "decoded " + sizeProblem(decoded->size()));
        }
        break;
      }
      case v1::File::SOURCE_NOT_SET:
        return;
    }
    if (file.ensure() == v1::ENSURE_ABSENT) {
      error(at + (file.has_content() ? ".content" : ".contentBase64"),
            "has no effect with ensure: absent");
    }
  }

  // No path declared twice (as files, directories, unit files or drop-ins, in
  // any pair), and no path inside one that cannot hold it: a file, or a
  // directory to remove. Two declarations of one path would have the agent
  // rewrite it on every run.
  void checkAcrossPaths(std::vector<Declared>& declared) {
    // In document order, so that "already declared" points at the earlier one
    // even when files come before directories.
    std::stable_sort(declared.begin(), declared.end(), [](const Declared& a, const Declared& b) {
      return std::tie(a.position.line, a.position.column) <
             std::tie(b.position.line, b.position.column);
    });
    std::unordered_map<std::string_view, const Declared*> byPath;
    std::vector<const Declared*> unique;
    for (const auto& d : declared) {
      auto [first, inserted] = byPath.try_emplace(d.path, &d);
      if (inserted) {
        unique.push_back(&d);
        continue;
      }
      const Declared& earlier = *first->second;
      const std::string kind = earlier.kind == d.kind ? "" : " as " + earlier.what();
      error(d.fieldPath, d.subject() + " is already declared" + kind + " at " + describe(earlier));
    }
    for (const Declared* d : unique) {
      if (d->absent) continue;
      for (std::string_view parent = parentDirectory(d->path); !parent.empty();
           parent = parentDirectory(parent)) {
        auto it = byPath.find(parent);
        if (it == byPath.end()) continue;
        const Declared& outer = *it->second;
        if (!outer.isDirectory() && !outer.absent) {
          error(d->fieldPath, d->subject() + " is inside " + std::string(parent) +
                                  ", which is declared as " + outer.what() + " at " +
                                  describe(outer));
        } else if (outer.isDirectory() && outer.absent) {
          error(d->fieldPath, d->subject() + " is inside " + std::string(parent) +
                                  ", which is declared absent at " + describe(outer));
        }
      }
    }
  }

  static std::string_view parentDirectory(std::string_view path) {
    const size_t slash = path.rfind('/');
    return slash == std::string_view::npos || slash == 0 ? std::string_view()
                                                         : path.substr(0, slash);
  }

  // Checks one unit and declares the paths its definition is written to, for
  // checkAcrossPaths(): only under a valid name not taken by an earlier unit,
  // since the others have an error already.
  void checkUnit(const std::string& at, const v1::Unit& unit,
                 const std::unordered_set<std::string_view>& files,
                 std::unordered_map<std::string_view, std::string>& units,
                 std::vector<Declared>& declared) {
    bool declares = false;
    if (unit.name().empty()) {
      error(at + ".name", "required");
    } else if (auto problem = unitNameProblem(unit.name())) {
      error(at + ".name", *problem);
    } else if (auto [first, inserted] = units.try_emplace(unit.name(), at + ".name"); !inserted) {
      error(at + ".name",
            unit.name() + " is already declared at " + sources_.describe(first->second));
    } else {
      declares = true;
      if (isTemplate(unit.name()) && unit.state() != v1::UNIT_STATE_UNSPECIFIED) {
        error(at + ".state", unit.name() +
                                 " is a template; only its instances (name@instance) can be "
                                 "started or stopped");
      }
    }
    const std::string unitPath = std::string(kUnitDirectory) + "/" + unit.name();
    if (declares && unit.has_content()) {
      declare(declared, unitPath, at + ".content", Declared::Kind::kUnitFile, unit.name(), false);
    }
    if (unit.has_content() && unit.content().size() > kMaxContentBytes) {
      error(at + ".content", sizeProblem(unit.content().size()));
    }
    if (!v1::UnitState_IsValid(unit.state())) {
      error(at + ".state", "unknown value " + std::to_string(unit.state()));
    }
    if (declares && unit.drop_ins_size() > 0 && unit.name().size() + 2 > kMaxNameBytes) {
      // <unit>.d is a directory name, with NAME_MAX bytes like any other.
      error(at + ".dropIns", "the drop-in directory " + unit.name() + ".d is longer than " +
                                 std::to_string(kMaxNameBytes) + " bytes; units with drop-ins " +
                                 "have names of at most " + std::to_string(kMaxNameBytes - 2) +
                                 " characters");
    }
    std::unordered_map<std::string_view, std::string> dropIns;
    for (int i = 0; i < unit.drop_ins_size(); ++i) {
      const auto& dropIn = unit.drop_ins(i);
      const std::string dropInAt = at + ".dropIns[" + std::to_string(i) + "]";
      if (dropIn.name().empty()) {
        error(dropInAt + ".name", "required");
      } else if (auto problem = dropInNameProblem(dropIn.name())) {
        error(dropInAt + ".name", *problem);
      } else if (auto [first, inserted] = dropIns.try_emplace(dropIn.name(), dropInAt + ".name");
                 !inserted) {
        error(dropInAt + ".name",
              dropIn.name() + " is already declared at " + sources_.describe(first->second));
      } else if (declares) {
        declare(declared, unitPath + ".d/" + dropIn.name(), dropInAt + ".name",
                Declared::Kind::kDropIn, unit.name(), false);
      }
      if (dropIn.content().size() > kMaxContentBytes) {
        error(dropInAt + ".content", sizeProblem(dropIn.content().size()));
      }
    }
    for (int i = 0; i < unit.restart_on_size(); ++i) {
      const std::string& path = unit.restart_on(i);
      const std::string entryAt = at + ".restartOn[" + std::to_string(i) + "]";
      if (auto problem = pathProblem(path)) {
        error(entryAt, *problem);
      } else if (!files.contains(path)) {
        // A restart trigger that can never fire is almost certainly a typo.
        error(entryAt, path + " is not a file declared in this state");
      }
    }
  }

  const SourceMap& sources_;
  std::vector<Diagnostic> errors_;
};

}  // namespace

std::vector<Diagnostic> validate(const v1::NodeState& state, const SourceMap& sources) {
  return Validator(sources).run(state);
}

}  // namespace nodewarden::state
