#pragma once

#include <chrono>
#include <string>

#include "agent/core/clock.h"
#include "agent/core/status.h"
#include "agent/pki/openssl_ptr.h"

namespace nodewarden::pki {

// A certificate's notBefore or notAfter, to the second.
core::WallTime toTimePoint(const ASN1_TIME* time);
core::Status setAsn1Time(ASN1_TIME* field, core::WallTime time);

// "2030-01-01T00:00:00Z", for messages.
std::string formatTime(core::WallTime time);

}  // namespace nodewarden::pki
