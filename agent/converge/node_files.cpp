#include "agent/converge/node_files.h"

#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdio>
#include <vector>

#include "agent/core/atomic_file.h"

namespace nodewarden::converge {

namespace {

std::optional<unsigned> parseId(const std::string& text) {
  unsigned id = 0;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), id);
  if (error != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return id;
}

core::Result<uid_t> resolveUser(const std::string& name) {
  if (auto id = parseId(name)) return static_cast<uid_t>(*id);
  std::vector<char> buffer(16384);
  struct passwd entry, *found = nullptr;
  int r = ::getpwnam_r(name.c_str(), &entry, buffer.data(), buffer.size(), &found);
  if (r != 0) return core::Status::fromErrno(r, "look up user " + name);
  if (found == nullptr) return core::Status::notFound("user " + name + " does not exist");
  return found->pw_uid;
}

core::Result<gid_t> resolveGroup(const std::string& name) {
  if (auto id = parseId(name)) return static_cast<gid_t>(*id);
  std::vector<char> buffer(16384);
  struct group entry, *found = nullptr;
  int r = ::getgrnam_r(name.c_str(), &entry, buffer.data(), buffer.size(), &found);
  if (r != 0) return core::Status::fromErrno(r, "look up group " + name);
  if (found == nullptr) return core::Status::notFound("group " + name + " does not exist");
  return found->gr_gid;
}

}  // namespace

core::Result<ObservedPath> observePath(const std::string& path) {
  struct stat st;
  ObservedPath observed;
  if (::lstat(path.c_str(), &st) < 0) {
    if (errno == ENOENT || errno == ENOTDIR) return observed;
    return core::Status::fromErrno(errno, "stat " + path);
  }
  observed.exists = true;
  observed.isDirectory = S_ISDIR(st.st_mode);
  observed.isRegularFile = S_ISREG(st.st_mode);
  observed.mode = st.st_mode & 07777;
  observed.uid = st.st_uid;
  observed.gid = st.st_gid;
  observed.size = st.st_size;
  return observed;
}

core::Result<Ownership> Accounts::resolve(const std::string& owner, const std::string& group) {
  Ownership ownership;
  if (!owner.empty()) {
    auto it = users_.find(owner);
    if (it == users_.end()) it = users_.emplace(owner, resolveUser(owner)).first;
    if (!it->second) return it->second.status();
    ownership.uid = *it->second;
  }
  if (!group.empty()) {
    auto it = groups_.find(group);
    if (it == groups_.end()) it = groups_.emplace(group, resolveGroup(group)).first;
    if (!it->second) return it->second.status();
    ownership.gid = *it->second;
  }
  return ownership;
}

core::Status makeDirectories(const std::string& path, mode_t mode) {
  if (path.empty() || path == "/") return core::Status::ok();
  auto observed = observePath(path);
  if (!observed) return observed.status();
  if (observed->exists) {
    if (observed->isDirectory) return core::Status::ok();
    return core::Status::failedPrecondition(path + " exists and is not a directory");
  }
  const auto slash = path.rfind('/');
  if (slash != std::string::npos && slash > 0) {
    if (core::Status s = makeDirectories(path.substr(0, slash), 0755); !s) return s;
  }
  if (::mkdir(path.c_str(), mode) < 0) {
    if (errno == EEXIST) return core::Status::ok();
    return core::Status::fromErrno(errno, "create directory " + path);
  }
  // mkdir's mode passes through the umask of whoever runs the agent.
  if (::chmod(path.c_str(), mode) < 0) return core::Status::fromErrno(errno, "chmod " + path);
  return core::syncParentDirectory(path);
}

core::Status setAttributes(const std::string& path, std::optional<mode_t> mode,
                           const Ownership& ownership) {
  if (ownership.uid || ownership.gid) {
    if (::lchown(path.c_str(), ownership.uid.value_or(static_cast<uid_t>(-1)),
                 ownership.gid.value_or(static_cast<gid_t>(-1))) < 0) {
      return core::Status::fromErrno(errno, "chown " + path);
    }
  }
  // After chown, which may clear set-id bits.
  if (mode && ::chmod(path.c_str(), *mode) < 0) {
    return core::Status::fromErrno(errno, "chmod " + path);
  }
  return core::Status::ok();
}

core::FileAttributes attributesToInstall(const ObservedPath& observed, std::optional<mode_t> mode,
                                         const Ownership& ownership) {
  const bool keep = observed.exists && observed.isRegularFile;
  core::FileAttributes attributes{.mode = mode.value_or(keep ? observed.mode : 0644)};
  attributes.uid = ownership.uid ? ownership.uid
                   : keep        ? std::optional<uid_t>(observed.uid)
                                 : std::nullopt;
  attributes.gid = ownership.gid ? ownership.gid
                   : keep        ? std::optional<gid_t>(observed.gid)
                                 : std::nullopt;
  return attributes;
}

std::string formatMode(mode_t mode) {
  char text[8];
  std::snprintf(text, sizeof(text), "%04o", static_cast<unsigned>(mode & 07777));
  return text;
}

std::string describeAttributeDrift(const ObservedPath& observed, std::optional<mode_t> mode,
                                   const Ownership& ownership) {
  std::string drift;
  auto note = [&](const std::string& what) {
    if (!drift.empty()) drift += ", ";
    drift += what;
  };
  if (mode && observed.mode != *mode) {
    note("mode " + formatMode(observed.mode) + " -> " + formatMode(*mode));
  }
  if (ownership.uid && observed.uid != *ownership.uid) {
    note("owner " + std::to_string(observed.uid) + " -> " + std::to_string(*ownership.uid));
  }
  if (ownership.gid && observed.gid != *ownership.gid) {
    note("group " + std::to_string(observed.gid) + " -> " + std::to_string(*ownership.gid));
  }
  return drift;
}

}  // namespace nodewarden::converge
