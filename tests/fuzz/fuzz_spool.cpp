// The agent's report spool opening a directory left in any state: damaged,
// truncated or foreign files, stray Dropped records, a garbled floor file. It
// must open, list what it holds in order, and go on numbering and storing
// messages without ever reusing a sequence.
//
// An input is a series of files (at most kMaxFiles), each a flags byte, a
// sequence byte and a piece (fuzz::InputReader) for the content. The flags'
// low two bits say which file it is (a message "<seq>.msg", a Dropped record
// "<seq>.dropped", the floor file, a temporary file an append left), and bit 2
// puts spool.cpp's header ("NWS1" and the CRC-32 of the rest) in front of the
// content, so that the fuzzer reaches the message parser rather than stopping
// at the checksum.

#include <fcntl.h>
#include <unistd.h>

#include <cinttypes>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <limits>
#include <string>
#include <string_view>
#include <system_error>

#include "agent/core/atomic_file.h"
#include "agent/fleet/spool.h"
#include "nodewarden/v1/control.pb.h"
#include "tests/fuzz/fuzz_support.h"

using namespace nodewarden;

namespace {

constexpr int kMaxFiles = 16;
// Small, so that an append has to drop messages now and then.
constexpr fleet::Spool::Limits kLimits{.maxMessages = 4, .maxBytes = 16 << 10};

std::filesystem::path spoolDirectory;

[[noreturn]] void fail(const std::string& what) {
  std::fprintf(stderr, "%s\n", what.c_str());
  std::abort();
}

std::string fileName(uint8_t flags, uint8_t sequence) {
  char digits[24];
  std::snprintf(digits, sizeof(digits), "%020" PRIu8, sequence);
  switch (flags & 3) {
    case 0:
      return std::string(digits) + ".msg";
    case 1:
      return std::string(digits) + ".dropped";
    case 2:
      return "last-sequence";
    default:
      return std::string(core::kTemporaryFilePrefix) + digits;
  }
}

void writeFile(const std::filesystem::path& path, std::string_view content) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  const bool written = fd >= 0 && ::write(fd, content.data(), content.size()) ==
                                      static_cast<ssize_t>(content.size());
  if (fd >= 0) ::close(fd);
  if (!written) fail("write " + path.string());
}

void removeSpool() {
  std::error_code error;
  std::filesystem::remove_all(spoolDirectory, error);
  if (error) fail("remove " + spoolDirectory.string() + ": " + error.message());
}

fleet::Spool openSpool() {
  auto spool = fleet::Spool::open(spoolDirectory.string(), kLimits);
  // Whatever a crash or a bad disk left, the agent must still start.
  if (!spool) fail("Spool::open: " + spool.status().message());
  return std::move(*spool);
}

// Every message waiting, oldest first, numbered and never above the last
// sequence used.
void checkPending(const fleet::Spool& spool) {
  const auto pending = spool.pending(std::numeric_limits<size_t>::max());
  if (pending.size() != spool.size()) {
    fail("pending() gave " + std::to_string(pending.size()) + " of " +
         std::to_string(spool.size()) + " messages");
  }
  uint64_t previous = 0;
  for (const v1::AgentMessage& message : pending) {
    if (message.sequence() <= previous || message.sequence() > spool.lastSequence()) {
      fail("pending() gave sequence " + std::to_string(message.sequence()) + " after " +
           std::to_string(previous) + ", last " + std::to_string(spool.lastSequence()));
    }
    previous = message.sequence();
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  fuzz::silenceLogs();
  char base[] = "/dev/shm/nodewarden-fuzz-spool-XXXXXX";
  if (::mkdtemp(base) == nullptr) {
    std::perror("mkdtemp");
    std::abort();
  }
  spoolDirectory = std::filesystem::path(base) / "spool";
  std::atexit([] {
    std::error_code error;
    std::filesystem::remove_all(spoolDirectory.parent_path(), error);
  });
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  removeSpool();
  if (std::error_code error; !std::filesystem::create_directory(spoolDirectory, error)) {
    fail("create " + spoolDirectory.string() + ": " + error.message());
  }
  fuzz::InputReader input(data, size);
  for (int i = 0; i < kMaxFiles && !input.empty(); ++i) {
    const uint8_t flags = input.byte();
    const uint8_t sequence = input.byte();
    const std::string_view content = input.piece();
    writeFile(spoolDirectory / fileName(flags, sequence),
              (flags & 4) ? fleet::spoolRecord(content) : std::string(content));
  }

  fleet::Spool spool = openSpool();
  checkPending(spool);

  v1::AgentMessage message;
  message.mutable_usage()->set_cpu_percent(50);
  const uint64_t last = spool.lastSequence();
  auto appended = spool.append(message);
  if (!appended) fail("append: " + appended.status().message());
  if (*appended != last + 1 || *appended == 0 || spool.lastSequence() != *appended) {
    fail("append numbered " + std::to_string(*appended) + " after " + std::to_string(last));
  }
  checkPending(spool);
  if (spool.pending(std::numeric_limits<size_t>::max()).back().sequence() != *appended) {
    fail("the appended message is not the newest pending");
  }

  if (core::Status s = spool.acknowledge(*appended); !s) fail("acknowledge: " + s.message());
  if (spool.size() != 0) fail("messages left after acknowledging the last");
  // Numbers are never reused, even with the spool empty after a restart.
  if (fleet::Spool reopened = openSpool(); reopened.lastSequence() < *appended) {
    fail("reopened at sequence " + std::to_string(reopened.lastSequence()) + ", below " +
         std::to_string(*appended));
  }
  removeSpool();
  return 0;
}
