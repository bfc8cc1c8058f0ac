#pragma once

#include <string>
#include <string_view>

namespace nodewarden::state {

// The files the agent writes for a state's kernelModules and sysctls, which
// `files` may not declare beside them. systemd-modules-load reads the first
// at boot; systemd-sysctl the second, after it, and again whenever
// br_netfilter is loaded (udev), which is how net.bridge.* hold.
inline constexpr std::string_view kModulesConfig = "/etc/modules-load.d/nodewarden.conf";
inline constexpr std::string_view kSysctlConfig = "/etc/sysctl.d/90-nodewarden.conf";

// The path under /proc/sys of a kernel parameter, as sysctl.d(5) spells it: a
// name whose first separator is '/' is a path already; otherwise '.' and '/'
// swap, so that "net.ipv4.conf.eth0/100.rp_filter" reaches the interface
// eth0.100.
inline std::string sysctlPath(std::string_view name) {
  std::string path(name);
  const size_t separator = path.find_first_of("./");
  if (separator != std::string::npos && path[separator] == '.') {
    for (char& c : path) c = c == '.' ? '/' : c == '/' ? '.' : c;
  }
  return path;
}

}  // namespace nodewarden::state
