#include "agent/fleet/spool.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <memory>
#include <optional>
#include <string_view>
#include <utility>

#include "agent/core/atomic_file.h"
#include "agent/core/log.h"
#include "nodewarden/v1/control.pb.h"

// On-disk layout: one file per message, named by its zero-padded sequence
// ("00000000000000000042.msg"), written with core::writeFileAtomic. One file
// each, rather than an append-only log, because every operation the spool
// needs then is one the filesystem already makes atomic: an append is one
// atomic write, an acknowledgement or a drop is unlinking the oldest files, a
// corrupt file spoils only its own message, and there is no log to compact.
// The cost, an fsync of the file and of the directory per message, is small at
// the rate an agent reports.
//
// A file is "NWS1", the CRC-32 of the rest (little endian), and the
// serialized AgentMessage: protobuf parses most damaged bytes without
// complaint, the checksum does not.
//
// The Dropped record is a file of its own, "<sequence>.dropped", and always
// the oldest: drops take the oldest messages, the record among them, and the
// new record takes the sequence of the newest message it replaces. That
// number is free (the message is gone), below every message left and above
// every acknowledged one, so the stream stays in order. Should the server
// have stored that message already, it stored all before it too, nothing was
// lost, and it ignores the record as a duplicate (had it stored only some of
// the dropped messages, those are counted too). The record is written before
// the messages it counts are unlinked; after a crash in between, open() finds
// messages older than the record and removes them, as they are counted.
//
// A message file that cannot be read stays where it is and goes out as a
// Dropped message with count 1 at its own sequence, until acknowledged.
//
// Sequence numbers are never reused: the next one follows the newest file's,
// or, with the spool empty, the floor file's ("last-sequence"), which an
// acknowledgement writes before it empties the spool.

