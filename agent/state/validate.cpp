#include "agent/state/validate.h"

#include <algorithm>
#include <cctype>
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
#include "agent/state/kernel_settings.h"
#include "agent/state/validate_health.h"
#include "agent/state/yaml_mapping.h"
#include "nodewarden/v1/state.pb.h"

namespace nodewarden::state {

namespace {

constexpr size_t kMaxPathBytes = 4095;  // PATH_MAX less its NUL
constexpr size_t kMaxNameBytes = 255;   // NAME_MAX, also systemd's longest unit name
constexpr size_t kMaxUserNameBytes = 32;
constexpr uint64_t kMaxId = 4294967294;  // (uid_t)-1 means "no change" to chown
constexpr uint32_t kMaxMode = 07777;
// MODULE_NAME_LEN less its NUL.
constexpr size_t kMaxModuleNameBytes = 55;
constexpr size_t kSha256HexDigits = 64;

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

bool isControl(char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; }

// Names as dpkg and rpm accept them.
std::optional<std::string> packageNameProblem(std::string_view name) {
  const std::string shown(name);
  if (name.size() > kMaxNameBytes) {
    return "package names are at most " + std::to_string(kMaxNameBytes) + " characters";
  }
  if (!isLetter(name.front()) && !isDigit(name.front())) {
    return shown + " does not start with a letter or digit";
  }
  for (char c : name) {
    if (!isLetter(c) && !isDigit(c) && c != '+' && c != '.' && c != '_' && c != '-') {
      return shown + " contains " + describeChar(c) + ", not allowed in package names";
    }
  }
  return std::nullopt;
}

std::optional<std::string> versionProblem(std::string_view version) {
  if (version.size() > kMaxNameBytes) {
    return "versions are at most " + std::to_string(kMaxNameBytes) + " characters";
  }
  for (char c : version) {
    if (c == ' ' || isControl(c)) {
      return std::string(version) + " contains " + describeChar(c) + ", not allowed in versions";
    }
  }
  return std::nullopt;
}

std::optional<std::string> urlProblem(std::string_view url) {
  const std::string shown(url);
  for (char c : url) {
    if (c == ' ' || isControl(c)) {
      return "the URL contains " + describeChar(c) + "; percent-encode it";
    }
  }
  const size_t colon = url.find("://");
  if (colon == std::string_view::npos || colon == 0) {
    return shown + " is not a URL; write https://host/path";
  }
  std::string scheme(url.substr(0, colon));
  std::transform(scheme.begin(), scheme.end(), scheme.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (scheme != "https") {
    return shown + " is not an https:// URL; artifacts are fetched only over HTTPS" +
           (scheme == "http" ? " (write https://, or serve it over HTTPS)" : "");
  }
  const std::string_view rest = url.substr(colon + 3);
  if (rest.empty() || rest.front() == '/' || rest.front() == '?' || rest.front() == '#') {
    return shown + " has no host";
  }
  return std::nullopt;
}

std::optional<std::string> sha256Problem(std::string_view digest) {
  if (digest.size() != kSha256HexDigits) {
    return "a sha256 is " + std::to_string(kSha256HexDigits) + " hex digits, got " +
           std::to_string(digest.size());
  }
  for (char c : digest) {
    if (isDigit(c) || (c >= 'a' && c <= 'f')) continue;
    if (c >= 'A' && c <= 'F') return "write the sha256 in lowercase hex digits";
    return "the sha256 contains " + describeChar(c) + ", not a hex digit";
  }
  return std::nullopt;
}

// Names as sysctl.d(5) writes them, which the agent turns into paths under
// /proc/sys (see agent/converge/kernel.cpp): "net.ipv4.ip_forward",
// "net/ipv4/ip_forward", "net.ipv4.conf.eth0/100.rp_filter" (eth0.100).
std::optional<std::string> sysctlNameProblem(std::string_view name) {
  const std::string shown(name);
  if (name.empty()) return "the parameter name is empty";
  if (name.size() > kMaxNameBytes) {
    return "parameter names are at most " + std::to_string(kMaxNameBytes) + " characters";
  }
  for (char c : name) {
    // Upper case letters and '-' occur in interface names.
    if (!isLetter(c) && !isDigit(c) && c != '_' && c != '-' && c != '.' && c != '/') {
      return shown + " contains " + describeChar(c) + ", not allowed in kernel parameter names";
    }
  }
  if (name.front() == '.' || name.front() == '/' || name.back() == '.' || name.back() == '/') {
    return shown + " starts or ends with a separator";
  }
  // systemd-sysctl reads a leading '-' as "ignore errors": not a name.
  if (name.front() == '-') return shown + " starts with '-'";
  const std::string path = sysctlPath(name);
  size_t start = 0;
  while (start <= path.size()) {
    const size_t end = std::min(path.find('/', start), path.size());
    const std::string_view component = std::string_view(path).substr(start, end - start);
    if (component.empty()) return shown + " has an empty component";
    if (component == "." || component == "..") {
      return shown + " has a component that is . or .. under /proc/sys";
    }
    start = end + 1;
  }
  return std::nullopt;
}

std::optional<std::string> sysctlValueProblem(std::string_view value) {
  if (value.find_first_not_of(" \t") == std::string_view::npos) return "the value is empty";
  if (value.find_first_of("\r\n") != std::string_view::npos) {
    return "the value spans several lines; a kernel parameter takes one";
  }
  for (char c : value) {
    if (isControl(c) && c != '\t') {
      return "the value contains " + describeChar(c) +
             ", not allowed in a kernel parameter's value";
    }
  }
  return std::nullopt;
}

// One path that the state writes or removes, for the checks that look across
// resources: a file or directory, or the unit file or a drop-in of a unit.
struct Declared {
  enum class Kind { kDirectory, kFile, kArtifact, kUnitFile, kDropIn, kKernelConfig };

  std::string path;
  std::string fieldPath;  // "files[3].path", "units[0].content"
  Kind kind = Kind::kFile;
  std::string unit;  // the unit whose unit file or drop-in this is; "sysctls", "kernelModules"
  bool absent = false;
  Position position;

  bool isDirectory() const { return kind == Kind::kDirectory; }
  bool isUnitDefinition() const { return kind == Kind::kUnitFile || kind == Kind::kDropIn; }
  // Declared by a field other than a path: where it is says little alone.
  bool isImplied() const { return isUnitDefinition() || kind == Kind::kKernelConfig; }

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
      case Kind::kArtifact:
        return "an artifact";
      case Kind::kKernelConfig:
        return "the agent's file for " + unit;
    }
    return "a file";
  }
};

class Validator final {
 public:
  explicit Validator(const SourceMap& sources) : sources_(sources) {}

