#include "agent/daemon/file_watcher.h"

#include <sys/inotify.h>

#include "agent/core/paths.h"

namespace nodewarden::daemon {

core::Status InotifyFileWatcher::watch(const std::string& path, std::function<void()> changed) {
  const std::string name = core::baseName(path);
  auto source = loop_.addInotify(
      core::parentDirectory(path),
      IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE | IN_DELETE | IN_DELETE_SELF |
          IN_MOVE_SELF,
      [this, name, changed = std::move(changed)](const struct inotify_event& event) {
        // The directory itself went away or moved: this watch sees nothing
        // more. Say so; the daemon watches again at its next converge.
        if (event.mask & (IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED)) {
          gone_ = true;
          changed();
          return;
        }
        // A queue overflow may have eaten the event that mattered.
        if ((event.mask & IN_Q_OVERFLOW) || (event.len > 0 && name == event.name)) changed();
      });
  if (!source) return source.status();
  source_ = std::move(*source);
  gone_ = false;
  return core::Status::ok();
}

}  // namespace nodewarden::daemon
