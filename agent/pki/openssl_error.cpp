#include "agent/pki/openssl_error.h"

#include <openssl/err.h>

#include <cstdio>
#include <cstdlib>

namespace nodewarden::pki {

std::string openSslError(std::string_view what, std::string_view call) {
  std::string reason = "failed";
  const char* data = nullptr;
  int flags = 0;
  if (unsigned long error = ERR_get_error_all(nullptr, nullptr, nullptr, &data, &flags);
      error != 0) {
    if (const char* text = ERR_reason_error_string(error); text != nullptr) {
      reason = text;
    } else {
      char buffer[256];
      ERR_error_string_n(error, buffer, sizeof(buffer));
      reason = buffer;
    }
    // What OpenSSL adds, such as "Expecting: CERTIFICATE" to "no start line".
    if ((flags & ERR_TXT_STRING) != 0 && data != nullptr && *data != '\0') {
      reason.append(" (").append(data).append(")");
    }
  }
  std::string message(what);
  message.append(": ").append(call).append(": ").append(reason);
  ERR_clear_error();  // After the last use of `data`, which the queue owns.
  return message;
}

void clearOpenSslErrors() { ERR_clear_error(); }

void abortOnOpenSslFailure(std::string_view call) {
  std::fprintf(stderr, "%s\n", openSslError("nodewarden pki", call).c_str());
  std::abort();
}

}  // namespace nodewarden::pki