  std::vector<Diagnostic> run(const v1::NodeState& state) {
    std::vector<Declared> declared;
    declareKernelConfigs(state, declared);
    for (int i = 0; i < state.directories_size(); ++i) {
      const auto& directory = state.directories(i);
      const std::string at = "directories[" + std::to_string(i) + "]";
      checkAttributes(at, directory.path(), directory.has_mode(), directory.mode(),
                      directory.owner(), directory.group(), directory.ensure(), declared,
                      Declared::Kind::kDirectory);
    }
    // What restartOn may name by path: whatever has content the agent writes.
    std::unordered_set<std::string> contentPaths;
    for (int i = 0; i < state.files_size(); ++i) {
      const auto& file = state.files(i);
      const std::string at = "files[" + std::to_string(i) + "]";
      checkAttributes(at, file.path(), file.has_mode(), file.mode(), file.owner(), file.group(),
                      file.ensure(), declared, Declared::Kind::kFile);
      checkFileSource(at, file);
      contentPaths.insert(file.path());
    }
    for (int i = 0; i < state.artifacts_size(); ++i) {
      checkArtifact("artifacts[" + std::to_string(i) + "]", state.artifacts(i), declared);
      contentPaths.insert(state.artifacts(i).path());
    }
    for (const auto& unit : state.units()) {
      const std::string unitPath = std::string(kUnitDirectory) + "/" + unit.name();
      if (unit.has_content()) contentPaths.insert(unitPath);
      for (const auto& dropIn : unit.drop_ins()) {
        contentPaths.insert(unitPath + ".d/" + dropIn.name());
      }
    }
    // What restartOn may name otherwise: the first declaration of each package.
    std::unordered_map<std::string_view, int> packages;
    for (int i = 0; i < state.packages_size(); ++i) {
      packages.try_emplace(state.packages(i).name(), i);
    }

    const size_t unitErrors = errors_.size();
    std::unordered_map<std::string_view, std::string> units;
    for (int i = 0; i < state.units_size(); ++i) {
      checkUnit("units[" + std::to_string(i) + "]", state.units(i), contentPaths, packages, state,
                units, declared);
    }
    const size_t acrossErrors = errors_.size();
    checkAcrossPaths(declared);
    // checkUnit() runs first for the paths units declare, but its problems
    // follow those between paths: a state without positions (from the server)
    // keeps them in the order of its fields, files before units.
    std::rotate(errors_.begin() + static_cast<std::ptrdiff_t>(unitErrors),
                errors_.begin() + static_cast<std::ptrdiff_t>(acrossErrors), errors_.end());
    checkPackages(state);
    checkSysctls(state);
    checkKernelModules(state);
    validateHealth(state, sources_, errors_);
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
    if (d.isImplied() && where != d.fieldPath) where += " (" + d.fieldPath + ")";
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
                 const std::unordered_set<std::string>& contentPaths,
                 const std::unordered_map<std::string_view, int>& packages,
                 const v1::NodeState& state,
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
    // A restart trigger that can never fire is almost certainly a typo.
    for (int i = 0; i < unit.restart_on_size(); ++i) {
      const std::string& entry = unit.restart_on(i);
      const std::string entryAt = at + ".restartOn[" + std::to_string(i) + "]";
      if (entry.empty()) {
        error(entryAt, "empty; name a declared file's path or a declared package");
      } else if (entry.starts_with('/')) {
        if (auto problem = pathProblem(entry)) {
          error(entryAt, *problem);
        } else if (!contentPaths.contains(entry)) {
          error(entryAt,
                entry + " is not a file, artifact, unit file or drop-in declared in this state");
        }
      } else if (auto found = packages.find(entry); found == packages.end()) {
        error(entryAt, unknownPackageMessage(entry, state));
      } else if (state.packages(found->second).ensure() == v1::PACKAGE_ENSURE_ABSENT) {
        const std::string declaredAt = "packages[" + std::to_string(found->second) + "]";
        error(entryAt, entry + " is declared absent at " +
                           sources_.describe(declaredAt + ".ensure") +
                           "; only an installed package can restart a unit");
      }
    }
  }

