#pragma once

#include <string>

namespace nodewarden::packages {

// One package as the package database records it on this node.
struct InstalledPackage {
  std::string name;
  std::string architecture;  // "amd64", "all", "noarch"; empty when the database has none
  std::string version;       // as the package manager writes it; empty when unknown
  // dpkg: "want flag status" ("install ok installed", "deinstall ok config-files");
  // rpm: "installed".
  std::string status;
  bool installed = false;  // files are unpacked and configured: dpkg's "ok installed"

  bool operator==(const InstalledPackage&) const = default;
};

}  // namespace nodewarden::packages
