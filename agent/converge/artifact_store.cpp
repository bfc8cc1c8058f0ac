#include "agent/converge/artifact_store.h"

#include <dirent.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <deque>
#include <map>
#include <random>
#include <sstream>
#include <string_view>
#include <vector>

#include "agent/converge/node_files.h"
#include "agent/core/atomic_file.h"
#include "agent/core/unique_fd.h"

namespace nodewarden::converge {

namespace {

using namespace std::chrono_literals;

constexpr std::string_view kPartialPrefix = ".partial-";
constexpr std::string_view kDigestsFile = "digests";
constexpr std::string_view kDigestsHeader = "nodewarden-digests 1";
constexpr size_t kMaxDigestsFileBytes = 8 << 20;
// Bounds the digests file; a node manages far fewer artifacts.
constexpr size_t kMaxRememberedDigests = 4096;
// A file changed this recently may change again within the timestamps'
// granularity without its mtime or ctime moving: hash it, but don't
// remember the answer.
constexpr core::Duration kRacyWindow = 2s;

struct MdContextFree {
  void operator()(EVP_MD_CTX* context) const { EVP_MD_CTX_free(context); }
};

std::string openSslError(const std::string& what) {
  char reason[256] = "unknown error";
  if (unsigned long error = ERR_get_error(); error != 0) {
    ERR_error_string_n(error, reason, sizeof(reason));
  }
  ERR_clear_error();
  return what + ": " + reason;
}

core::Result<std::string> sha256Of(int fd, const std::string& path) {
  std::unique_ptr<EVP_MD_CTX, MdContextFree> context(EVP_MD_CTX_new());
  if (!context || EVP_DigestInit_ex(context.get(), EVP_sha256(), nullptr) != 1) {
    return core::Status::internal(openSslError("sha256 " + path));
  }
  std::vector<unsigned char> buffer(256 * 1024);
  while (true) {
    ssize_t n = ::read(fd, buffer.data(), buffer.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return core::Status::fromErrno(errno, "read " + path);
    }
    if (n == 0) break;
    if (EVP_DigestUpdate(context.get(), buffer.data(), static_cast<size_t>(n)) != 1) {
      return core::Status::internal(openSslError("sha256 " + path));
    }
  }
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned length = 0;
  if (EVP_DigestFinal_ex(context.get(), digest, &length) != 1) {
    return core::Status::internal(openSslError("sha256 " + path));
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex;
  for (unsigned i = 0; i < length; ++i) {
    hex += kHex[digest[i] >> 4];
    hex += kHex[digest[i] & 0xf];
  }
  return hex;
}

// What says a file is still the one that was hashed.
struct FileIdentity {
  uint64_t device = 0;
  uint64_t inode = 0;
  int64_t size = 0;
  int64_t mtimeNs = 0;
  int64_t ctimeNs = 0;

  static FileIdentity of(const struct stat& st) {
    auto ns = [](const timespec& t) { return int64_t{t.tv_sec} * 1'000'000'000 + t.tv_nsec; };
    return {st.st_dev, st.st_ino, st.st_size, ns(st.st_mtim), ns(st.st_ctim)};
  }
  bool operator==(const FileIdentity&) const = default;
};

}  // namespace

bool isSha256(std::string_view hex) {
  return hex.size() == 64 && hex.find_first_not_of("0123456789abcdef") == std::string_view::npos;
}

struct ArtifactStore::Impl {
  using Callback = std::function<void(core::Result<std::string>)>;

  struct Download {
    ArtifactSource source;
    std::vector<Callback> waiters;
    int attempts = 0;
    std::string temporary;
    std::unique_ptr<core::Timer> retryTimer;
  };
  struct Remembered {
    FileIdentity identity;
    std::string digest;
    uint64_t used = 0;
  };

  Impl(core::HttpClient& httpClient, core::Clock& storeClock, std::string directory,
       RetryPolicy policy)
      : http(httpClient), clock(storeClock), cache(std::move(directory)), retry(policy) {}

  std::string cachedPath(const std::string& sha256) const { return cache + "/sha256/" + sha256; }
  std::string digestsPath() const { return cache + "/" + std::string(kDigestsFile); }

  void removePartials();
  void answerLater(Callback done, core::Result<std::string> result);
  void deliverReady();
  void startAttempt(const std::string& sha256);
  void onResponse(const std::string& sha256, core::Result<core::HttpResponse> response);
  core::Status verifyAndKeep(const Download& download);
  core::Duration retryDelay(int failedAttempts);
  void finish(const std::string& sha256, core::Result<std::string> result);

  void loadRemembered();
  void remember(const std::string& path, const FileIdentity& identity, const std::string& digest);

  core::HttpClient& http;
  core::Clock& clock;
  const std::string cache;
  const RetryPolicy retry;
  std::mt19937_64 random{std::random_device{}()};
  std::map<std::string, std::unique_ptr<Download>> downloads;  // by sha256
  std::deque<std::pair<Callback, core::Result<std::string>>> ready;
  std::unique_ptr<core::Timer> readyTimer;
  std::map<std::string, Remembered> remembered;  // by path
  bool rememberedLoaded = false;
  bool partialsRemoved = false;
  uint64_t uses = 0;
  size_t filesHashed = 0;
  // Answers arriving after the store is gone find it gone.
  std::shared_ptr<bool> alive = std::make_shared<bool>(true);
};

void ArtifactStore::Impl::removePartials() {
  struct CloseDir {
    void operator()(DIR* dir) const { ::closedir(dir); }
  };
  std::unique_ptr<DIR, CloseDir> dir(::opendir(cache.c_str()));
  if (!dir) return;  // missing: nothing to remove; unreadable: downloads will say so
  std::vector<std::string> partials;
  while (const dirent* entry = ::readdir(dir.get())) {
    if (std::string_view(entry->d_name).starts_with(kPartialPrefix)) {
      partials.push_back(cache + "/" + entry->d_name);
    }
  }
  // A leftover that cannot go costs disk space, not correctness: ignored.
  for (const std::string& partial : partials) ::unlink(partial.c_str());
}

void ArtifactStore::Impl::answerLater(Callback done, core::Result<std::string> result) {
  ready.emplace_back(std::move(done), std::move(result));
  if (!readyTimer->armed()) readyTimer->armIn(0s);
}

void ArtifactStore::Impl::deliverReady() {
  auto batch = std::move(ready);
  ready.clear();
  auto stillAlive = alive;
  for (auto& [done, result] : batch) {
    if (!*stillAlive) return;  // a callback destroyed the store
    done(std::move(result));
  }
}

void ArtifactStore::Impl::startAttempt(const std::string& sha256) {
  Download& download = *downloads.at(sha256);
  ++download.attempts;
  if (core::Status s = makeDirectories(cache + "/sha256", 0755); !s) return finish(sha256, s);
  download.temporary = cache + "/" + std::string(kPartialPrefix) + sha256 + "." +
                       std::to_string(random() % 1'000'000'000);
  core::HttpRequest request{.url = download.source.url,
                            .caFile = download.source.caFile,
                            .maxBytes = download.source.maxBytes,
                            .outputPath = download.temporary};
  http.get(std::move(request), [this, sha256, stillAlive = alive](auto response) {
    if (*stillAlive) onResponse(sha256, std::move(response));
  });
}

core::Status ArtifactStore::Impl::verifyAndKeep(const Download& download) {
  const std::string& expected = download.source.sha256;
  core::UniqueFd fd(::open(download.temporary.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.isValid()) return core::Status::fromErrno(errno, "open " + download.temporary);
  auto digest = sha256Of(fd.get(), download.temporary);
  if (!digest) return digest.status();
  if (*digest != expected) {
    return core::Status::failedPrecondition("sha256 mismatch for " + download.source.url +
                                            ": expected " + expected + ", got " + *digest);
  }
  // Durable before it is named: the cache holds only complete files.
  if (::fsync(fd.get()) < 0) return core::Status::fromErrno(errno, "fsync " + download.temporary);
  const std::string cached = cachedPath(expected);
  if (::rename(download.temporary.c_str(), cached.c_str()) < 0) {
    return core::Status::fromErrno(errno, "rename to " + cached);
  }
  return core::syncParentDirectory(cached);
}

core::Duration ArtifactStore::Impl::retryDelay(int failedAttempts) {
  const double doublings = std::min(failedAttempts - 1, 62);
  const double base =
      std::min(static_cast<double>(retry.initialDelay.count()) * std::pow(2.0, doublings),
               static_cast<double>(retry.maxDelay.count()));
  std::uniform_real_distribution<double> factor(1.0 - retry.jitter, 1.0 + retry.jitter);
  return core::Duration(static_cast<core::Duration::rep>(base * factor(random)));
}

void ArtifactStore::Impl::onResponse(const std::string& sha256,
                                     core::Result<core::HttpResponse> response) {
  Download& download = *downloads.at(sha256);
  core::Status failure;
  bool retryable = false;
  if (!response) {
    failure = response.status();
    retryable = failure.code() == core::Status::Code::kTimeout ||
                failure.code() == core::Status::Code::kInternal;
  } else if (response->status != 200) {
    const long status = response->status;
    failure = core::Status::failedPrecondition("GET " + download.source.url + ": HTTP " +
                                               std::to_string(status));
    // The server's trouble, or a request it may take later.
    retryable = status >= 500 || status == 408 || status == 429;
  } else if (core::Status kept = verifyAndKeep(download); !kept) {
    failure = kept;
  } else {
    return finish(sha256, cachedPath(sha256));
  }
  ::unlink(download.temporary.c_str());
  if (retryable && download.attempts < retry.attempts) {
    download.retryTimer = clock.createTimer([this, sha256] { startAttempt(sha256); });
    download.retryTimer->armIn(retryDelay(download.attempts));
    return;
  }
  if (download.attempts > 1) {
    failure =
        core::Status::error(failure.code(), failure.message() + " (gave up after " +
                                                std::to_string(download.attempts) + " attempts)");
  }
  finish(sha256, failure);
}

void ArtifactStore::Impl::finish(const std::string& sha256, core::Result<std::string> result) {
  auto it = downloads.find(sha256);
  std::unique_ptr<Download> download = std::move(it->second);
  downloads.erase(it);
  // Through the loop, also when fetch() itself failed to start the download.
  for (Callback& done : download->waiters) answerLater(std::move(done), result);
}

void ArtifactStore::Impl::loadRemembered() {
  if (rememberedLoaded) return;
  rememberedLoaded = true;
  // Missing or unreadable: files are hashed again and the file rewritten.
  auto text = core::readFile(digestsPath(), kMaxDigestsFileBytes);
  if (!text) return;
  std::istringstream lines(*text);
  std::string line;
  if (!std::getline(lines, line) || line != kDigestsHeader) return;
  while (std::getline(lines, line)) {
    std::istringstream fields(line);
    Remembered entry;
    FileIdentity& id = entry.identity;
    if (!(fields >> id.device >> id.inode >> id.size >> id.mtimeNs >> id.ctimeNs >> entry.digest)) {
      continue;
    }
    std::string path;
    if (fields.get() != ' ' || !std::getline(fields, path) || path.empty() ||
        !isSha256(entry.digest)) {
      continue;
    }
    remembered[path] = std::move(entry);
  }
}

void ArtifactStore::Impl::remember(const std::string& path, const FileIdentity& identity,
                                   const std::string& digest) {
  if (path.find('\n') != std::string::npos) return;
  if (remembered.size() >= kMaxRememberedDigests && !remembered.contains(path)) {
    auto oldest = std::min_element(remembered.begin(), remembered.end(),
                                   [](auto& a, auto& b) { return a.second.used < b.second.used; });
    remembered.erase(oldest);
  }
  remembered[path] = Remembered{identity, digest, ++uses};
  std::string text = std::string(kDigestsHeader) + "\n";
  for (const auto& [file, entry] : remembered) {
    const FileIdentity& id = entry.identity;
    text += std::to_string(id.device) + " " + std::to_string(id.inode) + " " +
            std::to_string(id.size) + " " + std::to_string(id.mtimeNs) + " " +
            std::to_string(id.ctimeNs) + " " + entry.digest + " " + file + "\n";
  }
  // Failing to keep the answer costs a hash next run, nothing else: ignored.
  if (makeDirectories(cache, 0755)) {
    (void)core::writeFileAtomic(digestsPath(), text, {.mode = 0600});
  }
}

ArtifactStore::ArtifactStore(core::HttpClient& http, core::Clock& clock, std::string cacheDirectory,
                             RetryPolicy retry)
    : impl_(std::make_unique<Impl>(http, clock, std::move(cacheDirectory), retry)) {
  Impl* impl = impl_.get();
  impl->readyTimer = clock.createTimer([impl] { impl->deliverReady(); });
}

ArtifactStore::~ArtifactStore() {
  *impl_->alive = false;
  for (const auto& [sha256, download] : impl_->downloads) {
    if (!download->temporary.empty()) ::unlink(download->temporary.c_str());
  }
}

size_t ArtifactStore::filesHashed() const { return impl_->filesHashed; }

core::Result<std::string> ArtifactStore::digestOf(const std::string& path) {
  Impl& impl = *impl_;
  impl.loadRemembered();
  struct stat st;
  if (::stat(path.c_str(), &st) < 0) return core::Status::fromErrno(errno, "stat " + path);
  if (auto it = impl.remembered.find(path);
      it != impl.remembered.end() && it->second.identity == FileIdentity::of(st)) {
    it->second.used = ++impl.uses;
    return it->second.digest;
  }

  core::UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY));
  if (!fd.isValid()) return core::Status::fromErrno(errno, "open " + path);
  if (::fstat(fd.get(), &st) < 0) return core::Status::fromErrno(errno, "stat " + path);
  if (!S_ISREG(st.st_mode)) return core::Status::failedPrecondition(path + " is not a file");
  auto digest = sha256Of(fd.get(), path);
  if (!digest) return digest.status();
  ++impl.filesHashed;

  const core::WallTime settled = impl.clock.wallNow() - kRacyWindow;
  auto wall = [](const timespec& t) {
    return core::WallTime(std::chrono::duration_cast<core::WallTime::duration>(
        std::chrono::seconds(t.tv_sec) + std::chrono::nanoseconds(t.tv_nsec)));
  };
  if (wall(st.st_mtim) < settled && wall(st.st_ctim) < settled) {
    impl.remember(path, FileIdentity::of(st), *digest);
  }
  return digest;
}

void ArtifactStore::fetch(const ArtifactSource& source,
                          std::function<void(core::Result<std::string>)> done) {
  Impl& impl = *impl_;
  if (!isSha256(source.sha256)) {
    return impl.answerLater(
        std::move(done),
        core::Status::invalidArgument("fetch " + source.url + ": sha256 \"" + source.sha256 +
                                      "\" is not 64 lowercase hex digits"));
  }
  const std::string cached = impl.cachedPath(source.sha256);
  struct stat st;
  if (::stat(cached.c_str(), &st) == 0 && S_ISREG(st.st_mode)) {
    // Checked again (cheaply, through the remembered digests): a damaged
    // cache entry would otherwise be installed on every run.
    auto digest = digestOf(cached);
    if (digest && *digest == source.sha256) return impl.answerLater(std::move(done), cached);
    ::unlink(cached.c_str());
  }
  if (auto it = impl.downloads.find(source.sha256); it != impl.downloads.end()) {
    it->second->waiters.push_back(std::move(done));
    return;
  }
  // Leftovers of a killed download go at the first download of a process,
  // not when the store is made: a dry run, which never downloads, must not
  // remove the partial file of a download another process has under way.
  if (!impl.partialsRemoved) {
    impl.removePartials();
    impl.partialsRemoved = true;
  }
  auto download = std::make_unique<Impl::Download>();
  download->source = source;
  download->waiters.push_back(std::move(done));
  impl.downloads.emplace(source.sha256, std::move(download));
  impl.startAttempt(source.sha256);
}

}  // namespace nodewarden::converge
