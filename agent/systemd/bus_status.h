#pragma once

#include <systemd/sd-bus.h>

#include <string_view>

#include "agent/core/status.h"

namespace nodewarden::systemd {

// The Status of a failed sd-bus call: "<what>: <message>", with the message the
// peer sent in `error` when there is one ("start x.service: Unit x.service not
// found."), strerror(-r) otherwise. systemd's own error names map to codes
// (NoSuchUnit → kNotFound); others go by their errno.
core::Status busStatus(std::string_view what, int r, const sd_bus_error* error);

// The same for a bus message that carries an error reply.
core::Status busReplyStatus(std::string_view what, sd_bus_message* reply);

}  // namespace nodewarden::systemd
