#include "agent/fleet/state_cache.h"

#include "agent/core/atomic_file.h"
#include "agent/core/log.h"
#include "agent/state/loader.h"

namespace nodewarden::fleet {

namespace {

const auto kLog = core::log::category("fleet");

}  // namespace

StateCache::StateCache(std::string documentPath, std::string versionPath,
                       std::function<void(const std::string& reason)> converge)
    : documentPath_(std::move(documentPath)),
      versionPath_(std::move(versionPath)),
      converge_(std::move(converge)) {
  if (auto version = core::readFile(versionPath_, 4096)) {
    version_ = std::move(*version);
    while (!version_.empty() && (version_.back() == '\n' || version_.back() == ' ')) {
      version_.pop_back();
    }
  }
}

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
  version_ = version;
  converge_("desired state " + version + " from the server");
  return "";
}

}  // namespace nodewarden::fleet
