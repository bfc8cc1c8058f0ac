#pragma once

#include <string>

namespace nodewarden::daemon {

// What the agent tells its service manager (systemd's sd_notify protocol):
// that start-up is done, and a one-line status for `systemctl status`.
class ServiceNotifier {
 public:
  virtual ~ServiceNotifier() = default;
  // READY=1 with the first status; sent once.
  virtual void ready(const std::string& status) = 0;
  virtual void status(const std::string& status) = 0;
  virtual void stopping() = 0;
};

// sd_notify(): a no-op when the agent does not run under systemd.
class SdServiceNotifier final : public ServiceNotifier {
 public:
  void ready(const std::string& status) override;
  void status(const std::string& status) override;
  void stopping() override;
};

}  // namespace nodewarden::daemon
