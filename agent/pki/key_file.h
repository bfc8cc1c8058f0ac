#pragma once

#include <string>

#include "agent/core/status.h"

namespace nodewarden::pki {

class PrivateKey;

// Writes `key` as PKCS#8 PEM, mode 0600, replacing `path` atomically.
core::Status writePrivateKey(const std::string& path, const PrivateKey& key);

// Reads a key written by writePrivateKey(). A key file that group or others
// may access is refused, as ssh does: the key may have been copied, and
// using it would hide that.
core::Result<PrivateKey> readPrivateKey(const std::string& path);

}  // namespace nodewarden::pki
