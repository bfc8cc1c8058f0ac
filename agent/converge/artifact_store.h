#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "agent/core/clock.h"
#include "agent/core/http_client.h"
#include "agent/core/status.h"

namespace nodewarden::converge {

// Whether `hex` is a sha256 as the state writes it: 64 lowercase hex digits.
bool isSha256(std::string_view hex);

// How often and how patiently a download is tried.
struct RetryPolicy {
  int attempts = 5;
  core::Duration initialDelay = std::chrono::seconds(1);  // doubled after each failure
  core::Duration maxDelay = std::chrono::seconds(60);
  double jitter = 0.2;  // each delay is scaled by a random factor in [1 - jitter, 1 + jitter]
};

// A file to fetch: where from, what it must hash to, and how large it may be.
struct ArtifactSource {
  std::string url;
  std::string sha256;  // lowercase hex
  std::string caFile;  // empty: the system's CA bundle
  uint64_t maxBytes = uint64_t{1} << 30;
};

// Downloads artifacts into a cache directory named by their sha256, so a
// file is fetched once however many runs or paths want it, and a download
// that does not hash to what the state says never leaves the cache's
// temporary name. Also remembers the digests of installed files, so a no-op
// run does not hash a 100 MB binary again while its inode, size, mtime and
// ctime are unchanged.
//
// The cache directory holds sha256/<hex> (complete, verified files only),
// .partial-* (downloads in progress) and digests (what digestOf() remembers).
// One store per cache directory at a time: a new one removes the partial
// downloads it finds. The store must outlive the fetches it started.
class ArtifactStore final {
 public:
  ArtifactStore(core::HttpClient& http, core::Clock& clock, std::string cacheDirectory,
                RetryPolicy retry = {});
  ~ArtifactStore();

  // The sha256 (lowercase hex) of the regular file at `path`.
  core::Result<std::string> digestOf(const std::string& path);
  // How many files digestOf() read to hash; the others it remembered.
  size_t filesHashed() const;

  // Makes the cache hold the file with `source.sha256`, fetching it (with
  // retries, backoff and jitter) when it does not; `done` gets the cached
  // file's path, on the loop thread, never inside the call. A digest
  // mismatch is an error naming both digests, and is not retried.
  void fetch(const ArtifactSource& source, std::function<void(core::Result<std::string>)> done);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace nodewarden::converge
