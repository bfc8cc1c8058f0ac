#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <string_view>

#include "agent/core/status.h"

namespace nodewarden::core {

struct FileAttributes {
  mode_t mode = 0644;
  std::optional<uid_t> uid;  // unset: the writer's own
  std::optional<gid_t> gid;
};

// Names of the temporary files writeFileAtomic() makes start with this. One
// can be left behind only by a crash between naming the new file and renaming
// it over the old one; whoever manages the directory removes it.
inline constexpr std::string_view kTemporaryFilePrefix = ".nodewarden-";

// Replaces `path` with `data` so that a reader, or a crash at any moment, sees
// either the old file or the new one, never a partial one: the data goes to an
// unnamed file in the same directory, is fsynced with its attributes set, takes
// the place of the old file by rename, and the directory is fsynced.
Status writeFileAtomic(const std::string& path, std::string_view data,
                       const FileAttributes& attributes);

// Replaces `to` with a copy of the file `from`, as writeFileAtomic() does.
Status copyFileAtomic(const std::string& from, const std::string& to,
                      const FileAttributes& attributes);

// Reads a whole file, refusing files larger than `maxBytes`.
Result<std::string> readFile(const std::string& path, size_t maxBytes);

// Removes the file or empty directory at `path` durably (the directory that
// held it is fsynced). A path that is already gone is not an error.
Status removePath(const std::string& path);

// fsyncs the directory that holds `path`, making a rename or unlink in it durable.
Status syncParentDirectory(const std::string& path);

}  // namespace nodewarden::core
