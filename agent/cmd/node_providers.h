#pragma once

#include <memory>
#include <string>

#include "agent/converge/planner.h"
#include "agent/core/clock.h"
#include "agent/core/status.h"

namespace nodewarden::core {
class Loop;
class ProcessRunner;
class HttpClient;
}  // namespace nodewarden::core

namespace nodewarden::cmd {

// Where downloaded artifacts are kept, by sha256 (CacheDirectory= of the unit).
inline constexpr char kArtifactCacheDirectory[] = "/var/cache/nodewarden/artifacts";

// What the planner reaches beyond files and systemd on this node: child
// processes, its package manager (apt or dnf, or none) and the artifact store.
// Everything runs on `loop`, which must outlive it.
class NodeProviders final {
 public:
  static core::Result<std::unique_ptr<NodeProviders>> create(core::Loop& loop, core::Clock& clock);
  ~NodeProviders();

  converge::Providers providers() const;
  // For the probes: the same HTTP client and process runner.
  core::HttpClient& http() const { return *http_; }
  core::ProcessRunner& processes() const { return *processes_; }

 private:
  NodeProviders() = default;

  std::unique_ptr<core::ProcessRunner> processes_;
  std::unique_ptr<packages::PackageManager> packages_;
  std::unique_ptr<core::HttpClient> http_;
  std::unique_ptr<converge::ArtifactStore> artifacts_;
};

}  // namespace nodewarden::cmd
