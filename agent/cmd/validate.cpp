#include <iostream>
#include <nlohmann/json.hpp>

#include "agent/cmd/arguments.h"
#include "agent/cmd/commands.h"
#include "agent/cmd/report_output.h"
#include "agent/state/loader.h"

namespace nodewarden::cmd {

namespace {

constexpr char kUsage[] = R"(Usage: nodewarden-agent validate [--json] FILE

Checks a desired-state file without touching the node and prints every error
as FILE:LINE:COLUMN: FIELD: MESSAGE. Exits 0 when it is valid, 1 when not.
)";

}  // namespace

int validate(int argc, char** argv) {
  static constexpr OptionSpec kOptions[] = {{"json"}};
  auto parsed = Arguments::parse(argc, argv, kOptions, 1, kUsage);
  if (const int* exit = std::get_if<int>(&parsed)) return *exit;
  const Arguments& arguments = std::get<Arguments>(parsed);
  const bool json = arguments.has("json");
  const std::string& path = arguments.operands()[0];

  const state::LoadResult loaded = state::loadFile(path);
  if (json) {
    nlohmann::json out = {{"file", path}, {"valid", loaded.ok()}};
    out["errors"] = diagnosticsJson(loaded.errors);
    std::cout << out.dump(2) << "\n";
    return loaded.ok() ? kExitOk : kExitInvalid;
  }
  if (!loaded.ok()) {
    printDiagnostics(loaded.errors, std::cerr);
    std::cerr << path << ": " << loaded.errors.size()
              << (loaded.errors.size() == 1 ? " error\n" : " errors\n");
    return kExitInvalid;
  }
  // What the state declares, in the order it is applied; kinds it leaves out
  // are not listed.
  const auto& s = *loaded.state;
  std::string counts;
  auto count = [&](int n, const char* one, const char* many) {
    if (n == 0) return;
    counts += (counts.empty() ? "" : ", ") + std::to_string(n) + " " + (n == 1 ? one : many);
  };
  count(s.packages_size(), "package", "packages");
  count(s.artifacts_size(), "artifact", "artifacts");
  count(s.kernel_modules_size(), "kernel module", "kernel modules");
  count(static_cast<int>(s.sysctls_size()), "sysctl", "sysctls");
  count(s.directories_size(), "directory", "directories");
  count(s.files_size(), "file", "files");
  count(s.units_size(), "unit", "units");
  std::cout << path << ": valid (" << (counts.empty() ? "nothing declared" : counts) << ")\n";
  return kExitOk;
}

}  // namespace nodewarden::cmd
