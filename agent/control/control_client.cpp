#include "agent/control/control_client.h"

#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>

#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>

#include "agent/core/duration.h"
#include "agent/core/unique_fd.h"

namespace nodewarden::control {

namespace {

using SteadyTime = std::chrono::steady_clock::time_point;

// The socket's own time limits, set to what is left before each call: the
// command line blocks, with no event loop to run timers.
bool limitTo(int fd, SteadyTime deadline) {
  const auto left =
      std::chrono::ceil<std::chrono::microseconds>(deadline - std::chrono::steady_clock::now());
  if (left <= std::chrono::microseconds::zero()) return false;
  timeval limit{.tv_sec = static_cast<time_t>(left.count() / 1'000'000),
                .tv_usec = static_cast<suseconds_t>(left.count() % 1'000'000)};
  return ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &limit, sizeof(limit)) == 0 &&
         ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof(limit)) == 0;
}

}  // namespace

ControlClient::ControlClient(std::string path, core::Duration timeout)
    : path_(std::move(path)), timeout_(timeout) {}

core::Result<nlohmann::json> ControlClient::exchange(const nlohmann::json& request) const {
  const std::string unreachable = "cannot reach the agent at " + path_;
  const core::Status timedOut = core::Status::timeout(
      "the agent at " + path_ + " did not answer within " + core::formatDuration(timeout_));
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (path_.empty() || path_.size() >= sizeof(address.sun_path)) {
    return core::Status::invalidArgument("socket path \"" + path_ + "\" is empty or too long");
  }
  std::memcpy(address.sun_path, path_.c_str(), path_.size() + 1);

  const SteadyTime deadline = std::chrono::steady_clock::now() + timeout_;
  core::UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.isValid()) return core::Status::fromErrno(errno, "create socket");
  if (!limitTo(fd.get(), deadline)) return timedOut;
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&address), sizeof(address)) < 0) {
    const int error = errno;
    if (error == ENOENT || error == ECONNREFUSED || error == ENOTDIR) {
      return core::Status::notFound(unreachable +
                                    ": is nodewarden-agent running? (systemctl status "
                                    "nodewarden-agent)");
    }
    if (error == EACCES || error == EPERM) {
      return core::Status::failedPrecondition("permission denied: run as root");
    }
    if (error == EAGAIN || error == EINPROGRESS) return timedOut;
    return core::Status::fromErrno(error, unreachable);
  }

  const std::string line = request.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  std::string out = line + "\n";
  for (size_t sent = 0; sent < out.size();) {
    if (!limitTo(fd.get(), deadline)) return timedOut;
    // MSG_NOSIGNAL: an agent that already answered (busy, refused) and closed
    // must not kill the command with SIGPIPE; its answer is read below.
    const ssize_t n = ::send(fd.get(), out.data() + sent, out.size() - sent, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) return timedOut;
      if (errno == EPIPE || errno == ECONNRESET) break;
      return core::Status::fromErrno(errno, "send to the agent at " + path_);
    }
    sent += static_cast<size_t>(n);
  }

  std::string answer;
  while (answer.find('\n') == std::string::npos) {
    if (!limitTo(fd.get(), deadline)) return timedOut;
    char chunk[16384];
    const ssize_t n = ::recv(fd.get(), chunk, sizeof(chunk), 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) return timedOut;
      // After the answer, a reset only says the agent closed first.
      if (errno == ECONNRESET && !answer.empty()) break;
      return core::Status::fromErrno(errno, "receive from the agent at " + path_);
    }
    if (n == 0) break;
    answer.append(chunk, static_cast<size_t>(n));
    if (answer.size() > kMaxResponseBytes) {
      return core::Status::internal("the agent at " + path_ + " answered with more than " +
                                    std::to_string(kMaxResponseBytes) + " bytes");
    }
  }
  if (answer.empty()) {
    return core::Status::internal("the agent at " + path_ +
                                  " closed the connection without answering; see journalctl -u "
                                  "nodewarden-agent");
  }
  if (const size_t end = answer.find('\n'); end != std::string::npos) answer.resize(end);
  auto response = nlohmann::json::parse(answer, nullptr, /*allow_exceptions=*/false);
  if (!response.is_object() || !response.contains("ok") || !response["ok"].is_boolean()) {
    return core::Status::internal("the agent at " + path_ +
                                  " answered something unexpected: " + answer.substr(0, 200));
  }
  return response;
}

core::Result<nlohmann::json> ControlClient::call(const nlohmann::json& request) const {
  auto response = exchange(request);
  if (!response) return response.status();
  if ((*response)["ok"].get<bool>()) {
    auto result = response->find("result");
    return result != response->end() ? *result : nlohmann::json();
  }
  auto error = response->find("error");
  return core::Status::failedPrecondition(error != response->end() && error->is_string()
                                              ? error->get<std::string>()
                                              : "the agent refused the request without a reason");
}

}  // namespace nodewarden::control
