#pragma once

#include <string>
#include <string_view>

#include "agent/core/status.h"
#include "agent/pki/openssl_ptr.h"

namespace nodewarden::pki {

// The one common name in `name`, as UTF-8. A name with none, or with more
// than one (which would let a reader pick the one it likes), is an error.
core::Result<std::string> commonNameOf(const X509_NAME* name);

// A subject or issuer name that holds only CN=`commonName`.
core::Result<OpenSslPtr<X509_NAME>> nameWithCommonName(std::string_view commonName);

}  // namespace nodewarden::pki
