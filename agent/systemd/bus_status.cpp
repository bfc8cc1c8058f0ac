#include "agent/systemd/bus_status.h"

#include <array>
#include <cstring>
#include <string>

namespace nodewarden::systemd {

namespace {

using Code = core::Status::Code;

struct ErrorCode {
  const char* name;
  Code code;
};

// libsystemd maps only the standard D-Bus error names to errno; systemd's own
// names would all come out as EIO.
constexpr std::array kSystemdErrors = {
    ErrorCode{"org.freedesktop.systemd1.NoSuchUnit", Code::kNotFound},
    ErrorCode{"org.freedesktop.systemd1.NoSuchJob", Code::kNotFound},
    ErrorCode{"org.freedesktop.systemd1.UnitMasked", Code::kFailedPrecondition},
    ErrorCode{"org.freedesktop.systemd1.LoadFailed", Code::kFailedPrecondition},
    ErrorCode{"org.freedesktop.systemd1.UnitInactive", Code::kFailedPrecondition},
    ErrorCode{"org.freedesktop.systemd1.OnlyByDependency", Code::kFailedPrecondition},
    ErrorCode{"org.freedesktop.systemd1.TransactionIsDestructive", Code::kFailedPrecondition},
    ErrorCode{"org.freedesktop.systemd1.TransactionJobsConflicting", Code::kFailedPrecondition},
    ErrorCode{"org.freedesktop.systemd1.TransactionOrderIsCyclic", Code::kFailedPrecondition},
    ErrorCode{"org.freedesktop.systemd1.ShuttingDown", Code::kFailedPrecondition},
    ErrorCode{"org.freedesktop.systemd1.JobTypeNotApplicable", Code::kInvalidArgument},
    ErrorCode{"org.freedesktop.systemd1.UnitGenerated", Code::kFailedPrecondition},
    ErrorCode{"org.freedesktop.systemd1.UnitLinked", Code::kFailedPrecondition},
    ErrorCode{"org.freedesktop.systemd1.BadUnitSetting", Code::kInvalidArgument},
};

}  // namespace

core::Status busStatus(std::string_view what, int r, const sd_bus_error* error) {
  if (error != nullptr && sd_bus_error_is_set(error)) {
    for (const ErrorCode& known : kSystemdErrors) {
      if (sd_bus_error_has_name(error, known.name)) {
        return core::Status::error(known.code, std::string(what) + ": " + error->message);
      }
    }
    const int errnum = sd_bus_error_get_errno(error);
    const std::string message = error->message != nullptr ? error->message : error->name;
    // fromErrno knows which errno means which code; the peer's message is better than strerror.
    return core::Status::error(core::Status::fromErrno(errnum, "").code(),
                               std::string(what) + ": " + message);
  }
  return core::Status::fromErrno(r, std::string(what));
}

core::Status busReplyStatus(std::string_view what, sd_bus_message* reply) {
  const sd_bus_error* error = sd_bus_message_get_error(reply);
  return busStatus(what, -sd_bus_message_get_errno(reply), error);
}

}  // namespace nodewarden::systemd
