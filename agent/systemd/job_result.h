#pragma once

#include <string_view>

#include "agent/core/clock.h"
#include "agent/core/status.h"
#include "agent/systemd/systemd_manager.h"

namespace nodewarden::systemd {

// "start", "stop", "restart": the systemctl verb, used in messages and call records.
std::string_view jobVerb(JobKind kind);

// The Status of a job from the result systemd's JobRemoved signal carries
// ("done", "failed", "dependency", ...). `unitResult` is the unit's own Result
// property ("exit-code", "timeout", ...) when the job failed and it is known.
core::Status jobResultStatus(JobKind kind, std::string_view unit, std::string_view result,
                             std::string_view unitResult = {});

// The Status of a job that systemd did not finish within `timeout`.
core::Status jobTimeoutStatus(JobKind kind, std::string_view unit, core::Duration timeout);

}  // namespace nodewarden::systemd