  static std::string unknownPackageMessage(const std::string& entry, const v1::NodeState& state) {
    if (state.packages().empty()) {
      return entry + " is neither an absolute path nor a package declared in this state";
    }
    std::vector<std::string> names;
    for (const auto& package : state.packages()) {
      if (package.ensure() != v1::PACKAGE_ENSURE_ABSENT) names.push_back(package.name());
    }
    std::string message = entry + " is not a package declared in this state";
    if (auto nearest = nearestName(entry, names)) message += "; did you mean " + *nearest + "?";
    return message;
  }

  // The agent's own configuration files (see agent/converge/kernel.cpp), when
  // it writes them. They come first, at no position, so that a file or
  // artifact declared at one of them is the one reported, wherever it is.
  void declareKernelConfigs(const v1::NodeState& state, std::vector<Declared>& declared) const {
    auto add = [&](std::string_view path, std::string field) {
      declared.push_back(Declared{.path = std::string(path),
                                  .fieldPath = field,
                                  .kind = Declared::Kind::kKernelConfig,
                                  .unit = field,
                                  .absent = false,
                                  .position = {}});
    };
    if (!state.kernel_modules().empty()) add(kModulesConfig, "kernelModules");
    if (!state.sysctls().empty()) add(kSysctlConfig, "sysctls");
  }

  void checkArtifact(const std::string& at, const v1::Artifact& artifact,
                     std::vector<Declared>& declared) {
    checkAttributes(at, artifact.path(), artifact.has_mode(), artifact.mode(), artifact.owner(),
                    artifact.group(), artifact.ensure(), declared, Declared::Kind::kArtifact);
    if (artifact.ensure() == v1::ENSURE_ABSENT) {
      // Removing the file needs none of what fetching it does.
      if (!artifact.url().empty()) error(at + ".url", "has no effect with ensure: absent");
      if (!artifact.sha256().empty()) error(at + ".sha256", "has no effect with ensure: absent");
      if (!artifact.ca_file().empty()) error(at + ".caFile", "has no effect with ensure: absent");
      if (artifact.has_max_size()) error(at + ".maxSize", "has no effect with ensure: absent");
      return;
    }
    if (artifact.url().empty()) {
      error(at + ".url", "required");
    } else if (auto problem = urlProblem(artifact.url())) {
      error(at + ".url", *problem);
    }
    if (artifact.sha256().empty()) {
      error(at + ".sha256", "required; the agent installs only what matches it");
    } else if (auto problem = sha256Problem(artifact.sha256())) {
      error(at + ".sha256", *problem);
    }
    if (!artifact.ca_file().empty()) {
      if (auto problem = pathProblem(artifact.ca_file())) error(at + ".caFile", *problem);
    }
    if (artifact.has_max_size() && artifact.max_size() == 0) {
      error(at + ".maxSize", "must be greater than 0; leave it out for the default of 1 GiB");
    }
  }

