#include "agent/cmd/node_providers.h"

#include "agent/converge/artifact_store.h"
#include "agent/core/curl_http_client.h"
#include "agent/core/loop_process_runner.h"
#include "agent/packages/package_manager_factory.h"

namespace nodewarden::cmd {

NodeProviders::~NodeProviders() = default;

core::Result<std::unique_ptr<NodeProviders>> NodeProviders::create(core::Loop& loop,
                                                                   core::Clock& clock) {
  std::unique_ptr<NodeProviders> node(new NodeProviders());
  auto processes = core::LoopProcessRunner::create(loop, clock);
  if (!processes) return processes.status();
  node->processes_ = std::move(*processes);
  // A node without apt or dnf can still converge a state without packages.
  node->packages_ = packages::detectPackageManager(*node->processes_, clock, {});
  auto http = core::CurlHttpClient::create(loop);
  if (!http) return http.status();
  node->http_ = std::move(*http);
  node->artifacts_ =
      std::make_unique<converge::ArtifactStore>(*node->http_, clock, kArtifactCacheDirectory);
  return node;
}

converge::Providers NodeProviders::providers() const {
  return {
      .packages = packages_.get(), .artifacts = artifacts_.get(), .processes = processes_.get()};
}

}  // namespace nodewarden::cmd
