#pragma once

#include <string>
#include <string_view>

namespace nodewarden::pki {

// "<what>: <call>: <reason>", the reason being the first error OpenSSL queued
// (the cause; later entries only add context). Empties the queue, so each
// wrapper that fails reports its own error and not one left over from before.
std::string openSslError(std::string_view what, std::string_view call);

// Forgets errors queued by earlier calls, which openSslError() would
// otherwise report as this call's cause. Wrappers call it before they begin.
void clearOpenSslErrors();

// For calls that fail only when OpenSSL cannot allocate memory or has lost its
// default provider, where going on would hand out a wrong digest or an empty
// certificate: says which call failed, and why, on stderr and aborts.
[[noreturn]] void abortOnOpenSslFailure(std::string_view call);

}  // namespace nodewarden::pki
