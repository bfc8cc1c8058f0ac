#pragma once

#include <set>
#include <string>

#include "agent/core/status.h"

namespace nodewarden::converge {

// The restarts a run owes, kept on disk from before its first change until its
// jobs are done. A run killed after rewriting a unit's files but before
// restarting the unit leaves them here, and the next run restarts the unit even
// though its files already match: an interrupted run is finished by the next.
class RestartLedger final {
 public:
  // An empty path keeps nothing (tests, and tools that own no state).
  explicit RestartLedger(std::string path) : path_(std::move(path)) {}

  // Units whose restart an earlier run owed; none when there is no ledger.
  // A ledger that exists but cannot be read is an error: planning without it
  // would lose those restarts for good.
  core::Result<std::set<std::string>> owed() const;
  // Replaces the ledger with `units`, durably, before the run changes anything.
  core::Status record(const std::set<std::string>& units);
  // The run's jobs are done: only the restarts that did not happen (skipped,
  // or failed) are still owed.
  core::Status settle(const std::set<std::string>& stillOwed);

 private:
  const std::string path_;
};

}  // namespace nodewarden::converge