namespace nodewarden::fleet {

namespace {

const auto kLog = core::log::category("fleet");

constexpr std::string_view kMagic = "NWS1";
constexpr size_t kHeaderBytes = kMagic.size() + 4;
constexpr std::string_view kMessageSuffix = ".msg";
constexpr std::string_view kDroppedSuffix = ".dropped";
constexpr char kFloorFile[] = "last-sequence";
// Far above any count an agent reaches, and within what the server stores
// (signed 64 bits): a number past it can only come from a damaged file.
constexpr uint64_t kMaxSequence = uint64_t{1} << 62;
constexpr mode_t kFileMode = 0600;
constexpr mode_t kDirectoryMode = 0700;

constexpr std::array<uint32_t, 256> kCrcTable = [] {
  std::array<uint32_t, 256> table{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int bit = 0; bit < 8; ++bit) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
    table[i] = c;
  }
  return table;
}();

// CRC-32 as zlib and Ethernet compute it.
uint32_t crc32(std::string_view data) {
  uint32_t c = 0xFFFFFFFFu;
  for (unsigned char byte : data) c = kCrcTable[(c ^ byte) & 0xFF] ^ (c >> 8);
  return c ^ 0xFFFFFFFFu;
}

std::string encode(const v1::AgentMessage& message) {
  std::string payload;
  if (!message.SerializeToString(&payload)) return {};
  return spoolRecord(payload);
}

core::Result<v1::AgentMessage> decode(std::string_view data) {
  if (data.size() < kHeaderBytes || data.substr(0, kMagic.size()) != kMagic) {
    return core::Status::invalidArgument("not a spooled message");
  }
  uint32_t crc = 0;
  for (size_t i = 0; i < 4; ++i) {
    crc |= static_cast<uint32_t>(static_cast<unsigned char>(data[kMagic.size() + i])) << (8 * i);
  }
  const std::string_view payload = data.substr(kHeaderBytes);
  if (crc32(payload) != crc) return core::Status::invalidArgument("checksum mismatch");
  v1::AgentMessage message;
  if (!message.ParseFromArray(payload.data(), static_cast<int>(payload.size()))) {
    return core::Status::invalidArgument("cannot parse the message");
  }
  return message;
}

v1::AgentMessage droppedMessage(uint64_t sequence, uint64_t count) {
  v1::AgentMessage message;
  message.set_sequence(sequence);
  message.mutable_dropped()->set_count(count);
  return message;
}

// What the Dropped record takes on disk at most, kept free beside the newest
// message so that a drop never has to remove it.
size_t droppedRecordReserve() {
  static const size_t bytes = encode(droppedMessage(std::numeric_limits<uint64_t>::max(),
                                                    std::numeric_limits<uint64_t>::max()))
                                  .size();
  return bytes;
}

std::string fileName(uint64_t sequence, std::string_view suffix) {
  char digits[24];
  std::snprintf(digits, sizeof(digits), "%020" PRIu64, sequence);
  return std::string(digits) + std::string(suffix);
}

struct ParsedName {
  uint64_t sequence = 0;
  bool dropped = false;
};

std::optional<ParsedName> parseName(std::string_view name) {
  ParsedName parsed;
  if (name.ends_with(kMessageSuffix)) {
    name.remove_suffix(kMessageSuffix.size());
  } else if (name.ends_with(kDroppedSuffix)) {
    name.remove_suffix(kDroppedSuffix.size());
    parsed.dropped = true;
  } else {
    return std::nullopt;
  }
  if (name.empty() ||
      !std::all_of(name.begin(), name.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return std::nullopt;
  }
  auto [end, error] = std::from_chars(name.data(), name.data() + name.size(), parsed.sequence);
  if (error != std::errc() || end != name.data() + name.size() || parsed.sequence == 0 ||
      parsed.sequence > kMaxSequence) {
    return std::nullopt;
  }
  return parsed;
}

struct DirCloser {
  void operator()(DIR* dir) const { ::closedir(dir); }
};

core::Status makeDirectory(const std::string& directory) {
  const std::filesystem::path path(directory);
  std::error_code error;
  if (path.has_parent_path()) std::filesystem::create_directories(path.parent_path(), error);
  if (error)
    return core::Status::internal("create " + path.parent_path().string() + ": " + error.message());
  if (::mkdir(directory.c_str(), kDirectoryMode) < 0 && errno != EEXIST) {
    return core::Status::fromErrno(errno, "create " + directory);
  }
  return core::Status::ok();
}

}  // namespace

std::string spoolRecord(std::string_view payload) {
  const uint32_t crc = crc32(payload);
  std::string data(kMagic);
  for (int shift = 0; shift < 32; shift += 8) data.push_back(static_cast<char>(crc >> shift));
  return data.append(payload);
}

Spool::Spool(std::string directory, Limits limits)
    : directory_(std::move(directory)), limits_(limits) {
  limits_.maxMessages = std::max<size_t>(limits_.maxMessages, 2);
}

core::Result<Spool> Spool::open(std::string directory, Limits limits) {
  while (directory.size() > 1 && directory.back() == '/') directory.pop_back();
  if (directory.empty()) return core::Status::invalidArgument("spool directory is empty");
  Spool spool(std::move(directory), limits);
  if (core::Status s = spool.load(); !s) return s.withContext("open spool");
  return spool;
}

std::string Spool::pathOf(const Entry& entry) const {
  return directory_ + "/" +
         fileName(entry.sequence, entry.dropped ? kDroppedSuffix : kMessageSuffix);
}

core::Status Spool::load() {
  if (core::Status s = makeDirectory(directory_); !s) return s;
  std::unique_ptr<DIR, DirCloser> dir(::opendir(directory_.c_str()));
  if (!dir) return core::Status::fromErrno(errno, "open " + directory_);

  bool hasFloor = false;
  std::vector<Entry> found;
  while (true) {
    errno = 0;
    const dirent* item = ::readdir(dir.get());
    if (item == nullptr) break;
    const std::string name = item->d_name;
    const std::string path = directory_ + "/" + name;
    if (name == "." || name == "..") continue;
    if (name == kFloorFile) {
      hasFloor = true;
      continue;
    }
    if (name.starts_with(core::kTemporaryFilePrefix)) {
      // Left by a crash in the middle of an append, which then did not happen.
      ::unlink(path.c_str());
      continue;
    }
    auto parsed = parseName(name);
    struct stat st {};
    if (!parsed || ::fstatat(::dirfd(dir.get()), item->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
        !S_ISREG(st.st_mode)) {
      NW_LOG(kLog, warn, "Unexpected file in the spool: {}, ignoring", path);
      continue;
    }
    found.push_back(Entry{.sequence = parsed->sequence,
                          .bytes = static_cast<uint64_t>(st.st_size),
                          .dropped = parsed->dropped});
  }
  if (errno != 0) return core::Status::fromErrno(errno, "read " + directory_);

  std::sort(found.begin(), found.end(), [](const Entry& a, const Entry& b) {
    return a.sequence != b.sequence ? a.sequence < b.sequence : a.dropped > b.dropped;
  });
  // Finish a drop a crash interrupted: what is older than the newest Dropped
  // record is counted in it, and so is the message its sequence belonged to.
  auto newestRecord =
      std::find_if(found.rbegin(), found.rend(), [](const Entry& entry) { return entry.dropped; });
  if (newestRecord != found.rend()) {
    const auto keepFrom = newestRecord.base() - 1;
    removeFiles(std::vector<Entry>(found.begin(), keepFrom));
    std::vector<Entry> rest(keepFrom, found.end());
    // The message the record replaced sorts right after it.
    if (rest.size() > 1 && rest[1].sequence == rest[0].sequence) {
      removeFiles({rest[1]});
      rest.erase(rest.begin() + 1);
    }
    found = std::move(rest);

    Entry& record = found.front();
    const std::string path = pathOf(record);
    auto data = core::readFile(path, limits_.maxBytes);
    auto message = data ? decode(*data) : core::Result<v1::AgentMessage>(data.status());
    if (message && message->has_dropped() && message->sequence() == record.sequence) {
      record.droppedCount = message->dropped().count();
    } else {
      // It stood for one dropped message at least.
      NW_LOG(kLog, warn,
             "Failed to read the spool's Dropped record {} (counting 1 drop): {}, ignoring", path,
             message ? "not a Dropped message" : message.status().message());
      record.droppedCount = 1;
    }
  }
  for (const Entry& entry : found) {
    entries_.push_back(entry);
    bytes_ += entry.bytes;
  }

  if (hasFloor) {
    const std::string path = directory_ + "/" + kFloorFile;
    auto text = core::readFile(path, 64);
    uint64_t floor = 0;
    std::string_view digits = text ? std::string_view(*text) : std::string_view();
    while (!digits.empty() && (digits.back() == '\n' || digits.back() == ' ')) {
      digits.remove_suffix(1);
    }
    auto [end, error] = std::from_chars(digits.data(), digits.data() + digits.size(), floor);
    if (text && !digits.empty() && error == std::errc() && end == digits.data() + digits.size() &&
        floor <= kMaxSequence) {
      floor_ = floor;
    } else {
      // Without the floor the last number used is unknown. The wall clock in
      // microseconds is above any count an agent reaches, so numbers go on
      // from there rather than repeat ones the server would take as duplicates.
      floor_ = static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                         std::chrono::system_clock::now().time_since_epoch())
                                         .count());
      NW_LOG(kLog, warn, "Failed to read {} (numbering on from {}): {}, ignoring", path, floor_,
             text ? "not a sequence number" : text.status().message());
    }
  }
  lastSequence_ = std::max(floor_, entries_.empty() ? 0 : entries_.back().sequence);
  return core::Status::ok();
}

