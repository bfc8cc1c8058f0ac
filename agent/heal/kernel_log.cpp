#include "agent/heal/kernel_log.h"

#include <cstdint>
#include <limits>
#include <utility>

#include "agent/core/log.h"

namespace nodewarden::heal {

namespace {

const auto kLog = core::log::category("heal");

// Entries read in one go; a flood of kernel messages is read in slices, so
// the loop keeps serving everything else in between.
constexpr size_t kMaxEntriesPerWake = 1024;

std::string_view trimmed(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\n' || text.back() == '\r')) {
    text.remove_suffix(1);
  }
  return text;
}

// The value of `key` ("constraint=") in the comma-separated fields of an
// oom-kill line, up to `next` (the field that follows it) or the next comma.
// Cgroup paths and command names may hold commas themselves: where the field
// that follows is known, it ends the value.
std::string_view fieldValue(std::string_view fields, std::string_view key,
                            std::string_view next = {}) {
  size_t at = 0;
  while (true) {
    at = fields.find(key, at);
    if (at == std::string_view::npos) return {};
    if (at == 0 || fields[at - 1] == ',') break;
    at += key.size();
  }
  const size_t start = at + key.size();
  size_t end = next.empty() ? std::string_view::npos : fields.find(next, start);
  if (end == std::string_view::npos) end = fields.find(',', start);
  return fields.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start);
}

std::string causeOf(std::string_view constraint, std::string_view limitedCgroup) {
  if (constraint == "CONSTRAINT_MEMCG") {
    return "the memory limit of " + std::string(limitedCgroup) + " was reached";
  }
  if (constraint == "CONSTRAINT_NONE") return "the node ran out of memory";
  if (constraint == "CONSTRAINT_CPUSET") return "the memory of its cpuset ran out";
  if (constraint == "CONSTRAINT_MEMORY_POLICY") return "the memory its policy allows ran out";
  return "memory ran out";
}

}  // namespace

std::string OomKill::describe() const {
  std::string who = task.empty() ? "a process" : task;
  if (!pid.empty()) who += " (pid " + pid + ")";
  return who + " killed by the kernel's OOM killer: " + cause;
}

std::string unitOfCgroup(std::string_view path) {
  while (!path.empty()) {
    const size_t slash = path.find('/');
    std::string_view component = path.substr(0, slash);
    path.remove_prefix(slash == std::string_view::npos ? path.size() : slash + 1);
    if (component.empty()) continue;
    // Pods' cgroups, whichever cgroup driver made them.
    if (component.starts_with("kubepods")) return {};
    if (component.ends_with(".slice")) continue;
    // systemd prefixes with "_" a unit's cgroup whose name could be taken for
    // a kernel attribute ("cpu.service"); the unit's name is without it.
    if (component.starts_with('_')) component.remove_prefix(1);
    if (component.ends_with(".service") || component.ends_with(".scope")) {
      return std::string(component);
    }
    return {};
  }
  return {};
}

std::optional<OomKill> parseOomKill(std::string_view message) {
  std::string_view line = trimmed(message);
  // As dmesg prints it: "[ 1234.567890] oom-kill:...". The journal has no stamp.
  if (line.starts_with('[')) {
    if (const size_t close = line.find("] "); close != std::string_view::npos) {
      line = trimmed(line.substr(close + 2));
    }
  }

  constexpr std::string_view kOomKill = "oom-kill:";
  if (line.starts_with(kOomKill)) {
    const std::string_view fields = line.substr(kOomKill.size());
    const std::string_view taskCgroup = fieldValue(fields, "task_memcg=", ",task=");
    OomKill kill;
    kill.unit = unitOfCgroup(taskCgroup);
    if (kill.unit.empty()) return std::nullopt;
    kill.cgroup = std::string(taskCgroup);
    // The command name may hold anything, commas too: it ends at the last
    // ",pid=", which ends at the next comma.
    constexpr std::string_view kTask = ",task=";
    constexpr std::string_view kPid = ",pid=";
    const size_t taskAt = fields.find(kTask);
    const size_t pidAt = fields.rfind(kPid);
    if (taskAt != std::string_view::npos && pidAt != std::string_view::npos &&
        pidAt >= taskAt + kTask.size()) {
      kill.task = std::string(fields.substr(taskAt + kTask.size(), pidAt - taskAt - kTask.size()));
      kill.pid = std::string(fieldValue(fields.substr(pidAt + 1), "pid="));
    }
    std::string_view limited = fieldValue(fields, "oom_memcg=", ",task_memcg=");
    if (limited.empty()) limited = taskCgroup;
    kill.cause = causeOf(fieldValue(fields, "constraint="), limited);
    return kill;
  }

  // Kernels before 4.19, memory cgroups only; the pid and command name follow
  // on other lines, which name no cgroup.
  constexpr std::string_view kTaskIn = "Task in ";
  constexpr std::string_view kLimit = " killed as a result of limit of ";
  if (line.starts_with(kTaskIn)) {
    const size_t at = line.find(kLimit);
    if (at == std::string_view::npos) return std::nullopt;
    const std::string_view taskCgroup = line.substr(kTaskIn.size(), at - kTaskIn.size());
    OomKill kill;
    kill.unit = unitOfCgroup(taskCgroup);
    if (kill.unit.empty()) return std::nullopt;
    kill.cgroup = std::string(taskCgroup);
    kill.cause = causeOf("CONSTRAINT_MEMCG", trimmed(line.substr(at + kLimit.size())));
    return kill;
  }
  return std::nullopt;
}

