#include "agent/heal/node_prober.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cerrno>
#include <cstddef>
#include <cstring>
#include <utility>

#include "agent/core/duration.h"
#include "agent/core/http_client.h"
#include "agent/core/loop.h"
#include "agent/core/process_runner.h"
#include "agent/core/unique_fd.h"
#include "agent/state/validate_health.h"

namespace nodewarden::heal {

namespace {

std::string timedOut(core::Duration timeout) {
  return "timed out after " + core::formatDuration(timeout);
}

std::string firstLine(const std::string& text) {
  const size_t start = text.find_first_not_of(" \t\r\n");
  if (start == std::string::npos) return {};
  const size_t end = text.find_first_of("\r\n", start);
  return text.substr(start, end == std::string::npos ? std::string::npos : end - start);
}

std::string statusesText(const std::vector<uint32_t>& statuses) {
  std::string text;
  for (size_t i = 0; i < statuses.size(); ++i) {
    if (i > 0) text += i + 1 == statuses.size() ? " or " : ", ";
    text += std::to_string(statuses[i]);
  }
  return text;
}

// The socket address of a parsed probe address.
struct SocketAddress {
  sockaddr_storage storage{};
  socklen_t length = 0;
  int family = AF_UNSPEC;
};

SocketAddress socketAddress(const state::ProbeAddress& address) {
  SocketAddress out;
  if (address.isUnix) {
    auto* un = reinterpret_cast<sockaddr_un*>(&out.storage);
    un->sun_family = AF_UNIX;
    // parseProbeAddress() bounds the path to fit with its NUL.
    std::memcpy(un->sun_path, address.path.c_str(), address.path.size() + 1);
    out.length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + address.path.size() + 1);
    out.family = AF_UNIX;
  } else if (address.isIpv6) {
    auto* in6 = reinterpret_cast<sockaddr_in6*>(&out.storage);
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(address.port);
    ::inet_pton(AF_INET6, address.host.c_str(), &in6->sin6_addr);
    out.length = sizeof(sockaddr_in6);
    out.family = AF_INET6;
  } else {
    auto* in = reinterpret_cast<sockaddr_in*>(&out.storage);
    in->sin_family = AF_INET;
    in->sin_port = htons(address.port);
    ::inet_pton(AF_INET, address.host.c_str(), &in->sin_addr);
    out.length = sizeof(sockaddr_in);
    out.family = AF_INET;
  }
  return out;
}

}  // namespace

class NodeProber::Connect final {
 public:
  core::UniqueFd socket;
  core::EventSource watch;
  std::unique_ptr<core::Timer> timer;
  Callback done;
  std::string what;  // "connect 127.0.0.1:10250"
  core::MonotonicTime started;
};

NodeProber::NodeProber(core::Loop& loop, core::Clock& clock, core::HttpClient& http,
                       core::ProcessRunner& processes)
    : loop_(loop),
      clock_(clock),
      http_(http),
      processes_(processes),
      self_(std::make_shared<NodeProber*>(this)) {}

NodeProber::~NodeProber() = default;

void NodeProber::check(const ProbeSpec& spec, Callback done) {
  switch (spec.kind) {
    case ProbeSpec::Kind::kHttp:
      return checkHttp(spec, std::move(done));
    case ProbeSpec::Kind::kTcp:
      return checkTcp(spec, std::move(done));
    case ProbeSpec::Kind::kExec:
      return checkExec(spec, std::move(done));
  }
}

void NodeProber::deliver(Callback done, ProbeResult result) {
  std::weak_ptr<NodeProber*> self = self_;
  loop_.post([self, done = std::move(done), result = std::move(result)]() mutable {
    if (!self.expired()) done(std::move(result));
  });
}

void NodeProber::checkHttp(const ProbeSpec& spec, Callback done) {
  core::HttpRequest request{.url = spec.url,
                            .caFile = spec.caFile,
                            .clientCertificate = spec.clientCertificate,
                            .clientKey = spec.clientKey,
                            .timeout = spec.timeout,
                            .connectTimeout = spec.timeout,
                            .maxBytes = kMaxBody,
                            .outputPath = {},
                            .followRedirects = false,
                            .useProxy = false};
  std::weak_ptr<NodeProber*> self = self_;
  http_.get(std::move(request), [self, done = std::move(done), started = clock_.now(),
                                 spec](core::Result<core::HttpResponse> response) {
    auto prober = self.lock();
    if (!prober) return;
    ProbeResult result;
    result.duration = (*prober)->clock_.now() - started;
    if (!response) {
      result.message = response.status().code() == core::Status::Code::kTimeout
                           ? timedOut(spec.timeout)
                           : response.status().message();
    } else if (spec.accepts(response->status)) {
      result.ok = true;
      result.message = "HTTP " + std::to_string(response->status);
    } else {
      result.message = "HTTP " + std::to_string(response->status) + " from " + spec.url;
      if (!spec.expectedStatuses.empty()) {
        result.message += ", expected " + statusesText(spec.expectedStatuses);
      }
    }
    done(std::move(result));
  });
}

