#include "agent/fleet/state_cache.h"

#include "agent/core/atomic_file.h"
#include "agent/core/log.h"
#include "agent/state/loader.h"

namespace nodewarden::fleet {

namespace {

const auto kLog = core::log::category("fleet");

}  // namespace

std::string StateCache::desiredState(const std::string& version, const std::string& document) {
  state::LoadResult loaded = state::loadString(document, "desired state " + version);
  if (!loaded.ok()) {
    std::string error;
    for (const auto& diagnostic : loaded.errors) {
      error += (error.empty() ? "" : "; ") + diagnostic.toString();
    }
    NW_LOG(kLog, err, "Rejected desired state {} from the server: {}", version, error);
    return error;
  }
  // The document first: a version naming a document not yet written would
  // make the server think this node has it.
  if (core::Status s = core::writeFileAtomic(documentPath_, document, {.mode = 0600}); !s) {
    NW_LOG(kLog, err, "Failed to cache desired state {}: {}", version, s.message());
    return "cache it: " + s.message();
  }
  if (core::Status s = core::writeFileAtomic(versionPath_, version + "\n", {.mode = 0600}); !s) {
    NW_LOG(kLog, err, "Failed to record the cached state's version: {}", s.message());
  }
  converge_("desired state " + version + " from the server");
  return "";
}

std::string StateCache::enforcedVersion() const {
  auto version = core::readFile(versionPath_, 4096);
  if (!version) return "";
  std::string out = std::move(*version);
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
  return out;
}

}  // namespace nodewarden::fleet
