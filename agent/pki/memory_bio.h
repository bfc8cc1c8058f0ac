#pragma once

#include <string>
#include <string_view>

#include "agent/core/status.h"
#include "agent/pki/openssl_ptr.h"

namespace nodewarden::pki {

// A BIO that reads `data`, which must outlive it.
core::Result<OpenSslPtr<BIO>> readingBio(std::string_view data, std::string_view what);

// A BIO that collects what is written to it, for contentsOf().
OpenSslPtr<BIO> writingBio();
std::string contentsOf(BIO* bio);

}  // namespace nodewarden::pki