core::Result<uint64_t> Spool::append(v1::AgentMessage message) {
  switch (message.body_case()) {
    case v1::AgentMessage::kHello:
      return core::Status::invalidArgument("a Hello is sent on each connection, not spooled");
    case v1::AgentMessage::kDropped:
      return core::Status::invalidArgument("the spool makes its own Dropped messages");
    case v1::AgentMessage::BODY_NOT_SET:
      return core::Status::invalidArgument("the message has no body");
    default:
      break;
  }
  const uint64_t sequence = lastSequence_ + 1;
  message.set_sequence(sequence);
  const std::string data = encode(message);
  if (data.empty()) return core::Status::internal("cannot serialize the message");
  if (data.size() + droppedRecordReserve() > limits_.maxBytes) {
    return core::Status::invalidArgument("a message of " + std::to_string(data.size()) +
                                         " bytes does not fit the spool's limit of " +
                                         std::to_string(limits_.maxBytes) + " bytes");
  }
  const Entry entry{.sequence = sequence, .bytes = data.size()};
  if (core::Status s = core::writeFileAtomic(pathOf(entry), data, {.mode = kFileMode}); !s) {
    return s.withContext("spool message " + std::to_string(sequence));
  }
  lastSequence_ = sequence;
  entries_.push_back(entry);
  bytes_ += entry.bytes;
  // The message is stored; being over the limit until the next append is the
  // lesser harm than failing it.
  if (core::Status s = enforceLimits(); !s) {
    NW_LOG(kLog, warn, "Failed to drop the oldest spooled messages: {}, ignoring", s.message());
  }
  return sequence;
}

