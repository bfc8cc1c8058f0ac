#include "agent/converge/restart_ledger.h"

#include <sstream>

#include "agent/core/atomic_file.h"

namespace nodewarden::converge {

namespace {

constexpr size_t kMaxLedgerBytes = 1 << 20;

}  // namespace

core::Result<std::set<std::string>> RestartLedger::owed() const {
  std::set<std::string> units;
  if (path_.empty()) return units;
  auto text = core::readFile(path_, kMaxLedgerBytes);
  if (!text) {
    if (text.status().code() == core::Status::Code::kNotFound) return units;
    return text.status().withContext("read owed restarts");
  }
  std::istringstream lines(*text);
  for (std::string line; std::getline(lines, line);) {
    if (!line.empty()) units.insert(line);
  }
  return units;
}

core::Status RestartLedger::record(const std::set<std::string>& units) {
  if (path_.empty()) return core::Status::ok();
  std::string text;
  for (const auto& unit : units) text += unit + "\n";
  if (core::Status s = core::writeFileAtomic(path_, text, {.mode = 0600}); !s) {
    return s.withContext("record owed restarts");
  }
  return core::Status::ok();
}

core::Status RestartLedger::settle(const std::set<std::string>& stillOwed) {
  if (path_.empty()) return core::Status::ok();
  if (!stillOwed.empty()) return record(stillOwed);
  // Most runs owe nothing, and then there is nothing to remove.
  return core::removePath(path_);
}

}  // namespace nodewarden::converge
