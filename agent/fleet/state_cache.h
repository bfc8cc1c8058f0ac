#pragma once

#include <functional>
#include <string>

#include "agent/fleet/fleet_client.h"

namespace nodewarden::fleet {

// The last desired state the server sent, on disk: the document the agent
// enforces (as it would a local state file) and its version beside it. A
// state is validated with the agent's loader before it replaces the cached
// one, so a bad one changes nothing.
class StateCache final : public FleetListener {
 public:
  StateCache(std::string documentPath, std::string versionPath,
             std::function<void(const std::string& reason)> converge)
      : documentPath_(std::move(documentPath)),
        versionPath_(std::move(versionPath)),
        converge_(std::move(converge)) {}

  const std::string& documentPath() const { return documentPath_; }

  std::string desiredState(const std::string& version, const std::string& document) override;
  void convergeNow(const std::string& reason) override { converge_(reason); }
  std::string enforcedVersion() const override;

 private:
  std::string documentPath_;
  std::string versionPath_;
  std::function<void(const std::string&)> converge_;
};

}  // namespace nodewarden::fleet
