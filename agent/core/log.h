#pragma once

#include <spdlog/spdlog.h>

#include <memory>
#include <string>

// Logs through `logger` at `lvl` (trace, debug, info, warn, err, critical)
// with the caller's source location, which the journal keeps as CODE_FILE,
// CODE_LINE and CODE_FUNC. Formats nothing when the level is off:
//   NW_LOG(log, info, "Converged in {} ms", ms);
#define NW_LOG(logger, lvl, ...) SPDLOG_LOGGER_CALL((logger), spdlog::level::lvl, __VA_ARGS__)

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
