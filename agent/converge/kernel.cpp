#include "agent/converge/planner.h"

namespace nodewarden::converge {

void planKernel(const v1::NodeState& state, PlanContext& context) {
  if (!state.sysctls().empty() || !state.kernel_modules().empty()) {
    context.errors.push_back("sysctls and kernelModules: not supported yet");
  }
}

}  // namespace nodewarden::converge
