#include "agent/converge/planner.h"

namespace nodewarden::converge {

void planArtifacts(const v1::NodeState& state, PlanContext& context) {
  if (!state.artifacts().empty()) context.errors.push_back("artifacts: not supported yet");
}

}  // namespace nodewarden::converge