core::Status Spool::enforceLimits() {
  auto fits = [&](size_t count, uint64_t bytes) {
    return count <= limits_.maxMessages && bytes <= limits_.maxBytes;
  };
  if (fits(entries_.size(), bytes_)) return core::Status::ok();

  size_t count = entries_.size();
  uint64_t bytes = bytes_;
  uint64_t dropped = 0;
  size_t removed = 0;
  std::string record;
  // The newest message always stays: append() made sure it fits.
  while (removed + 1 < entries_.size()) {
    const Entry& oldest = entries_[removed++];
    dropped += oldest.dropped ? oldest.droppedCount : 1;
    --count;
    bytes -= oldest.bytes;
    record = encode(droppedMessage(oldest.sequence, dropped));
    if (fits(count + 1, bytes + record.size())) break;
  }
  if (removed == 0) return core::Status::ok();

  const Entry recordEntry{.sequence = entries_[removed - 1].sequence,
                          .bytes = record.size(),
                          .dropped = true,
                          .droppedCount = dropped};
  if (core::Status s = core::writeFileAtomic(pathOf(recordEntry), record, {.mode = kFileMode});
      !s) {
    return s;
  }
  std::vector<Entry> gone(entries_.begin(), entries_.begin() + static_cast<ptrdiff_t>(removed));
  // A record in the place of the old one has just replaced its file.
  std::erase_if(gone, [&](const Entry& entry) { return pathOf(entry) == pathOf(recordEntry); });
  removeFiles(gone);
  for (size_t i = 0; i < removed; ++i) {
    bytes_ -= entries_.front().bytes;
    entries_.pop_front();
  }
  entries_.push_front(recordEntry);
  bytes_ += recordEntry.bytes;
  return core::Status::ok();
}

std::vector<v1::AgentMessage> Spool::pending(size_t max) const {
  std::vector<v1::AgentMessage> messages;
  for (const Entry& entry : entries_) {
    if (messages.size() >= max) break;
    if (entry.dropped) {
      messages.push_back(droppedMessage(entry.sequence, entry.droppedCount));
      continue;
    }
    const std::string path = pathOf(entry);
    auto data = core::readFile(path, limits_.maxBytes);
    auto message = data ? decode(*data) : core::Result<v1::AgentMessage>(data.status());
    if (message && message->sequence() != entry.sequence) {
      message =
          core::Status::invalidArgument("it holds sequence " + std::to_string(message->sequence()));
    }
    if (!message) {
      NW_LOG(kLog, warn, "Failed to read spooled message {} (counted as dropped): {}, ignoring",
             path, message.status().message());
      messages.push_back(droppedMessage(entry.sequence, 1));
      continue;
    }
    messages.push_back(std::move(*message));
  }
  return messages;
}

core::Status Spool::acknowledge(uint64_t sequence) {
  if (sequence > lastSequence_) {
    return core::Status::invalidArgument("acknowledged sequence " + std::to_string(sequence) +
                                         " is beyond the last one used, " +
                                         std::to_string(lastSequence_));
  }
  const auto end = std::find_if(entries_.begin(), entries_.end(),
                                [&](const Entry& entry) { return entry.sequence > sequence; });
  if (end == entries_.begin()) return core::Status::ok();
  if (end == entries_.end() && floor_ < lastSequence_) {
    // With no file left to tell it, the floor keeps the last number used.
    const std::string path = directory_ + "/" + kFloorFile;
    if (core::Status s =
            core::writeFileAtomic(path, std::to_string(lastSequence_) + "\n", {.mode = kFileMode});
        !s) {
      return s;
    }
    floor_ = lastSequence_;
  }
  const auto count = end - entries_.begin();
  removeFiles(std::vector<Entry>(entries_.begin(), end));
  for (auto i = count; i > 0; --i) {
    bytes_ -= entries_.front().bytes;
    entries_.pop_front();
  }
  return core::Status::ok();
}

// Unlinking needs no directory fsync: a file a crash brings back is either
// sent again, and the server ignores the duplicate, or older than the Dropped
// record, and open() removes it.
void Spool::removeFiles(const std::vector<Entry>& entries) const {
  for (const Entry& entry : entries) {
    const std::string path = pathOf(entry);
    if (::unlink(path.c_str()) < 0 && errno != ENOENT) {
      NW_LOG(kLog, warn, "Failed to delete {}: {}, ignoring", path, std::strerror(errno));
    }
  }
}

}  // namespace nodewarden::fleet
