// The agent's and the server's configuration files on arbitrary text: both
// loaders must never crash, and a configuration the schema mapping accepts
// must render (toDocument) to a document that loads back the same.

#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "agent/daemon/agent_config.h"
#include "agent/state/document.h"
#include "agent/state/loader.h"
#include "nodewarden/v1/agent_config.pb.h"
#include "nodewarden/v1/server_config.pb.h"
#include "server/cmd/server_config.h"
#include "tests/fuzz/fuzz_support.h"

using namespace nodewarden;

namespace {

// The loaders take a path: a memfd, reached through /proc, is a file that
// touches no disk and is rewritten in place for each input.
int configFd = -1;
std::string configPath;

template <typename Config>
void checkSchemaMapping(std::string_view text, const std::string& name) {
  Config config;
  if (!state::loadMessage(text, name, config).empty()) return;
  const std::string document = state::toDocument(config);
  Config reloaded;
  const auto errors = state::loadMessage(document, "rendered-" + name, reloaded);
  fuzz::requireRoundTrip(config, document, errors, reloaded);
}

void writeConfig(std::string_view text) {
  if (::ftruncate(configFd, 0) < 0 ||
      ::pwrite(configFd, text.data(), text.size(), 0) != static_cast<ssize_t>(text.size())) {
    std::perror("write the fuzzed configuration");
    std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  fuzz::silenceLogs();
  configFd = ::memfd_create("fuzz-config", MFD_CLOEXEC);
  if (configFd < 0) {
    std::perror("memfd_create");
    std::abort();
  }
  configPath = "/proc/self/fd/" + std::to_string(configFd);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  checkSchemaMapping<v1::AgentConfig>(text, "agent.yaml");
  checkSchemaMapping<v1::ServerConfig>(text, "server.yaml");

  writeConfig(text);
  (void)daemon::loadAgentConfig(configPath);
  (void)server::loadServerConfig(configPath);
  return 0;
}
