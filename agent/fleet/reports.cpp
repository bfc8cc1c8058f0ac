#include "agent/fleet/reports.h"

#include "agent/converge/plan.h"
#include "agent/fleet/fleet_client.h"
#include "agent/heal/health.h"

namespace nodewarden::fleet {

namespace {

constexpr auto kHealthDelay = std::chrono::seconds(1);

int64_t micros(core::WallTime time) {
  return std::chrono::duration_cast<std::chrono::microseconds>(time.time_since_epoch()).count();
}

std::string_view outcomeName(converge::Change::Outcome outcome) {
  switch (outcome) {
    case converge::Change::Outcome::kPlanned:
      return "planned";
    case converge::Change::Outcome::kApplied:
      return "applied";
    case converge::Change::Outcome::kFailed:
      return "failed";
    case converge::Change::Outcome::kSkipped:
      return "skipped";
    case converge::Change::Outcome::kNotApplicable:
      return "not-applicable";
  }
  return "unknown";
}

}  // namespace

v1::AgentMessage convergeReport(const std::string& version, const std::string& result,
                                const std::string& error, const converge::Report* report,
                                core::Clock& clock) {
  v1::AgentMessage message;
  auto* out = message.mutable_report();
  out->set_desired_version(version);
  out->set_result(result);
  out->set_error(error);
  out->set_finished_at_us(micros(clock.wallNow()));
  if (report != nullptr) {
    out->set_duration_us(
        std::chrono::duration_cast<std::chrono::microseconds>(report->duration).count());
    for (const auto& change : report->changes) {
      auto* resource = out->add_resources();
      resource->set_resource(change.resource);
      resource->set_action(change.action);
      resource->set_outcome(std::string(outcomeName(change.outcome)));
      resource->set_detail(change.detail);
      resource->set_error(change.error);
    }
  }
  return message;
}

HealthReporter::HealthReporter(core::Clock& clock, heal::HealthBoard& board, FleetClient& client)
    : board_(board), client_(client), timer_(clock.createTimer([this] { send(); })) {
  board_.addListener([this](const heal::Condition&) {
    if (!timer_->armed()) timer_->armIn(kHealthDelay);
  });
  board_.addEventListener([this](const heal::Event& event) {
    auto* out = pending_.add_events();
    out->set_time_us(micros(event.time));
    out->set_subject(event.subject);
    out->set_reason(event.reason);
    out->set_message(event.message);
    out->set_type(event.warning ? "Warning" : "Normal");
    if (!timer_->armed()) timer_->armIn(kHealthDelay);
  });
  // The conditions as they stand when the agent starts.
  timer_->armIn(kHealthDelay);
}

void HealthReporter::send() {
  v1::AgentMessage message;
  auto* update = message.mutable_health();
  for (const heal::Condition& condition : board_.conditions()) {
    auto* out = update->add_conditions();
    out->set_subject(condition.subject);
    out->set_type(condition.type);
    out->set_status(condition.status);
    out->set_reason(condition.reason);
    out->set_message(condition.message);
    out->set_since_us(micros(condition.since));
  }
  *update->mutable_events() = std::move(*pending_.mutable_events());
  pending_.Clear();
  client_.report(std::move(message));
}

}  // namespace nodewarden::fleet
