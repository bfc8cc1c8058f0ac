#include <dirent.h>

#include <algorithm>
#include <memory>
#include <string_view>

#include "agent/converge/node_files.h"
#include "agent/converge/planner.h"
#include "agent/core/atomic_file.h"
#include "agent/core/base64.h"
#include "agent/core/paths.h"

namespace nodewarden::converge {

namespace {

// The step that creates the nearest declared ancestor directory, if any.
std::vector<size_t> ancestorSteps(const std::string& path, const PlanContext& context) {
  for (std::string parent = core::parentDirectory(path); parent != "/" && parent != ".";
       parent = core::parentDirectory(parent)) {
    if (auto it = context.directorySteps.find(parent); it != context.directorySteps.end()) {
      return {it->second};
    }
  }
  return {};
}

// Whether the file at `path` (of `size` bytes) holds exactly `content`.
core::Result<bool> sameContent(const std::string& path, const ObservedPath& observed,
                               const std::string& content) {
  if (static_cast<size_t>(observed.size) != content.size()) return false;
  auto current = core::readFile(path, content.size());
  if (!current) return current.status();
  return *current == content;
}

// A file without content or contentBase64 has only its attributes managed
// (and is created empty when missing).
core::Result<std::optional<std::string>> desiredContent(const v1::File& file) {
  switch (file.source_case()) {
    case v1::File::kContentBase64: {
      auto decoded = core::decodeBase64(file.content_base64());
      if (!decoded) return decoded.status();
      return std::optional<std::string>(std::move(*decoded));
    }
    case v1::File::kContent:
      return std::optional<std::string>(file.content());
    default:
      return std::optional<std::string>();
  }
}

}  // namespace

void planLeftovers(const std::string& directory, PlanContext& context) {
  if (!context.scannedDirectories.insert(directory).second) return;
  const std::string hostDirectory = context.hostPath(directory);
  struct CloseDir {
    void operator()(DIR* dir) const { ::closedir(dir); }
  };
  std::unique_ptr<DIR, CloseDir> dir(::opendir(hostDirectory.c_str()));
  if (!dir) return;  // missing: nothing left there; unreadable: the write will say so
  while (const dirent* entry = ::readdir(dir.get())) {
    if (!std::string_view(entry->d_name).starts_with(core::kTemporaryFilePrefix)) continue;
    const std::string path = (directory == "/" ? "" : directory) + "/" + entry->d_name;
    const size_t change = context.plan.add("file " + path, "delete", "left by an interrupted run");
    context.plan.steps.push_back(Step{
        change, {}, [hostPath = context.hostPath(path)] { return core::removePath(hostPath); }});
  }
}

// Plans one managed regular file; shared by files and unit files.
void planFile(const std::string& resource, const std::string& path,
              std::optional<std::string> content, std::optional<mode_t> mode,
              const Ownership& ownership, std::vector<size_t> after, PlanContext& context,
              std::optional<size_t>* stepOut) {
  planLeftovers(core::parentDirectory(path), context);
  const std::string hostPath = context.hostPath(path);
  auto observed = observePath(hostPath);
  if (!observed) {
    context.errors.push_back(resource + ": " + observed.status().message());
    return;
  }

  std::string action, detail;
  bool writeContent = true;
  if (!observed->exists) {
    action = "create";
    if (!content) content.emplace();
    detail = "mode " + formatMode(mode.value_or(0644)) + ", " + std::to_string(content->size()) +
             " bytes";
  } else if (!observed->isRegularFile) {
    // Known to fail, or to destroy what the path leads to: refuse the state
    // whole rather than fail half-way through it.
    if (observed->isDirectory) {
      context.errors.push_back(resource + ": " + path + " is a directory");
      return;
    }
    if (!content) {
      context.errors.push_back(resource + ": " + path +
                               " is not a regular file (a symbolic link?) and the state gives "
                               "no content to replace it with");
      return;
    }
    action = "update";
    detail = "replace a non-regular file";
  } else {
    auto same = content ? sameContent(hostPath, *observed, *content) : core::Result<bool>(true);
    if (!same) {
      context.errors.push_back(resource + ": " + same.status().message());
      return;
    }
    detail = describeAttributeDrift(*observed, mode, ownership);
    if (*same && detail.empty()) return;
    action = "update";
    writeContent = !*same;
    if (writeContent) detail = detail.empty() ? "content" : "content, " + detail;
  }

  const size_t change = context.plan.add(resource, action, detail);
  const size_t step = context.plan.steps.size();
  if (!writeContent) {
    context.plan.steps.push_back(Step{change, std::move(after), [hostPath, mode, ownership] {
                                        return setAttributes(hostPath, mode, ownership);
                                      }});
    return;
  }
  if (stepOut) *stepOut = step;
  context.contentSteps[path] = step;
  const core::FileAttributes attributes = attributesToInstall(*observed, mode, ownership);
  context.plan.steps.push_back(
      Step{change, std::move(after),
           [hostPath, content = std::move(*content), attributes]() -> core::Status {
             if (core::Status s = makeDirectories(core::parentDirectory(hostPath), 0755); !s)
               return s;
             return core::writeFileAtomic(hostPath, content, attributes);
           }});
}

namespace {

void planAbsentFiles(const v1::NodeState& state, PlanContext& context) {
  for (const auto& file : state.files()) {
    if (file.ensure() != v1::ENSURE_ABSENT) continue;
    planAbsentFile("file " + file.path(), file.path(), context);
  }
}

}  // namespace

// A deleted file counts as a content change: units listing it restart.
void planAbsentFile(const std::string& resource, const std::string& nodePath,
                    PlanContext& context) {
  const std::string path = context.hostPath(nodePath);
  auto observed = observePath(path);
  if (!observed) {
    context.errors.push_back(resource + ": " + observed.status().message());
    return;
  }
  if (!observed->exists) return;
  if (observed->isDirectory) {
    context.errors.push_back(resource + ": " + nodePath + " is a directory, not a file");
    return;
  }
  const size_t change = context.plan.add(resource, "delete", "");
  context.contentSteps[nodePath] = context.plan.steps.size();
  context.plan.steps.push_back(Step{change, {}, [path] { return core::removePath(path); }});
}

void planFiles(const v1::NodeState& state, PlanContext& context) {
  for (const auto& file : state.files()) {
    if (file.ensure() == v1::ENSURE_ABSENT) continue;
    const std::string resource = "file " + file.path();
    auto ownership = context.accounts.resolve(file.owner(), file.group());
    if (!ownership) {
      context.errors.push_back(resource + ": " + ownership.status().message());
      continue;
    }
    auto content = desiredContent(file);
    if (!content) {
      context.errors.push_back(resource + ": " + content.status().message());
      continue;
    }
    const std::optional<mode_t> mode =
        file.has_mode() ? std::optional<mode_t>(file.mode()) : std::nullopt;
    planFile(resource, file.path(), std::move(*content), mode, *ownership,
             ancestorSteps(file.path(), context), context, nullptr);
  }
  planAbsentFiles(state, context);
}

void planDirectoryRemovals(const v1::NodeState& state, PlanContext& context) {
  // Children before parents; rmdir refuses a directory that still holds files.
  std::vector<const v1::Directory*> absent;
  for (const auto& directory : state.directories()) {
    if (directory.ensure() == v1::ENSURE_ABSENT) absent.push_back(&directory);
  }
  std::sort(absent.begin(), absent.end(),
            [](const auto* a, const auto* b) { return a->path() > b->path(); });
  for (const v1::Directory* directory : absent) {
    const std::string path = context.hostPath(directory->path());
    auto observed = observePath(path);
    if (!observed) {
      context.errors.push_back("directory " + directory->path() + ": " +
                               observed.status().message());
      continue;
    }
    if (!observed->exists) continue;
    const size_t change = context.plan.add("directory " + directory->path(), "delete", "");
    // Only an empty directory goes: remove() refuses one that still holds files.
    context.plan.steps.push_back(Step{change, {}, [path] { return core::removePath(path); }});
  }
}

}  // namespace nodewarden::converge
