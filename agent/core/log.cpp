#include "agent/core/log.h"

#include <sys/stat.h>
#include <syslog.h>
// The location sd_journal_send() would add is this file's; each entry gets
// the location of the code that logged instead.
#define SD_JOURNAL_SUPPRESS_LOCATION
#include <systemd/sd-journal.h>

#include <cstdio>
#include <cstdlib>
#include <mutex>

#include <spdlog/sinks/base_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>

namespace nodewarden::core::log {

namespace {

int syslogPriority(spdlog::level::level_enum level) {
  switch (level) {
    case spdlog::level::trace:
    case spdlog::level::debug:
      return LOG_DEBUG;
    case spdlog::level::info:
      return LOG_INFO;
    case spdlog::level::warn:
      return LOG_WARNING;
    case spdlog::level::err:
      return LOG_ERR;
    case spdlog::level::critical:
      return LOG_CRIT;
    default:
      return LOG_INFO;
  }
}

// Writes each message as a structured journal entry: the message, its
// priority, the category as NODEWARDEN_CATEGORY and the source location.
class JournalSink final : public spdlog::sinks::base_sink<spdlog::details::null_mutex> {
 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    const std::string_view text(msg.payload.data(), msg.payload.size());
    const std::string_view category(msg.logger_name.data(), msg.logger_name.size());
    if (msg.source.empty()) {
      sd_journal_send("MESSAGE=%.*s", static_cast<int>(text.size()), text.data(), "PRIORITY=%d",
                      syslogPriority(msg.level), "NODEWARDEN_CATEGORY=%.*s",
                      static_cast<int>(category.size()), category.data(), nullptr);
    } else {
      sd_journal_send("MESSAGE=%.*s", static_cast<int>(text.size()), text.data(), "PRIORITY=%d",
                      syslogPriority(msg.level), "NODEWARDEN_CATEGORY=%.*s",
                      static_cast<int>(category.size()), category.data(), "CODE_FILE=%s",
                      msg.source.filename, "CODE_LINE=%d", msg.source.line, "CODE_FUNC=%s",
                      msg.source.funcname, nullptr);
    }
  }
  void flush_() override {}
};

struct Settings {
  std::mutex mutex;
  spdlog::sink_ptr sink;
  spdlog::level::level_enum level = spdlog::level::info;
};

Settings& settings() {
  static Settings instance;
  return instance;
}

spdlog::sink_ptr consoleSink() {
  auto sink = std::make_shared<spdlog::sinks::stderr_color_sink_st>();
  sink->set_pattern("%^%l%$ [%n] %v");
  return sink;
}

}  // namespace

bool stderrIsJournal() {
  const char* stream = std::getenv("JOURNAL_STREAM");
  if (stream == nullptr) return false;
  unsigned long long device = 0, inode = 0;
  if (std::sscanf(stream, "%llu:%llu", &device, &inode) != 2) return false;
  struct stat st;
  if (::fstat(STDERR_FILENO, &st) < 0) return false;
  return st.st_dev == device && st.st_ino == inode;
}

void setUp(Destination destination, spdlog::level::level_enum level) {
  Settings& s = settings();
  std::lock_guard lock(s.mutex);
  bool journal = destination == Destination::kJournal ||
                 (destination == Destination::kAuto && stderrIsJournal());
  s.sink = journal ? spdlog::sink_ptr(std::make_shared<JournalSink>()) : consoleSink();
  s.level = level;
  spdlog::apply_all([&](std::shared_ptr<spdlog::logger> logger) {
    logger->sinks() = {s.sink};
    logger->set_level(level);
  });
}

std::shared_ptr<spdlog::logger> category(const std::string& name) {
  if (auto existing = spdlog::get(name)) return existing;
  Settings& s = settings();
  std::lock_guard lock(s.mutex);
  if (auto existing = spdlog::get(name)) return existing;
  if (!s.sink) s.sink = consoleSink();
  auto logger = std::make_shared<spdlog::logger>(name, s.sink);
  logger->set_level(s.level);
  spdlog::register_logger(logger);
  return logger;
}

}  // namespace nodewarden::core::log
