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
  if (changes.empty()) {
    out << "Plan: no changes, the node is in its desired state.\n";
    return;
  }
  out << "Plan: " << changes.size() << (changes.size() == 1 ? " change" : " changes") << "\n";
  for (const auto& change : changes) printChange(change, out);
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
    if (change.outcome == converge::Change::Outcome::kApplied) continue;
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
