#include "tests/fuzz/fuzz_support.h"

#include <google/protobuf/message.h>
#include <google/protobuf/util/message_differencer.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>

#include "agent/core/log.h"

namespace nodewarden::fuzz {

void silenceLogs() { core::log::setUp(core::log::Destination::kConsole, spdlog::level::off); }

void requireRoundTrip(const google::protobuf::Message& original, const std::string& document,
                      const std::vector<state::Diagnostic>& errors,
                      const google::protobuf::Message& reloaded) {
  if (!errors.empty()) {
    std::fprintf(stderr, "The rendered %s does not load back:\n%s\n",
                 original.GetTypeName().c_str(), document.c_str());
    for (const auto& error : errors) std::fprintf(stderr, "  %s\n", error.toString().c_str());
    std::abort();
  }
  std::string differences;
  bool equal = false;
  {
    // The report is complete once the differencer is gone.
    google::protobuf::util::MessageDifferencer differencer;
    differencer.ReportDifferencesToString(&differences);
    equal = differencer.Compare(original, reloaded);
  }
  if (!equal) {
    std::fprintf(stderr, "The rendered %s loads back different:\n%s\nDifferences:\n%s\n",
                 original.GetTypeName().c_str(), document.c_str(), differences.c_str());
    std::abort();
  }
}

uint8_t InputReader::byte() {
  if (rest_.empty()) return 0;
  const auto value = static_cast<uint8_t>(rest_.front());
  rest_.remove_prefix(1);
  return value;
}

std::string_view InputReader::piece() {
  const size_t low = byte();
  const size_t size = std::min(low | size_t{byte()} << 8, rest_.size());
  const std::string_view piece = rest_.substr(0, size);
  rest_.remove_prefix(size);
  return piece;
}

void appendPiece(std::string& input, std::string_view piece) {
  const size_t size = std::min<size_t>(piece.size(), 0xFFFF);
  input.push_back(static_cast<char>(size & 0xFF));
  input.push_back(static_cast<char>(size >> 8));
  input.append(piece.substr(0, size));
}

}  // namespace nodewarden::fuzz
