#include "agent/core/status.h"

#include <cstring>

namespace nodewarden::core {

Status Status::fromErrno(int errnum, const std::string& what) {
  if (errnum < 0) errnum = -errnum;
  Code code = Code::kInternal;
  if (errnum == ENOENT) code = Code::kNotFound;
  if (errnum == ETIMEDOUT) code = Code::kTimeout;
  if (errnum == EINVAL) code = Code::kInvalidArgument;
  if (errnum == ECANCELED) code = Code::kCancelled;
  return Status(code, what + ": " + std::strerror(errnum));
}

}  // namespace nodewarden::core
