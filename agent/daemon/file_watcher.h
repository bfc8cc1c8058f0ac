#pragma once

#include <functional>
#include <string>

#include "agent/core/loop.h"
#include "agent/core/status.h"

namespace nodewarden::daemon {

// Tells the daemon when its state file may have changed.
class FileWatcher {
 public:
  virtual ~FileWatcher() = default;
  // Calls `changed` each time the file at `path` may have changed (written,
  // replaced, created or removed), until stop(). Fails when the file's
  // directory cannot be watched (missing, for one).
  virtual core::Status watch(const std::string& path, std::function<void()> changed) = 0;
  virtual void stop() = 0;
  virtual bool watching() const = 0;
};

// inotify on the file's directory, on the loop, so that a file replaced by a
// rename (as editors and config tools do) is still seen.
class InotifyFileWatcher final : public FileWatcher {
 public:
  explicit InotifyFileWatcher(core::Loop& loop) : loop_(loop) {}

  core::Status watch(const std::string& path, std::function<void()> changed) override;
  void stop() override { source_.reset(); }
  bool watching() const override { return source_ && !gone_; }

 private:
  core::Loop& loop_;
  core::EventSource source_;
  bool gone_ = false;  // the watched directory was removed or moved
};

}  // namespace nodewarden::daemon
