// ArtifactStore on a fake HTTP client and simulated time: the cache, digest
// checks, retries, and remembered digests.

#include "agent/converge/artifact_store.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/stat.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <optional>
#include <set>

#include "agent/core/atomic_file.h"
#include "agent/core/simulated_clock.h"
#include "agent/core/unique_fd.h"
#include "tests/fakes/fake_http_client.h"
#include "tests/unit/converge/converge_test_support.h"

namespace nodewarden::converge {
namespace {

using namespace std::chrono_literals;
using test::sha256Hex;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

constexpr char kUrl[] = "https://artifacts.example/crictl.tar.gz";

core::Result<core::HttpResponse> unavailable(int status) {
  return core::HttpResponse{.status = status};
}

class ArtifactStoreTest : public ::testing::Test {
 protected:
  ArtifactStoreTest() {
    std::string templ =
        (std::filesystem::temp_directory_path() / "nodewarden-artifacts-XXXXXX").string();
    if (::mkdtemp(templ.data()) == nullptr) ADD_FAILURE() << "mkdtemp";
    dir_ = templ;
    cache_ = dir_ + "/cache";
    store_ = std::make_unique<ArtifactStore>(http_, clock_, cache_, policy());
    // The store remembers digests only of files changed a while before its
    // clock's wall time: put that well after the files the tests write.
    clock_.advance(24h * 365 * 10);
  }
  ~ArtifactStoreTest() override { std::filesystem::remove_all(dir_); }

  static RetryPolicy policy() {
    return RetryPolicy{.attempts = 5, .initialDelay = 1s, .maxDelay = 60s, .jitter = 0.2};
  }

  // Starts a fetch, which must not answer inside the call.
  std::optional<core::Result<std::string>>& start(const ArtifactSource& source) {
    auto& result = results_.emplace_back();
    store_->fetch(source, [&result](core::Result<std::string> r) { result.emplace(std::move(r)); });
    EXPECT_FALSE(result.has_value()) << "fetch() answered inside the call";
    return result;
  }

  // Delivers what the client and the store have queued, at this instant.
  void settle() {
    for (int i = 0; i < 4; ++i) {
      http_.complete();
      clock_.advance(0s);
    }
  }

  core::Result<std::string> fetchNow(const ArtifactSource& source) {
    auto& result = start(source);
    settle();
    if (!result) return core::Status::internal("no answer yet");
    return *result;
  }

  // Advances time in 10 ms steps until a request more than `requests` has
  // been made; returns how long that took.
  core::Duration untilRequest(size_t requests, core::Duration limit = 120s) {
    core::Duration waited{};
    while (http_.requests().size() <= requests && waited < limit) {
      clock_.advance(10ms);
      waited += 10ms;
    }
    return waited;
  }

  std::vector<std::string> cacheEntries() const {
    std::vector<std::string> entries;
    for (const auto& entry : std::filesystem::recursive_directory_iterator(cache_)) {
      entries.push_back(entry.path().string().substr(cache_.size() + 1));
    }
    std::sort(entries.begin(), entries.end());
    return entries;
  }

  ArtifactSource source(const std::string& body, const std::string& url = kUrl) const {
    return ArtifactSource{.url = url, .sha256 = sha256Hex(body)};
  }