KernelLog::KernelLog(core::Loop& loop, Callback onOomKill)
    : loop_(loop),
      clock_(loop),
      onOomKill_(std::move(onOomKill)),
      timer_(clock_.createTimer([this] { wake(); })) {}

KernelLog::~KernelLog() = default;

core::Result<std::unique_ptr<KernelLog>> KernelLog::open(core::Loop& loop, Callback onOomKill,
                                                         const std::string& directory) {
  std::unique_ptr<KernelLog> log(new KernelLog(loop, std::move(onOomKill)));
  if (core::Status s = log->start(directory); !s) return s;
  return log;
}

core::Status KernelLog::start(const std::string& directory) {
  const std::string where =
      directory.empty() ? "the system journal" : "the journal in " + directory;
  sd_journal* raw = nullptr;
  int r = directory.empty() ? sd_journal_open(&raw, SD_JOURNAL_LOCAL_ONLY | SD_JOURNAL_SYSTEM)
                            : sd_journal_open_directory(&raw, directory.c_str(), 0);
  if (r < 0) return core::Status::fromErrno(r, "open " + where);
  journal_.reset(raw);

  // Without journal files (a container without journald) there is nothing to
  // follow, and no sign of it otherwise: the reader would just stay silent.
  uint64_t bytes = 0;
  if (sd_journal_get_usage(raw, &bytes) >= 0 && bytes == 0) {
    return core::Status::notFound("no journal files in " + where);
  }
  r = sd_journal_add_match(raw, "_TRANSPORT=kernel", 0);
  if (r < 0) return core::Status::fromErrno(r, "select kernel messages in " + where);
  // Watch before seeking: what is written in between is then not missed.
  const int fd = sd_journal_get_fd(raw);
  if (fd < 0) return core::Status::fromErrno(fd, "watch " + where);
  // Onto the last kernel message, so that reading goes on from what is new:
  // the kills of earlier runs were counted then, or are too old to matter.
  r = sd_journal_seek_tail(raw);
  if (r >= 0) r = sd_journal_previous(raw);
  if (r < 0) return core::Status::fromErrno(r, "seek to the end of " + where);
  const int events = sd_journal_get_events(raw);
  if (events < 0) return core::Status::fromErrno(events, "watch " + where);
  auto source = loop_.addIo(fd, static_cast<uint32_t>(events), [this](uint32_t) { wake(); });
  if (!source) return source.status().withContext("watch " + where);
  io_ = std::move(*source);
  armTimeout();
  return core::Status::ok();
}

void KernelLog::wake() {
  // Takes in journal files that journald added, rotated or removed.
  if (int r = sd_journal_process(journal_.get()); r < 0 && !readFailureLogged_) {
    readFailureLogged_ = true;
    NW_LOG(kLog, warn, "Failed to process journal changes: {}, ignoring",
           core::Status::fromErrno(r, "sd_journal_process").message());
  }
  readNew();
}

void KernelLog::readNew() {
  sd_journal* journal = journal_.get();
  for (size_t read = 0; read < kMaxEntriesPerWake; ++read) {
    const int r = sd_journal_next(journal);
    if (r < 0 && !readFailureLogged_) {
      readFailureLogged_ = true;
      NW_LOG(kLog, warn, "Failed to read kernel messages from the journal: {}, ignoring",
             core::Status::fromErrno(r, "sd_journal_next").message());
    }
    if (r <= 0) return armTimeout();
    const void* data = nullptr;
    size_t length = 0;
    if (sd_journal_get_data(journal, "MESSAGE", &data, &length) < 0) continue;
    std::string_view message(static_cast<const char*>(data), length);
    constexpr std::string_view kField = "MESSAGE=";
    if (message.starts_with(kField)) message.remove_prefix(kField.size());
    if (auto kill = parseOomKill(message)) onOomKill_(*kill);
  }
  // More to read: the rest on the next iteration of the loop.
  timer_->armIn(core::Duration::zero());
}

void KernelLog::armTimeout() {
  uint64_t deadline = 0;
  const int r = sd_journal_get_timeout(journal_.get(), &deadline);
  if (r < 0 || deadline == std::numeric_limits<uint64_t>::max()) {
    timer_->cancel();
    return;
  }
  // An absolute CLOCK_MONOTONIC time, the clock the loop's timers run on.
  const auto at = std::chrono::microseconds(deadline);
  const auto now =
      std::chrono::duration_cast<std::chrono::microseconds>(clock_.now().time_since_epoch());
  timer_->armIn(at > now ? core::Duration(at - now) : core::Duration::zero());
}

}  // namespace nodewarden::heal
