#include <getopt.h>

#include <iostream>
#include <nlohmann/json.hpp>

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
  bool json = false;
  static const option kOptions[] = {
      {"json", no_argument, nullptr, 'j'},
      {"help", no_argument, nullptr, 'h'},
      {nullptr, 0, nullptr, 0},
  };
  optind = 1;
  for (int c; (c = getopt_long(argc, argv, "jh", kOptions, nullptr)) != -1;) {
    switch (c) {
      case 'j':
        json = true;
        break;
      case 'h':
        std::cout << kUsage;
        return kExitOk;
      default:
        std::cerr << kUsage;
        return kExitUsage;
    }
  }
  if (optind + 1 != argc) {
    std::cerr << kUsage;
    return kExitUsage;
  }
  const std::string path = argv[optind];

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
  const auto& s = *loaded.state;
  std::cout << path << ": valid (" << s.directories_size() << " directories, " << s.files_size()
            << " files, " << s.units_size() << " units)\n";
  return kExitOk;
}

}  // namespace nodewarden::cmd