  std::string dir_;
  std::string cache_;
  core::FakeHttpClient http_;
  core::SimulatedClock clock_;
  std::unique_ptr<ArtifactStore> store_;
  std::deque<std::optional<core::Result<std::string>>> results_;
};

TEST_F(ArtifactStoreTest, DownloadsVerifiesAndKeepsTheFileByItsDigest) {
  const std::string body = "crictl v1.30";
  http_.respond(kUrl, 200, body);

  auto cached = fetchNow(source(body));

  ASSERT_TRUE(cached) << cached.status().message();
  EXPECT_EQ(*cached, cache_ + "/sha256/" + sha256Hex(body));
  EXPECT_EQ(*core::readFile(*cached, 1024), body);
  EXPECT_THAT(cacheEntries(), ElementsAre("sha256", "sha256/" + sha256Hex(body)));
  ASSERT_EQ(http_.requests().size(), 1u);
  EXPECT_EQ(http_.requests()[0].maxBytes, uint64_t{1} << 30);
  EXPECT_THAT(http_.requests()[0].outputPath, ::testing::StartsWith(cache_ + "/.partial-"));
}

TEST_F(ArtifactStoreTest, ACachedFileIsNotFetchedAgain) {
  const std::string body = "crictl v1.30";
  http_.respond(kUrl, 200, body);
  ASSERT_TRUE(fetchNow(source(body)));
  http_.clearRequests();

  auto& result = start(source(body, "https://elsewhere.example/same-file"));
  clock_.advance(0s);

  ASSERT_TRUE(result.has_value());
  ASSERT_TRUE(*result) << result->status().message();
  EXPECT_EQ(**result, cache_ + "/sha256/" + sha256Hex(body));
  EXPECT_THAT(http_.requests(), IsEmpty());
}

TEST_F(ArtifactStoreTest, AMismatchIsAnErrorNamingBothDigestsAndIsNotRetried) {
  const std::string expected = sha256Hex("the real thing");
  http_.respond(kUrl, 200, "something else");

  auto cached = fetchNow({.url = kUrl, .sha256 = expected});

  ASSERT_FALSE(cached);
  EXPECT_EQ(cached.status().message(), std::string("sha256 mismatch for ") + kUrl + ": expected " +
                                           expected + ", got " + sha256Hex("something else"));
  clock_.advance(10min);
  EXPECT_EQ(http_.requests().size(), 1u);
  EXPECT_THAT(cacheEntries(), ElementsAre("sha256")) << "nothing kept, not even the download";
}

TEST_F(ArtifactStoreTest, RetriesWithGrowingJitteredDelaysUntilTheDownloadSucceeds) {
  const std::string body = "kubelet";
  http_.respondOnce(kUrl, unavailable(503));
  http_.respondOnce(kUrl, core::Status::timeout(std::string("GET ") + kUrl + ": timed out"));
  http_.respondOnce(kUrl, core::Status::internal(std::string("GET ") + kUrl + ": reset"));
  http_.respond(kUrl, 200, body);

  auto& result = start(source(body));
  std::vector<core::Duration> delays;
  for (size_t failed = 1; failed <= 3; ++failed) {
    ASSERT_EQ(http_.complete(), 1u);
    delays.push_back(untilRequest(failed));
  }
  settle();

  ASSERT_TRUE(result.has_value());
  ASSERT_TRUE(*result) << result->status().message();
  EXPECT_EQ(http_.requests().size(), 4u);
  // 1 s, 2 s, 4 s, each within 20 % either way.
  EXPECT_GE(delays[0], 800ms);
  EXPECT_LE(delays[0], 1210ms);
  EXPECT_GE(delays[1], 1600ms);
  EXPECT_LE(delays[1], 2410ms);
  EXPECT_GE(delays[2], 3200ms);
  EXPECT_LE(delays[2], 4810ms);
}

TEST_F(ArtifactStoreTest, JitterSpreadsTheRetriesOfManyDownloads) {
  std::vector<ArtifactSource> sources;
  for (int i = 0; i < 8; ++i) {
    const std::string url = "https://artifacts.example/" + std::to_string(i);
    http_.respondOnce(url, unavailable(502));
    sources.push_back(source("file " + std::to_string(i), url));
    start(sources.back());
  }
  ASSERT_EQ(http_.complete(), 8u);

  // When each download's second attempt starts.
  std::set<core::Duration> delays;
  core::Duration waited{};
  for (size_t seen = 8; seen < 16 && waited < 2s;) {
    clock_.advance(10ms);
    waited += 10ms;
    for (; seen < http_.requests().size(); ++seen) delays.insert(waited);
  }
  EXPECT_EQ(http_.requests().size(), 16u);
  EXPECT_GE(*delays.begin(), 800ms);
  EXPECT_LE(*delays.rbegin(), 1210ms);
  EXPECT_GT(delays.size(), 1u) << "every download retried at the same moment";
}

TEST_F(ArtifactStoreTest, DelaysStopGrowingAtTheMaximum) {
  store_ = std::make_unique<ArtifactStore>(
      http_, clock_, cache_,
      RetryPolicy{.attempts = 5, .initialDelay = 1s, .maxDelay = 3s, .jitter = 0});
  http_.respond(kUrl, unavailable(500));

  auto& result = start(source("x"));
  std::vector<core::Duration> delays;
  for (size_t failed = 1; failed <= 4; ++failed) {
    ASSERT_EQ(http_.complete(), 1u);
    delays.push_back(untilRequest(failed));
  }

  EXPECT_THAT(delays, ElementsAre(1s, 2s, 3s, 3s));
  settle();
  ASSERT_TRUE(result.has_value());
  EXPECT_FALSE(*result);
}

TEST_F(ArtifactStoreTest, GivesUpAfterTheLastAttempt) {
  store_ = std::make_unique<ArtifactStore>(
      http_, clock_, cache_,
      RetryPolicy{.attempts = 3, .initialDelay = 1s, .maxDelay = 60s, .jitter = 0.2});
  http_.respond(kUrl, unavailable(500));

  auto& result = start(source("x"));
  for (int i = 0; i < 3; ++i) {
    http_.complete();
    clock_.advance(5s);
  }
  settle();

  ASSERT_TRUE(result.has_value());
  ASSERT_FALSE(*result);
  EXPECT_EQ(result->status().message(),
            std::string("GET ") + kUrl + ": HTTP 500 (gave up after 3 attempts)");
  EXPECT_EQ(http_.requests().size(), 3u);
  EXPECT_EQ(clock_.armedTimers(), 0u);
  EXPECT_THAT(cacheEntries(), ElementsAre("sha256"));
}

TEST_F(ArtifactStoreTest, ClientErrorsAreFinalButTimeoutsAndThrottlingAreRetried) {
  for (long status : {400, 403, 404}) {
    SCOPED_TRACE(status);
    http_.clearRequests();
    const std::string url = "https://artifacts.example/" + std::to_string(status);
    http_.respond(url, status, "no");
    auto cached = fetchNow(source("x", url));
    ASSERT_FALSE(cached);
    EXPECT_EQ(cached.status().message(), "GET " + url + ": HTTP " + std::to_string(status));
    clock_.advance(10min);
    EXPECT_EQ(http_.requests().size(), 1u);
  }
  for (long status : {408, 429}) {
    SCOPED_TRACE(status);
    http_.clearRequests();
    const std::string url = "https://artifacts.example/" + std::to_string(status);
    http_.respondOnce(url, unavailable(status));
    http_.respond(url, 200, "y" + std::to_string(status));
    auto& result = start(source("y" + std::to_string(status), url));
    http_.complete();
    clock_.advance(2s);
    settle();
    ASSERT_TRUE(result.has_value());
    EXPECT_TRUE(*result) << result->status().message();
    EXPECT_EQ(http_.requests().size(), 2u);
  }
}

TEST_F(ArtifactStoreTest, ABodyOverTheLimitIsRefusedWithoutRetrying) {
  http_.respond(kUrl, 200, std::string(2048, 'z'));
  ArtifactSource big = source(std::string(2048, 'z'));
  big.maxBytes = 1024;
  big.caFile = "/etc/nodewarden/artifacts-ca.pem";

  auto cached = fetchNow(big);

  ASSERT_FALSE(cached);
  EXPECT_THAT(cached.status().message(), HasSubstr("the body exceeds 1024 bytes"));
  clock_.advance(10min);
  ASSERT_EQ(http_.requests().size(), 1u);
  EXPECT_EQ(http_.requests()[0].maxBytes, 1024u);
  EXPECT_EQ(http_.requests()[0].caFile, "/etc/nodewarden/artifacts-ca.pem");
  EXPECT_THAT(cacheEntries(), ElementsAre("sha256"));
}

TEST_F(ArtifactStoreTest, FetchesOfTheSameDigestShareOneDownload) {
  http_.respond(kUrl, 200, "shared");

  auto& first = start(source("shared"));
  auto& second = start(source("shared"));
  settle();

  EXPECT_EQ(http_.requests().size(), 1u);
  ASSERT_TRUE(first.has_value() && second.has_value());
  ASSERT_TRUE(*first);
  EXPECT_EQ(**first, **second);
}

TEST_F(ArtifactStoreTest, AnInvalidDigestIsRefusedBeforeAnyRequest) {
  auto cached = fetchNow({.url = kUrl, .sha256 = "ABC"});
  ASSERT_FALSE(cached);
  EXPECT_THAT(cached.status().message(), HasSubstr("is not 64 lowercase hex digits"));
  EXPECT_THAT(http_.requests(), IsEmpty());
}

// Not when the store is made: a dry run makes one too, and must not remove
// the partial file of a download another process has under way.
TEST_F(ArtifactStoreTest, TheFirstDownloadRemovesPartialDownloadsLeftBehind) {
  std::filesystem::create_directories(cache_);
  ASSERT_TRUE(core::writeFileAtomic(cache_ + "/.partial-abc.123", "half", {}));
  store_ = std::make_unique<ArtifactStore>(http_, clock_, cache_);
  EXPECT_THAT(cacheEntries(), ElementsAre(".partial-abc.123"));

  const std::string body = "crictl v1.30";
  http_.respond(kUrl, 200, body);
  ASSERT_TRUE(fetchNow(source(body)));

  EXPECT_THAT(cacheEntries(), ElementsAre("sha256", "sha256/" + sha256Hex(body)));
}

TEST_F(ArtifactStoreTest, ADamagedCacheEntryIsDownloadedAgain) {
  const std::string body = "crictl v1.30";
  http_.respond(kUrl, 200, body);
  auto cached = fetchNow(source(body));
  ASSERT_TRUE(cached);
  ASSERT_TRUE(core::writeFileAtomic(*cached, "crictl v1.3", {}));  // truncated on disk

  auto again = fetchNow(source(body));

  ASSERT_TRUE(again) << again.status().message();
  EXPECT_EQ(*core::readFile(*again, 1024), body);
  EXPECT_EQ(http_.requests().size(), 2u);
}

TEST_F(ArtifactStoreTest, DestroyingTheStoreAbandonsItsDownloads) {
  http_.respond(kUrl, 200, "late");
  auto& result = start(source("late"));
  ASSERT_EQ(http_.pending(), 1u);
  const std::string partial = http_.requests()[0].outputPath;
  store_.reset();

  http_.complete();
  clock_.advance(1min);

  EXPECT_FALSE(result.has_value());
  EXPECT_FALSE(std::filesystem::exists(cache_ + "/sha256/" + sha256Hex("late")));
}

TEST_F(ArtifactStoreTest, DigestOfHashesAFileOnceWhileItIsUnchanged) {
  const std::string path = dir_ + "/kubelet";
  ASSERT_TRUE(core::writeFileAtomic(path, "binary v1", {}));

  EXPECT_EQ(*store_->digestOf(path), sha256Hex("binary v1"));
  EXPECT_EQ(*store_->digestOf(path), sha256Hex("binary v1"));
  EXPECT_EQ(store_->filesHashed(), 1u);

  // Remembered across runs.
  ArtifactStore next(http_, clock_, cache_);
  EXPECT_EQ(*next.digestOf(path), sha256Hex("binary v1"));
  EXPECT_EQ(next.filesHashed(), 0u);

  // A new file at the path (same size) is hashed again.
  ASSERT_TRUE(core::writeFileAtomic(path, "binary v2", {}));
  EXPECT_EQ(*next.digestOf(path), sha256Hex("binary v2"));
  EXPECT_EQ(next.filesHashed(), 1u);
}

TEST_F(ArtifactStoreTest, DigestOfSeesAnInPlaceRewrite) {
  const std::string path = dir_ + "/kubelet";
  ASSERT_TRUE(core::writeFileAtomic(path, "binary v1", {}));
  ASSERT_EQ(*store_->digestOf(path), sha256Hex("binary v1"));
  // Same inode, same size, and the old mtime put back: only ctime moves.
  struct stat before {};
  ASSERT_EQ(::stat(path.c_str(), &before), 0);
  {
    core::UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
    ASSERT_EQ(::pwrite(fd.get(), "X", 1, 0), 1);
    const timespec times[2] = {before.st_atim, before.st_mtim};
    ASSERT_EQ(::futimens(fd.get(), times), 0);
  }

  EXPECT_EQ(*store_->digestOf(path), sha256Hex("Xinary v1"));
  EXPECT_EQ(store_->filesHashed(), 2u);
}

TEST_F(ArtifactStoreTest, DigestOfDoesNotRememberAFileChangedJustNow) {
  const std::string path = dir_ + "/kubelet";
  ASSERT_TRUE(core::writeFileAtomic(path, "binary v1", {}));
  // Modified "now" as the store's clock tells it.
  const auto now = clock_.wallNow().time_since_epoch();
  const auto seconds = std::chrono::duration_cast<std::chrono::seconds>(now);
  const timespec times[2] = {{seconds.count(), 0}, {seconds.count(), 0}};
  ASSERT_EQ(::utimensat(AT_FDCWD, path.c_str(), times, 0), 0);

  EXPECT_EQ(*store_->digestOf(path), sha256Hex("binary v1"));
  EXPECT_EQ(*store_->digestOf(path), sha256Hex("binary v1"));
  EXPECT_EQ(store_->filesHashed(), 2u);
}

TEST_F(ArtifactStoreTest, DigestOfAMissingFileIsAnError) {
  auto digest = store_->digestOf(dir_ + "/missing");
  ASSERT_FALSE(digest);
  EXPECT_THAT(digest.status().message(), HasSubstr(dir_ + "/missing"));
}

}  // namespace
}  // namespace nodewarden::converge
