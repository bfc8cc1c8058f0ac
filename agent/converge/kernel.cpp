#include <fcntl.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>
#include <optional>
#include <set>
#include <string_view>

#include "agent/converge/planner.h"
#include "agent/core/atomic_file.h"
#include "agent/core/process_runner.h"
#include "agent/core/unique_fd.h"
#include "agent/state/kernel_settings.h"

namespace nodewarden::converge {

namespace {

using state::kModulesConfig;
using state::kSysctlConfig;

constexpr std::string_view kConfigHeader =
    "# Managed by nodewarden-agent from the node's desired state; edits are overwritten.\n";

// Bounds for what is read from the kernel's module index, /proc/sys and an
// earlier configuration file.
constexpr size_t kMaxIndexBytes = 64 << 20;
constexpr size_t kMaxParameterBytes = 64 << 10;
constexpr size_t kMaxConfigBytes = 1 << 20;

// How /sys/module names a module: modprobe treats '-' and '_' alike, the
// kernel writes '_'.
std::string canonicalModuleName(std::string_view name) {
  std::string out(name);
  std::replace(out.begin(), out.end(), '-', '_');
  return out;
}

// "overlay" from "kernel/fs/overlayfs/overlay.ko.xz".
std::string moduleNameOfPath(std::string_view path) {
  const size_t slash = path.rfind('/');
  if (slash != std::string_view::npos) path.remove_prefix(slash + 1);
  path = path.substr(0, path.find(".ko"));
  return canonicalModuleName(path);
}

std::string trim(std::string_view text) {
  const size_t first = text.find_first_not_of(" \t\r\n");
  if (first == std::string_view::npos) return "";
  const size_t last = text.find_last_not_of(" \t\r\n");
  return std::string(text.substr(first, last - first + 1));
}

// "32768\t60999\n" and "32768 60999" are one value to the kernel.
std::string normalizeWhitespace(std::string_view value) {
  std::string out;
  size_t i = 0;
  while (true) {
    i = value.find_first_not_of(" \t\r\n", i);
    if (i == std::string_view::npos) break;
    const size_t end = std::min(value.find_first_of(" \t\r\n", i), value.size());
    out += (out.empty() ? "" : " ") + std::string(value.substr(i, end - i));
    i = end;
  }
  return out;
}

bool isDirectory(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

// What the running kernel can load, from the index depmod writes next to
// its modules; read at most once per plan, and only when a module is not
// loaded.
class ModuleIndex final {
 public:
  explicit ModuleIndex(const PlanContext& context) : context_(context) {
    struct utsname name;
    if (::uname(&name) == 0) release_ = name.release;
    directory_ = "/lib/modules/" + release_;
    canLoad_ = !release_.empty() && isDirectory(context_.hostPath(directory_));
  }

  const std::string& directory() const { return directory_; }
  const std::string& release() const { return release_; }
  // False in most containers, which share the host's kernel but not its modules.
  bool canLoad() const { return canLoad_; }

  enum class Kind { kUnknown, kLoadable, kBuiltIn, kMissing };

  // kUnknown when the index cannot be read: modprobe will say.
  Kind find(const std::string& name) {
    if (!read_) read();
    if (!readable_) return Kind::kUnknown;
    const std::string canonical = canonicalModuleName(name);
    if (builtIn_.contains(canonical)) return Kind::kBuiltIn;
    if (loadable_.contains(canonical)) return Kind::kLoadable;
    // An alias ("fs-overlay") loads a module of another name; modprobe knows.
    auto aliases = core::readFile(context_.hostPath(directory_ + "/modules.alias"), kMaxIndexBytes);
    if (aliases && aliases->find("alias " + name + " ") != std::string::npos) return Kind::kUnknown;
    return Kind::kMissing;
  }

 private:
  void read() {
    read_ = true;
    auto dependencies =
        core::readFile(context_.hostPath(directory_ + "/modules.dep"), kMaxIndexBytes);
    if (!dependencies) return;
    readable_ = true;
    // "kernel/fs/overlayfs/overlay.ko.xz: dependencies"
    forEachLine(*dependencies, [this](std::string_view line) {
      loadable_.insert(moduleNameOfPath(line.substr(0, line.find(':'))));
    });
    auto builtIn =
        core::readFile(context_.hostPath(directory_ + "/modules.builtin"), kMaxIndexBytes);
    if (!builtIn) return;
    forEachLine(*builtIn,
                [this](std::string_view line) { builtIn_.insert(moduleNameOfPath(line)); });
  }

  template <typename F>
  static void forEachLine(std::string_view text, F f) {
    while (!text.empty()) {
      const size_t end = std::min(text.find('\n'), text.size());
      if (end > 0) f(text.substr(0, end));
      text.remove_prefix(std::min(end + 1, text.size()));
    }
  }

  const PlanContext& context_;
  std::string release_;
  std::string directory_;
  bool canLoad_ = false;
  bool read_ = false;
  bool readable_ = false;
  std::set<std::string> loadable_;
  std::set<std::string> builtIn_;
};

// "modprobe overlay: modprobe: FATAL: Module overlay not found in directory …"
core::Status modprobeStatus(const std::string& name, const core::Result<core::ProcessResult>& r) {
  const std::string what = "modprobe " + name;
  if (!r) return r.status().withContext(what);
  if (r->succeeded()) return core::Status::ok();
  std::string why = trim(r->stderrData);
  if (why.empty()) {
    why = r->timedOut ? "timed out"
          : r->signal ? "killed by signal " + std::to_string(*r->signal)
                      : "exited with status " + std::to_string(r->exitCode.value_or(-1));
  }
  return core::Status::internal(what + ": " + why);
}

core::Status writeParameter(const std::string& path, const std::string& value) {
  core::UniqueFd fd(::open(path.c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC));
  if (!fd.isValid()) return core::Status::fromErrno(errno, "open " + path);
  // One write: the kernel parses each write to a parameter as a whole value.
  const std::string data = value + "\n";
  const ssize_t n = ::write(fd.get(), data.data(), data.size());
  if (n < 0) return core::Status::fromErrno(errno, "write " + path);
  if (static_cast<size_t>(n) != data.size()) {
    return core::Status::internal("write " + path + ": the kernel took " + std::to_string(n) +
                                  " of " + std::to_string(data.size()) + " bytes");
  }
  return core::Status::ok();
}

// Why the parameter at `hostPath` cannot be set, or nothing. The agent runs
// as root, for whom access() ignores permission bits: read-only parameters
// are told by their mode, a read-only /proc/sys (a container) by access().
std::optional<std::string> unwritableReason(const std::string& nodePath,
                                            const std::string& hostPath,
                                            const ObservedPath& observed) {
  if ((observed.mode & 0222) == 0) return nodePath + " is read-only in this kernel";
  if (::access(hostPath.c_str(), W_OK) == 0) return std::nullopt;
  const int error = errno;
  if (error == EROFS) {
    return "/proc/sys is mounted read-only here (a container?), so " + nodePath + " cannot be set";
  }
  return nodePath + " is not writable: " + std::strerror(error);
}

void markNotApplicable(size_t change, std::string reason, PlanContext& context) {
  context.plan.changes[change].outcome = Change::Outcome::kNotApplicable;
  context.plan.changes[change].error = std::move(reason);
}

// One of the agent's configuration files: `content` when something is
// declared. With nothing declared the file from an earlier state is removed,
// so that the next boot does not bring back what the state no longer asks
// for; the running kernel keeps its modules and values until then (the agent
// never unloads a module or guesses a parameter's default). Only a file that
// carries the agent's header goes, and never one that `files` declares.
void planConfig(std::string_view path, const std::optional<std::string>& content,
                const v1::NodeState& state, PlanContext& context) {
  const std::string nodePath(path);
  const std::string resource = "file " + nodePath;
  if (content) {
    planFile(resource, nodePath, *content, 0644, {}, {}, context, nullptr);
    return;
  }
  for (const auto& file : state.files()) {
    if (file.path() == nodePath) return;
  }
  const std::string hostPath = context.hostPath(nodePath);
  auto observed = observePath(hostPath);
  if (!observed) {
    context.errors.push_back(resource + ": " + observed.status().message());
    return;
  }
  if (!observed->exists || !observed->isRegularFile) return;
  auto current = core::readFile(hostPath, kMaxConfigBytes);
  if (!current || !current->starts_with(kConfigHeader)) return;  // not the agent's
  const size_t change = context.plan.add(resource, "delete", "nothing declared");
  context.contentSteps[nodePath] = context.plan.steps.size();
  context.plan.steps.push_back(Step{change, {}, [hostPath] { return core::removePath(hostPath); }});
}

// Loads, now, the declared modules the kernel does not have yet; records
// their steps in context.moduleSteps. Returns the modules this node cannot
// load, for the parameters they might have brought.
std::vector<std::string> planModuleLoads(const std::vector<std::string>& names,
                                         PlanContext& context) {
  std::vector<std::string> notLoadable;
  std::optional<ModuleIndex> index;
  for (const std::string& name : names) {
    const std::string resource = "kernel module " + name;
    if (::access(context.hostPath("/sys/module/" + canonicalModuleName(name)).c_str(), F_OK) == 0) {
      continue;
    }
    if (!index) index.emplace(context);
    if (!index->canLoad()) {
      const size_t change = context.plan.add(resource, "load", "not loaded");
      markNotApplicable(
          change,
          "cannot load kernel modules here: " + index->directory() + " is missing (a container?)",
          context);
      notLoadable.push_back(name);
      continue;
    }
    // Built-in modules without parameters have no directory in /sys/module.
    const ModuleIndex::Kind kind = index->find(name);
    if (kind == ModuleIndex::Kind::kBuiltIn) continue;
    if (kind == ModuleIndex::Kind::kMissing) {
      const size_t change = context.plan.add(resource, "load", "not loaded");
      markNotApplicable(change, "kernel " + index->release() + " has no module " + name, context);
      notLoadable.push_back(name);
      continue;
    }
    // modprobe may still fail for a reason the plan could not see (no
    // CAP_SYS_MODULE, a module refused by Secure Boot): then the step fails
    // with modprobe's reason. This node claims to load modules and what
    // depends on this one will not work, which an operator needs to see as
    // a failure rather than a quiet "not applicable".
    const size_t change = context.plan.add(resource, "load", "not loaded");
    context.moduleSteps.push_back(context.plan.steps.size());
    context.plan.steps.push_back(Step{
        .change = change,
        .after = {},
        .run = {},
        .start =
            [&runner = *context.providers.processes, name](Step::Done done) {
              core::ProcessRequest request{.argv = {"modprobe", "--", name},
                                           .timeout = std::chrono::minutes(1)};
              runner.run(std::move(request),
                         [name, done = std::move(done)](core::Result<core::ProcessResult> r) {
                           done(modprobeStatus(name, r));
                         });
            },
    });
  }
  return notLoadable;
}

// Sets the declared parameters whose value differs now. A parameter missing
// from /proc/sys may come with a module planned for loading (br_netfilter
// brings net.bridge.*): it is set after those loads. A parameter that exists
// does not wait for them, so that a module that fails to load does not keep
// net.ipv4.ip_forward from being set; plan order still puts it after them.
void planParameters(const std::map<std::string, std::string>& sysctls,
                    const std::vector<std::string>& notLoadable, PlanContext& context) {
  for (const auto& [name, value] : sysctls) {
    const std::string resource = "sysctl " + name;
    const std::string nodePath = "/proc/sys/" + state::sysctlPath(name);
    const std::string hostPath = context.hostPath(nodePath);
    const std::string wanted = normalizeWhitespace(value);
    auto observed = observePath(hostPath);
    if (!observed) {
      context.errors.push_back(resource + ": " + observed.status().message());
      continue;
    }
    if (!observed->exists) {
      if (context.moduleSteps.empty()) {
        const size_t change = context.plan.add(resource, "set", "-> " + wanted);
        std::string reason = "this kernel has no parameter " + name;
        if (!notLoadable.empty()) {
          std::string modules;
          for (const auto& module : notLoadable) modules += (modules.empty() ? "" : ", ") + module;
          reason += " (kernel modules that cannot be loaded here: " + modules + ")";
        }
        markNotApplicable(change, std::move(reason), context);
        continue;
      }
      const size_t change =
          context.plan.add(resource, "set", "-> " + wanted + ", once modules are loaded");
      context.plan.steps.push_back(
          Step{change, context.moduleSteps, [hostPath, name, value]() -> core::Status {
                 if (::access(hostPath.c_str(), F_OK) < 0 && errno == ENOENT) {
                   return core::Status::notFound("this kernel has no parameter " + name +
                                                 ", even with the declared modules loaded");
                 }
                 return writeParameter(hostPath, value);
               }});
      continue;
    }
    auto current = core::readFile(hostPath, kMaxParameterBytes);
    if (!current) {
      context.errors.push_back(resource + ": " + current.status().message());
      continue;
    }
    const std::string was = normalizeWhitespace(*current);
    if (was == wanted) continue;
    const size_t change = context.plan.add(resource, "set", was + " -> " + wanted);
    if (auto reason = unwritableReason(nodePath, hostPath, *observed)) {
      markNotApplicable(change, std::move(*reason), context);
      continue;
    }
    context.plan.steps.push_back(
        Step{change, {}, [hostPath, value] { return writeParameter(hostPath, value); }});
  }
}

}  // namespace

void planKernel(const v1::NodeState& state, PlanContext& context) {
  std::vector<std::string> modules(state.kernel_modules().begin(), state.kernel_modules().end());
  std::sort(modules.begin(), modules.end());
  modules.erase(std::unique(modules.begin(), modules.end()), modules.end());
  const std::map<std::string, std::string> sysctls(state.sysctls().begin(), state.sysctls().end());
  if (!modules.empty() && !context.providers.processes) {
    context.errors.push_back("kernelModules: this agent has no way to run modprobe");
    return;
  }

  std::optional<std::string> modulesConfig;
  if (!modules.empty()) {
    modulesConfig = std::string(kConfigHeader);
    for (const auto& name : modules) *modulesConfig += name + "\n";
  }
  planConfig(kModulesConfig, modulesConfig, state, context);
  const std::vector<std::string> notLoadable = planModuleLoads(modules, context);

  std::optional<std::string> sysctlConfig;
  if (!sysctls.empty()) {
    sysctlConfig = std::string(kConfigHeader);
    for (const auto& [name, value] : sysctls) *sysctlConfig += name + " = " + value + "\n";
  }
  planConfig(kSysctlConfig, sysctlConfig, state, context);
  planParameters(sysctls, notLoadable, context);
}

}  // namespace nodewarden::converge
