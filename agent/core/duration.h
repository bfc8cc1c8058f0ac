#pragma once

#include <string>
#include <string_view>

#include "agent/core/clock.h"
#include "agent/core/status.h"

namespace nodewarden::core {

// Parses "500ms", "90s", "5m", "1h30m" (units ms, s, m, h, d; at least one).
Result<Duration> parseDuration(std::string_view text);
// The same, refusing zero: an interval or a timeout.
Result<Duration> parsePositiveDuration(std::string_view text);
// "5m", "1h30m", "250ms": the shortest form parseDuration reads back.
std::string formatDuration(Duration duration);

}  // namespace nodewarden::core
