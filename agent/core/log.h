#pragma once

#include <spdlog/spdlog.h>

#include <memory>
#include <string>

namespace nodewarden::core::log {

enum class Destination {
  kAuto,  // the journal when stderr is connected to it, the console otherwise
  kJournal,
  kConsole,
};

// Sets up logging once, early in main(). Every category logger created after
// this writes to the chosen destination at the chosen level.
void setUp(Destination destination, spdlog::level::level_enum level);

// The logger of one category ("converge", "systemd", ...). Cheap to call; keep
// the result in a static when called on a hot path. A disabled level costs one
// comparison and formats nothing.
std::shared_ptr<spdlog::logger> category(const std::string& name);

// True when systemd connected stderr to the journal (JOURNAL_STREAM matches).
bool stderrIsJournal();

}  // namespace nodewarden::core::log