  static constexpr std::string_view kOwnPackage = "nodewarden-agent";

  void checkPackages(const v1::NodeState& state) {
    std::unordered_map<std::string_view, std::string> names;
    for (int i = 0; i < state.packages_size(); ++i) {
      const auto& package = state.packages(i);
      const std::string at = "packages[" + std::to_string(i) + "]";
      if (package.name().empty()) {
        error(at + ".name", "required");
      } else if (auto problem = packageNameProblem(package.name())) {
        error(at + ".name", *problem);
      } else if (auto [first, inserted] = names.try_emplace(package.name(), at + ".name");
                 !inserted) {
        error(at + ".name",
              package.name() + " is already declared at " + sources_.describe(first->second));
      } else if (package.name() == kOwnPackage) {
        // The package's upgrade restarts the agent, and stopping the agent ends every
        // process of its unit: the package manager would die mid-transaction.
        error(at + ".name",
              "the agent does not manage its own package; upgrade nodewarden-agent with apt "
              "or dnf from outside the agent (see Upgrading in docs/operations.md)");
      }
      if (!v1::PackageEnsure_IsValid(package.ensure())) {
        error(at + ".ensure", "unknown value " + std::to_string(package.ensure()));
      }
      if (!package.version().empty()) {
        if (package.ensure() == v1::PACKAGE_ENSURE_LATEST) {
          error(at + ".version",
                "has no effect with ensure: latest, which installs the archive's newest; "
                "leave ensure out to install this version");
        } else if (package.ensure() == v1::PACKAGE_ENSURE_ABSENT) {
          error(at + ".version", "has no effect with ensure: absent");
        } else if (auto problem = versionProblem(package.version())) {
          error(at + ".version", *problem);
        }
      }
      if (package.has_hold() && package.hold() && package.ensure() == v1::PACKAGE_ENSURE_ABSENT) {
        error(at + ".hold", "a package to remove cannot be held; leave hold out");
      }
    }
  }

  // Keys are checked in order, for messages in the same order every time
  // (a proto map has none).
  void checkSysctls(const v1::NodeState& state) {
    std::vector<std::string_view> names;
    for (const auto& [name, value] : state.sysctls()) names.push_back(name);
    std::sort(names.begin(), names.end());
    for (std::string_view name : names) {
      const std::string at = "sysctls[\"" + std::string(name) + "\"]";
      if (auto problem = sysctlNameProblem(name)) error(at, *problem);
      if (auto problem = sysctlValueProblem(state.sysctls().at(std::string(name)))) {
        error(at, *problem);
      }
    }
  }

  // modprobe treats '-' and '_' in names alike: br-netfilter is br_netfilter.
  void checkKernelModules(const v1::NodeState& state) {
    std::unordered_map<std::string, int> seen;
    for (int i = 0; i < state.kernel_modules_size(); ++i) {
      const std::string& name = state.kernel_modules(i);
      const std::string at = "kernelModules[" + std::to_string(i) + "]";
      if (name.empty()) {
        error(at, "empty; name a kernel module");
        continue;
      }
      if (name.size() > kMaxModuleNameBytes) {
        error(at,
              "module names are at most " + std::to_string(kMaxModuleNameBytes) + " characters");
        continue;
      }
      auto bad = std::find_if(name.begin(), name.end(), [](char c) {
        return !isLetter(c) && !isDigit(c) && c != '_' && c != '-';
      });
      if (bad != name.end()) {
        error(at, name + " contains " + describeChar(*bad) + ", not allowed in module names");
        continue;
      }
      if (name.front() == '-') {
        // modprobe would read it as an option.
        error(at, name + " starts with '-'; module names start with a letter, digit or '_'");
        continue;
      }
      std::string canonical = name;
      std::replace(canonical.begin(), canonical.end(), '-', '_');
      auto [first, inserted] = seen.try_emplace(canonical, i);
      if (inserted) continue;
      const std::string& earlier = state.kernel_modules(first->second);
      std::string message =
          name + " is already declared at " +
          sources_.describe("kernelModules[" + std::to_string(first->second) + "]");
      if (earlier != name) message += " as " + earlier + " ('-' and '_' are the same to modprobe)";
      error(at, message);
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
