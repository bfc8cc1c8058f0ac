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
  // Reads the cached version once; later ones are the states it caches.
  StateCache(std::string documentPath, std::string versionPath,
             std::function<void(const std::string& reason)> converge);

  const std::string& documentPath() const { return documentPath_; }

  std::string desiredState(const std::string& version, const std::string& document) override;
  void convergeNow(const std::string& reason) override { converge_(reason); }
  std::string enforcedVersion() const override { return version_; }

 private:
  std::string documentPath_;
  std::string versionPath_;
  std::function<void(const std::string&)> converge_;
  std::string version_;
};

}  // namespace nodewarden::fleet
