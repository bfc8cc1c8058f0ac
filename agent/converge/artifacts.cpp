#include "agent/converge/artifact_store.h"
#include "agent/converge/node_files.h"
#include "agent/converge/planner.h"
#include "agent/core/atomic_file.h"
#include "agent/core/paths.h"

namespace nodewarden::converge {

namespace {

// Enough of a digest to tell two apart in a plan.
std::string abbreviated(const std::string& sha256) { return sha256.substr(0, 12) + "…"; }

ArtifactSource sourceOf(const v1::Artifact& artifact) {
  ArtifactSource source{
      .url = artifact.url(), .sha256 = artifact.sha256(), .caFile = artifact.ca_file()};
  if (artifact.has_max_size()) source.maxBytes = artifact.max_size();
  return source;
}

void planPresentArtifact(const v1::Artifact& artifact, ArtifactStore& store, PlanContext& context) {
  const std::string resource = "artifact " + artifact.path();
  auto fail = [&](const std::string& message) {
    context.errors.push_back(resource + ": " + message);
  };
  auto ownership = context.accounts.resolve(artifact.owner(), artifact.group());
  if (!ownership) return fail(ownership.status().message());
  const std::optional<mode_t> mode =
      artifact.has_mode() ? std::optional<mode_t>(artifact.mode()) : std::nullopt;

  planLeftovers(core::parentDirectory(artifact.path()), context);
  const std::string hostPath = context.hostPath(artifact.path());
  auto observed = observePath(hostPath);
  if (!observed) return fail(observed.status().message());

  std::string action = "update", detail;
  const std::string wanted = "sha256 " + abbreviated(artifact.sha256());
  if (!observed->exists) {
    action = "create";
    detail = wanted + ", mode " + formatMode(mode.value_or(0644));
  } else if (observed->isDirectory) {
    // Known to fail: refuse the state whole rather than fail half-way.
    return fail(artifact.path() + " is a directory");
  } else if (!observed->isRegularFile) {
    detail = "replace a non-regular file with " + wanted;
  } else {
    auto digest = store.digestOf(hostPath);
    if (!digest) return fail(digest.status().message());
    const std::string drift = describeAttributeDrift(*observed, mode, *ownership);
    if (*digest == artifact.sha256()) {
      if (drift.empty()) return;
      // Same content: fix the attributes in place; nothing a reader sees changes.
      const size_t change = context.plan.add(resource, action, drift);
      context.plan.steps.push_back(Step{change, {}, [hostPath, mode, ownership = *ownership] {
                                          return setAttributes(hostPath, mode, ownership);
                                        }});
      return;
    }
    detail = "sha256 " + abbreviated(*digest) + " -> " + abbreviated(artifact.sha256());
    if (!drift.empty()) detail += ", " + drift;
  }

  const size_t change = context.plan.add(resource, action, detail);
  context.contentSteps[artifact.path()] = context.plan.steps.size();
  const core::FileAttributes attributes = attributesToInstall(*observed, mode, *ownership);
  // Artifacts come before directories in a plan, so a declared parent is not
  // made yet: make the missing ones (0755), which the directory steps then
  // bring to their declared attributes.
  Step step{change, {}, nullptr, nullptr, {}};
  step.start = [&store, source = sourceOf(artifact), hostPath, attributes](Step::Done done) {
    store.fetch(source, [hostPath, attributes, done](core::Result<std::string> cached) {
      if (!cached) return done(cached.status());
      if (core::Status s = makeDirectories(core::parentDirectory(hostPath), 0755); !s) {
        return done(s);
      }
      done(core::copyFileAtomic(*cached, hostPath, attributes));
    });
  };
  context.plan.steps.push_back(std::move(step));
}

}  // namespace

void planArtifacts(const v1::NodeState& state, PlanContext& context) {
  if (state.artifacts().empty()) return;
  ArtifactStore* store = context.providers.artifacts;
  if (store == nullptr) {
    context.errors.push_back("artifacts: this node has no artifact store to download them into");
    return;
  }
  for (const auto& artifact : state.artifacts()) {
    if (artifact.ensure() == v1::ENSURE_ABSENT) {
      planAbsentFile("artifact " + artifact.path(), artifact.path(), context);
    } else {
      planPresentArtifact(artifact, *store, context);
    }
  }
}

}  // namespace nodewarden::converge
