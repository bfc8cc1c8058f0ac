#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "agent/state/diagnostic.h"

namespace google::protobuf {
class Message;
}

// What the libFuzzer targets in tests/fuzz share.
namespace nodewarden::fuzz {

// Turns the project's logging off: fuzzed input makes every warning fire, and
// printing them would cost more than the code under test.
void silenceLogs();

// The promise of state::toDocument(): the document it rendered of `original`
// loads back to an equal message. Aborts, printing the document and what
// differs, when `errors` (of loading `document` into `reloaded`) are not empty
// or the messages differ.
void requireRoundTrip(const google::protobuf::Message& original, const std::string& document,
                      const std::vector<state::Diagnostic>& errors,
                      const google::protobuf::Message& reloaded);

// Splits an input into the pieces a target needs. Reading past the end gives
// zeros and empty pieces, so that every input means something.
class InputReader final {
 public:
  InputReader(const uint8_t* data, size_t size)
      : rest_(reinterpret_cast<const char*>(data), size) {}

  bool empty() const { return rest_.empty(); }
  uint8_t byte();
  // A piece prefixed with its length, 2 bytes little endian; a length past the
  // end takes what is left.
  std::string_view piece();

 private:
  std::string_view rest_;
};

// Appends `piece` to `input` the way InputReader::piece() reads it back: how
// the seed corpus is written.
void appendPiece(std::string& input, std::string_view piece);

}  // namespace nodewarden::fuzz
