#pragma once

#include <string>
#include <vector>

#include "agent/daemon/service_notifier.h"

namespace nodewarden::daemon {

// Records what the agent would send to systemd, one entry per sd_notify()
// message in its words: "READY=1\nSTATUS=...", "STATUS=...", "STOPPING=1".
class FakeServiceNotifier final : public ServiceNotifier {
 public:
  void ready(const std::string& status) override {
    messages_.push_back("READY=1\nSTATUS=" + status);
    ready_ = true;
    status_ = status;
  }
  void status(const std::string& status) override {
    messages_.push_back("STATUS=" + status);
    status_ = status;
  }
  void stopping() override { messages_.push_back("STOPPING=1"); }

  const std::vector<std::string>& messages() const { return messages_; }
  bool isReady() const { return ready_; }
  // The last STATUS= sent; "" before any.
  const std::string& lastStatus() const { return status_; }

 private:
  std::vector<std::string> messages_;
  bool ready_ = false;
  std::string status_;
};

}  // namespace nodewarden::daemon
