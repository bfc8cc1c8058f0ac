#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "agent/state/loader.h"

namespace nodewarden::state::test {

// Lines 1 and 2 of every test document, so the lines under test start at 3.
inline constexpr std::string_view kHeader = "apiVersion: nodewarden.io/v1\nkind: NodeState\n";

// The errors of loading `body` under kHeader as "node.yaml", as printed.
inline std::vector<std::string> errorsOf(std::string_view body) {
  LoadResult result = loadString(std::string(kHeader) + std::string(body), "node.yaml");
  std::vector<std::string> out;
  for (const auto& error : result.errors) out.push_back(error.toString());
  return out;
}

}  // namespace nodewarden::state::test
