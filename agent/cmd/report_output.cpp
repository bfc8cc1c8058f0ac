#include "agent/cmd/report_output.h"

#include <nlohmann/json.hpp>

#include <chrono>
#include <iomanip>

namespace nodewarden::cmd {

namespace {

const char* outcomeName(converge::Change::Outcome outcome) {
  switch (outcome) {
    case converge::Change::Outcome::kPlanned:
      return "planned";
    case converge::Change::Outcome::kApplied:
      return "ok";
    case converge::Change::Outcome::kFailed:
      return "failed";
    case converge::Change::Outcome::kSkipped:
      return "skipped";
    case converge::Change::Outcome::kNotApplicable:
      return "n/a";
  }
  return "unknown";
}

void printChange(const converge::Change& change, std::ostream& out) {
  out << "  " << std::left << std::setw(14) << change.action << change.resource;
  if (!change.detail.empty()) out << " (" << change.detail << ")";
  out << "\n";
}

}  // namespace

void printPlan(const std::vector<converge::Change>& changes, std::ostream& out) {
  size_t planned = 0;
  for (const auto& change : changes) {
    planned += change.outcome != converge::Change::Outcome::kNotApplicable;
  }
  if (planned == 0) {
    out << "Plan: no changes, the node is in its desired state.\n";
  } else {
    out << "Plan: " << planned << (planned == 1 ? " change" : " changes") << "\n";
    for (const auto& change : changes) {
      if (change.outcome != converge::Change::Outcome::kNotApplicable) printChange(change, out);
    }
  }
  // What this node cannot have is said every time, not hidden as "no changes".
  for (const auto& change : changes) {
    if (change.outcome != converge::Change::Outcome::kNotApplicable) continue;
    out << "  " << std::left << std::setw(14) << "n/a" << change.resource << ": " << change.error
        << "\n";
  }
}

void printReport(const converge::Report& report, std::ostream& out) {
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(report.duration).count();
  if (report.dryRun) {
    out << "Dry run: nothing was changed.\n";
    return;
  }
  out << "Result: " << report.changed() << " changed, " << report.failed() << " failed, "
      << report.jobsQueued << " systemd jobs, " << ms << " ms\n";
  for (const auto& change : report.changes) {
    // What the node cannot have was said with the plan, just above.
    if (change.outcome == converge::Change::Outcome::kApplied ||
        change.outcome == converge::Change::Outcome::kNotApplicable) {
      continue;
    }
    out << "  " << std::left << std::setw(8) << outcomeName(change.outcome) << change.action << " "
        << change.resource;
    if (!change.error.empty()) out << ": " << change.error;
    out << "\n";
  }
}

void printDiagnostics(const std::vector<state::Diagnostic>& errors, std::ostream& out) {
  for (const auto& error : errors) out << error.toString() << "\n";
}

nlohmann::json reportJson(const converge::Report& report) {
  nlohmann::json changes = nlohmann::json::array();
  for (const auto& change : report.changes) {
    nlohmann::json entry = {
        {"resource", change.resource},
        {"action", change.action},
        {"detail", change.detail},
        {"outcome", outcomeName(change.outcome)},
    };
    if (!change.error.empty()) entry["error"] = change.error;
    changes.push_back(std::move(entry));
  }
  return {
      {"dryRun", report.dryRun},
      {"changed", report.changed()},
      {"failed", report.failed()},
      {"jobs", report.jobsQueued},
      {"durationMs", std::chrono::duration<double, std::milli>(report.duration).count()},
      {"exitCode", report.exitCode()},
      {"changes", std::move(changes)},
  };
}

nlohmann::json diagnosticsJson(const std::vector<state::Diagnostic>& errors) {
  nlohmann::json list = nlohmann::json::array();
  for (const auto& error : errors) {
    list.push_back({{"file", error.file},
                    {"line", error.line},
                    {"column", error.column},
                    {"path", error.path},
                    {"message", error.message},
                    {"text", error.toString()}});
  }
  return list;
}

}  // namespace nodewarden::cmd