void NodeProber::checkTcp(const ProbeSpec& spec, Callback done) {
  const std::string what = "connect " + spec.address;
  const core::MonotonicTime started = clock_.now();
  auto fail = [&](std::string message) {
    deliver(std::move(done), ProbeResult{.ok = false, .message = std::move(message)});
  };
  auto parsed = state::parseProbeAddress(spec.address);
  if (!parsed) return fail(what + ": " + parsed.status().message());
  const SocketAddress address = socketAddress(*parsed);
  core::UniqueFd socket(::socket(address.family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!socket.isValid()) return fail(core::Status::fromErrno(errno, what).message());
  if (::connect(socket.get(), reinterpret_cast<const sockaddr*>(&address.storage),
                address.length) == 0) {
    // Unix sockets usually connect at once.
    return deliver(
        std::move(done),
        ProbeResult{.ok = true, .message = "connected", .duration = clock_.now() - started});
  }
  // A Unix socket whose backlog is full answers EAGAIN, which no later
  // event completes: a failure, like a refusal.
  if (errno != EINPROGRESS) return fail(core::Status::fromErrno(errno, what).message());

  const uint64_t id = nextConnect_++;
  auto connect = std::make_unique<Connect>();
  connect->what = what;
  connect->started = started;
  auto watch = loop_.addIo(socket.get(), EPOLLOUT, [this, id](uint32_t) {
    auto it = connects_.find(id);
    if (it == connects_.end()) return;
    int error = 0;
    socklen_t length = sizeof(error);
    if (::getsockopt(it->second->socket.get(), SOL_SOCKET, SO_ERROR, &error, &length) < 0) {
      error = errno;
    }
    if (error == 0) return endConnect(id, true, "connected");
    endConnect(id, false, core::Status::fromErrno(error, it->second->what).message());
  });
  if (!watch) return fail(what + ": " + watch.status().message());
  connect->socket = std::move(socket);
  connect->watch = std::move(*watch);
  connect->timer = clock_.createTimer(
      [this, id, timeout = spec.timeout] { endConnect(id, false, timedOut(timeout)); });
  connect->timer->armIn(spec.timeout);
  connect->done = std::move(done);
  connects_.emplace(id, std::move(connect));
}

void NodeProber::endConnect(uint64_t id, bool ok, std::string message) {
  auto it = connects_.find(id);
  if (it == connects_.end()) return;
  // Closes the socket and drops its watch and timer; sd-event keeps the
  // source that is dispatching until its callback returns.
  std::unique_ptr<Connect> connect = std::move(it->second);
  connects_.erase(it);
  ProbeResult result{
      .ok = ok, .message = std::move(message), .duration = clock_.now() - connect->started};
  Callback done = std::move(connect->done);
  connect.reset();
  deliver(std::move(done), std::move(result));
}

void NodeProber::checkExec(const ProbeSpec& spec, Callback done) {
  if (spec.command.empty()) {
    return deliver(std::move(done), ProbeResult{.ok = false, .message = "no command to run"});
  }
  core::ProcessRequest request{.argv = spec.command,
                               .environment = {},
                               .stdinData = {},
                               .timeout = spec.timeout,
                               .outputLimit = kMaxOutput};
  std::weak_ptr<NodeProber*> self = self_;
  processes_.run(
      std::move(request), [self, done = std::move(done), started = clock_.now(),
                           timeout = spec.timeout](core::Result<core::ProcessResult> process) {
        auto prober = self.lock();
        if (!prober) return;
        ProbeResult result;
        result.duration = (*prober)->clock_.now() - started;
        if (!process) {
          result.message = process.status().message();
        } else if (process->timedOut) {
          result.message = timedOut(timeout);
        } else if (process->signal) {
          const char* name = ::sigabbrev_np(*process->signal);
          result.message =
              "killed by " + (name != nullptr ? "SIG" + std::string(name)
                                              : "signal " + std::to_string(*process->signal));
        } else {
          const int status = process->exitCode.value_or(-1);
          result.ok = status == 0;
          result.message = "exit status " + std::to_string(status);
          if (!result.ok) {
            if (std::string line = firstLine(process->stderrData); !line.empty()) {
              result.message += ": " + line;
            }
          }
        }
        done(std::move(result));
      });
}

}  // namespace nodewarden::heal
