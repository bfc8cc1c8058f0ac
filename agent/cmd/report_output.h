#pragma once

#include <nlohmann/json_fwd.hpp>

#include <ostream>
#include <vector>

#include "agent/converge/plan.h"
#include "agent/state/loader.h"

namespace nodewarden::cmd {

// What an operator reads on a terminal: the plan, then what became of it.
void printPlan(const std::vector<converge::Change>& changes, std::ostream& out);
void printReport(const converge::Report& report, std::ostream& out);
void printDiagnostics(const std::vector<state::Diagnostic>& errors, std::ostream& out);

// The same for scripts (--json).
nlohmann::json reportJson(const converge::Report& report);
nlohmann::json diagnosticsJson(const std::vector<state::Diagnostic>& errors);

}  // namespace nodewarden::cmd
