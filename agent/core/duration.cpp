#include "agent/core/duration.h"

#include <array>
#include <cctype>
#include <charconv>
#include <utility>

namespace nodewarden::core {

namespace {

using namespace std::chrono_literals;

constexpr std::array<std::pair<std::string_view, Duration>, 5> kUnits{{
    {"ms", 1ms},
    {"s", 1s},
    {"m", 1min},
    {"h", 1h},
    {"d", 24h},
}};

}  // namespace

Result<Duration> parseDuration(std::string_view text) {
  const std::string quoted = "\"" + std::string(text) + "\"";
  if (text.empty()) return Status::invalidArgument("empty duration");
  Duration total{0};
  while (!text.empty()) {
    uint64_t value = 0;
    auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (error != std::errc() || end == text.data()) {
      return Status::invalidArgument(quoted + " is not a duration (examples: 90s, 5m, 1h30m)");
    }
    text.remove_prefix(static_cast<size_t>(end - text.data()));
    size_t unitLength = 0;
    while (unitLength < text.size() && std::isalpha(static_cast<unsigned char>(text[unitLength]))) {
      ++unitLength;
    }
    const std::string_view unit = text.substr(0, unitLength);
    text.remove_prefix(unitLength);
    bool known = false;
    for (const auto& [name, size] : kUnits) {
      if (unit == name) {
        total += size * value;
        known = true;
      }
    }
    if (!known) {
      return Status::invalidArgument(quoted + ": unit \"" + std::string(unit) +
                                     "\" is not one of ms, s, m, h, d");
    }
  }
  return total;
}

std::string formatDuration(Duration duration) {
  if (duration == Duration::zero()) return "0s";
  std::string text;
  for (auto it = kUnits.rbegin(); it != kUnits.rend(); ++it) {
    const auto count = duration / it->second;
    if (count == 0) continue;
    text += std::to_string(count) + std::string(it->first);
    duration -= it->second * count;
  }
  return text.empty() ? "0s" : text;
}

Result<Duration> parsePositiveDuration(std::string_view text) {
  auto parsed = parseDuration(text);
  if (!parsed) return parsed.status();
  if (*parsed <= Duration::zero()) return Status::invalidArgument("must be longer than 0");
  return parsed;
}

}  // namespace nodewarden::core
