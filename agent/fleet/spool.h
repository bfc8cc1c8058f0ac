#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <string>
#include <string_view>
#include <vector>

#include "agent/core/status.h"

namespace nodewarden::v1 {
class AgentMessage;
}

namespace nodewarden::fleet {

// A spool file's bytes for a serialized message: "NWS1", the CRC-32 of the
// payload (little-endian), the payload.
std::string spoolRecord(std::string_view payload);

// The agent's outbox: messages for the control plane that the server has not
// acknowledged yet, kept on disk so that they survive restarts and outages and
// are sent, in order, on the next connection. Numbers every message with a
// sequence that is never reused, even across restarts with an empty spool.
// Bounded: past a limit the oldest messages give way, and one Dropped message,
// sent and acknowledged like any other, tells the server how many.
//
// Not thread-safe; lives on the loop thread.
class Spool final {
 public:
  struct Limits {
    // At least 2: the newest message and the Dropped record always fit.
    size_t maxMessages = 10000;
    // Bytes on disk, headers included. A message that cannot fit beside a
    // Dropped record is refused.
    size_t maxBytes = size_t{64} << 20;
  };

  // Opens the spool in `directory`, creating it (0700) when missing, and
  // finishes what a crash interrupted.
  static core::Result<Spool> open(std::string directory, Limits limits);

  // Numbers `message` with the next sequence, stores it durably and returns
  // the sequence. Hello and Dropped messages are not spooled. Over a limit,
  // the oldest messages are dropped.
  core::Result<uint64_t> append(v1::AgentMessage message);

  // Up to `max` unacknowledged messages, oldest first. After drops the first
  // is a Dropped message with the count. A file that cannot be read is
  // logged and stands as a Dropped message with count 1 at its own sequence,
  // so the loss is counted once, when the server acknowledges it.
  std::vector<v1::AgentMessage> pending(size_t max) const;

  // Forgets every message up to and including `sequence`, which the server
  // stored. A sequence beyond lastSequence() is refused: the server must be
  // confused about who this node is, and nothing changes.
  core::Status acknowledge(uint64_t sequence);

  // The sequence the last appended message got; 0 before the first.
  uint64_t lastSequence() const { return lastSequence_; }
  // Messages waiting, the Dropped record included.
  size_t size() const { return entries_.size(); }

 private:
  // One spooled message; its content stays on disk.
  struct Entry {
    uint64_t sequence = 0;
    uint64_t bytes = 0;    // of its file
    bool dropped = false;  // the Dropped record; its count is here, not read again
    uint64_t droppedCount = 0;
  };

  Spool(std::string directory, Limits limits);

  core::Status load();
  std::string pathOf(const Entry& entry) const;
  // Drops the oldest entries while over a limit.
  core::Status enforceLimits();
  void removeFiles(const std::vector<Entry>& entries) const;

  std::string directory_;
  Limits limits_;
  std::deque<Entry> entries_;  // in sequence order
  uint64_t bytes_ = 0;         // of all entries
  uint64_t lastSequence_ = 0;
  uint64_t floor_ = 0;  // what the floor file holds
};

}  // namespace nodewarden::fleet
