#pragma once

#include <memory>
#include <string>

#include "agent/core/clock.h"
#include "nodewarden/v1/control.pb.h"

namespace nodewarden::converge {
struct Report;
}
namespace nodewarden::heal {
class HealthBoard;
}

namespace nodewarden::fleet {

class FleetClient;

// What the agent reports after a converge: the version applied, the result
// ("ok", "failed", "rejected", "paused"), each resource's outcome and the
// duration. `report` is null when the converge could not run.
v1::AgentMessage convergeReport(const std::string& version, const std::string& result,
                                const std::string& error, const converge::Report* report,
                                core::Clock& clock);

// Sends the node's conditions and events to the server as they change: a
// second after the first change (a burst of them goes out as one update),
// every current condition and the events since the last update.
class HealthReporter final {
 public:
  HealthReporter(core::Clock& clock, heal::HealthBoard& board, FleetClient& client);

 private:
  void send();

  heal::HealthBoard& board_;
  FleetClient& client_;
  std::unique_ptr<core::Timer> timer_;
  v1::HealthUpdate pending_;  // events not yet sent
};

}  // namespace nodewarden::fleet
