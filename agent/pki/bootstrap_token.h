#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace nodewarden::pki {

// A bootstrap token in kubeadm's format, "[a-z0-9]{6}.[a-z0-9]{16}": the id
// names it in the open, the secret proves it.
struct BootstrapToken {
  std::string id;
  std::string secret;
};

// The token, or nothing when `text` is not exactly of that form.
std::optional<BootstrapToken> parseBootstrapToken(std::string_view text);

}  // namespace nodewarden::pki
