#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>

#include "agent/cmd/arguments.h"
#include "agent/cmd/commands.h"
#include "agent/cmd/node_providers.h"
#include "agent/cmd/report_output.h"
#include "agent/converge/executor.h"
#include "agent/converge/planner.h"
#include "agent/core/duration.h"
#include "agent/core/file_lock.h"
#include "agent/core/loop.h"
#include "agent/daemon/agent_config.h"
#include "agent/state/loader.h"
#include "agent/systemd/bus_systemd_manager.h"

namespace nodewarden::cmd {

namespace {

constexpr char kUsage[] =
    R"(Usage: nodewarden-agent apply [--dry-run] [--json] [--job-timeout DURATION] FILE

Converges this node to the desired state in FILE once: prints the plan, applies
it, and prints the result. The whole state is validated first; an invalid one
changes nothing.

  --dry-run               Print the plan only; change nothing
  --json                  Print the result as JSON
  --job-timeout DURATION  How long a systemd job may take (default 90s)

Exit status: 0 nothing changed, 2 changed, 4 failures, 6 changes and failures,
1 invalid state, 64 bad arguments (nothing changed). With --dry-run: 0 when the node
is in its desired state, 2 when the plan has changes.
)";

}  // namespace

int apply(int argc, char** argv) {
  static constexpr OptionSpec kOptions[] = {
      {"dry-run"}, {"json"}, {"job-timeout", /*takesValue=*/true}};
  auto parsed = Arguments::parse(argc, argv, kOptions, 1, kUsage);
  if (const int* exit = std::get_if<int>(&parsed)) return *exit;
  const Arguments& arguments = std::get<Arguments>(parsed);
  const bool dryRun = arguments.has("dry-run");
  const bool json = arguments.has("json");
  core::Duration jobTimeout = std::chrono::seconds(90);
  if (auto text = arguments.value("job-timeout")) {
    auto timeout = core::parsePositiveDuration(*text);
    if (!timeout) {
      std::cerr << "nodewarden-agent apply: --job-timeout: " << timeout.status().message() << "\n";
      return kExitUsage;
    }
    jobTimeout = *timeout;
  }
  const std::string& path = arguments.operands()[0];

  state::LoadResult loaded = state::loadFile(path);
  if (!loaded.ok()) {
    if (json) {
      std::cout << nlohmann::json{{"file", path}, {"errors", diagnosticsJson(loaded.errors)}}.dump(
                       2)
                << "\n";
    }
    printDiagnostics(loaded.errors, std::cerr);
    std::cerr << path << ": rejected, nothing was changed\n";
    return kExitInvalid;
  }

  // A dry run only reads: it creates no state directory and takes no lock.
  std::string stateDir = daemon::stateDirectoryPath();
  std::optional<core::FileLock> lock;
  if (!dryRun) {
    auto created = daemon::stateDirectory();
    if (!created) {
      std::cerr << "nodewarden-agent apply: " << created.status().message() << "\n";
      return kExitInvalid;
    }
    stateDir = *created;
    // The daemon may be converging right now: take turns, and plan only once
    // it is done. Waiting happens before connecting to systemd, so no signal
    // piles up for a client that is not listening.
    const std::string lockPath = stateDir + "/" + daemon::kConvergeLockName;
    auto held = core::FileLock::tryAcquire(lockPath);
    if (!held && held.status().code() == core::Status::Code::kFailedPrecondition) {
      std::cerr << "nodewarden-agent apply: waiting for the converge in progress to finish\n";
      held = core::FileLock::acquire(lockPath);
    }
    if (!held) {
      std::cerr << "nodewarden-agent apply: " << held.status().message() << "\n";
      return kExitInvalid;
    }
    lock = std::move(*held);
  }
  converge::RestartLedger ledger(stateDir + "/" + daemon::kRestartLedgerName);
  auto owed = ledger.owed();
  if (!owed) {
    std::cerr << "nodewarden-agent apply: " << owed.status().message() << "\n";
    return kExitInvalid;
  }

  auto loop = core::Loop::create();
  if (!loop) {
    std::cerr << "nodewarden-agent apply: " << loop.status().message() << "\n";
    return kExitInvalid;
  }
  core::LoopClock clock(**loop);
  auto systemd = systemd::BusSystemdManager::connect(**loop, clock, jobTimeout);
  if (!systemd) {
    std::cerr << "nodewarden-agent apply: connect to systemd: " << systemd.status().message()
              << "\n";
    return kExitInvalid;
  }
  auto node = NodeProviders::create(**loop, clock);
  if (!node) {
    std::cerr << "nodewarden-agent apply: " << node.status().message() << "\n";
    return kExitInvalid;
  }
  converge::Planner planner(**systemd, "", (*node)->providers());
  // Packages need a child process or two to observe: on the loop.
  std::optional<core::Result<converge::Observation>> observed;
  planner.observe(*loaded.state, [&](core::Result<converge::Observation> result) {
    observed = std::move(result);
  });
  if (core::Status s = (*loop)->runUntil([&] { return observed.has_value(); }); !s) {
    std::cerr << "nodewarden-agent apply: " << s.message() << "\n";
    return kExitInvalid;
  }
  if (!*observed) {
    std::cerr << path << ": cannot apply, nothing was changed: " << observed->status().message()
              << "\n";
    return kExitInvalid;
  }
  auto plan = planner.plan(*loaded.state, *owed, **observed);
  if (!plan) {
    std::cerr << path << ": cannot apply, nothing was changed: " << plan.status().message() << "\n";
    return kExitInvalid;
  }
  if (!json) printPlan(plan->changes, std::cout);
  if (dryRun) {
    const converge::Report report = converge::dryRunReport(*plan);
    if (json) std::cout << reportJson(report).dump(2) << "\n";
    return plan->empty() ? kExitOk : 2;
  }

  converge::Executor executor(**systemd, clock, &ledger);
  std::optional<converge::Report> report;
  executor.apply(std::move(*plan), [&](converge::Report done) { report = std::move(done); });
  if (core::Status s = (*loop)->runUntil([&] { return report.has_value(); }); !s) {
    std::cerr << "nodewarden-agent apply: " << s.message() << "\n";
    return 4;
  }
  if (json) {
    std::cout << reportJson(*report).dump(2) << "\n";
  } else {
    printReport(*report, std::cout);
  }
  return report->exitCode();
}

}  // namespace nodewarden::cmd
