#pragma once

#include <sys/types.h>

#include <map>
#include <optional>
#include <string>

#include "agent/core/atomic_file.h"
#include "agent/core/status.h"

namespace nodewarden::converge {

// What lstat() says about a path, with a missing path as a normal answer.
struct ObservedPath {
  bool exists = false;
  bool isDirectory = false;
  bool isRegularFile = false;
  mode_t mode = 0;  // permission bits only
  uid_t uid = 0;
  gid_t gid = 0;
  off_t size = 0;
};

core::Result<ObservedPath> observePath(const std::string& path);

// Owner and group as the state names them, resolved to ids on this node.
// Unset means "not managed": an existing path keeps its own.
struct Ownership {
  std::optional<uid_t> uid;
  std::optional<gid_t> gid;
};

// Resolves "root", "1000" or "" (unmanaged) to ids; an unknown name is an
// error. Remembers each answer: every NSS lookup rereads /etc/passwd, and a
// plan names the same few accounts hundreds of times. Keep one per plan, so
// accounts created since the last plan are seen.
class Accounts final {
 public:
  core::Result<Ownership> resolve(const std::string& owner, const std::string& group);

 private:
  std::map<std::string, core::Result<uid_t>> users_;
  std::map<std::string, core::Result<gid_t>> groups_;
};

// Creates `path` and any missing parents; new parents get 0755.
core::Status makeDirectories(const std::string& path, mode_t mode);
core::Status setAttributes(const std::string& path, std::optional<mode_t> mode,
                           const Ownership& ownership);

// The attributes a file written over `observed` gets: those the state manages
// as it says; the others kept from a regular file there now, else the
// writer's own ids and mode 0644 (a link's 0777 is not the mode of anything).
core::FileAttributes attributesToInstall(const ObservedPath& observed, std::optional<mode_t> mode,
                                         const Ownership& ownership);

// "0644"
std::string formatMode(mode_t mode);
// "mode 0600 -> 0644, owner 1000 -> 0": the attributes that differ, or "".
std::string describeAttributeDrift(const ObservedPath& observed, std::optional<mode_t> mode,
                                   const Ownership& ownership);

}  // namespace nodewarden::converge
