#include "agent/daemon/service_notifier.h"

#include <systemd/sd-daemon.h>

namespace nodewarden::daemon {

void SdServiceNotifier::ready(const std::string& status) {
  sd_notifyf(0, "READY=1\nSTATUS=%s", status.c_str());
}

void SdServiceNotifier::status(const std::string& status) {
  sd_notifyf(0, "STATUS=%s", status.c_str());
}

void SdServiceNotifier::stopping() { sd_notify(0, "STOPPING=1"); }

}  // namespace nodewarden::daemon
