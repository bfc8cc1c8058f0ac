#include "agent/control/control_server.h"

#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>

#include "agent/core/duration.h"
#include "agent/core/log.h"
#include "agent/core/paths.h"

namespace nodewarden::control {

namespace {

const auto kLog = core::log::category("control");

constexpr size_t kReadChunk = 4096;
// When accept() runs out of file descriptors, the pending connection stays
// readable: wait before trying again rather than spin.
constexpr core::Duration kAcceptRetryDelay = std::chrono::seconds(1);

std::string dumpLine(const nlohmann::json& value) {
  return value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

// "[json.exception.parse_error.101] parse error at line 1, column 3: ..." is
// read by operators: keep the part after the bracket.
std::string parseErrorText(const nlohmann::json::parse_error& error) {
  std::string text = error.what();
  if (const size_t end = text.find("] "); text.starts_with("[") && end != std::string::npos) {
    text.erase(0, end + 2);
  }
  return text;
}

// An optional string field: absent and null are unset, anything else but a
// string is an error naming the field.
core::Result<std::optional<std::string>> optionalString(const nlohmann::json& request,
                                                        const char* field) {
  auto it = request.find(field);
  if (it == request.end() || it->is_null()) return std::optional<std::string>();
  if (!it->is_string()) {
    return core::Status::invalidArgument(std::string("\"") + field + "\" must be a string");
  }
  return std::optional<std::string>(it->get<std::string>());
}

core::Result<sockaddr_un> socketAddress(const std::string& path) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof(address.sun_path)) {
    return core::Status::invalidArgument("socket path \"" + path + "\" is empty or longer than " +
                                         std::to_string(sizeof(address.sun_path) - 1) + " bytes");
  }
  std::memcpy(address.sun_path, path.c_str(), path.size() + 1);
  return address;
}

// A socket file left at `path`: removed when nobody listens on it any more (an
// agent that was killed), an error when an agent still answers there or when
// the path is something else than a socket.
core::Status clearStaleSocket(const std::string& path, const sockaddr_un& address) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) < 0) {
    if (errno == ENOENT) return core::Status::ok();
    return core::Status::fromErrno(errno, "stat " + path);
  }
  if (!S_ISSOCK(st.st_mode)) {
    return core::Status::failedPrecondition(path + " exists and is not a socket; remove it");
  }
  core::UniqueFd probe(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!probe.isValid()) return core::Status::fromErrno(errno, "create socket");
  if (::connect(probe.get(), reinterpret_cast<const sockaddr*>(&address), sizeof(address)) == 0 ||
      errno == EAGAIN) {
    return core::Status::failedPrecondition("another agent is listening on " + path);
  }
  if (errno != ECONNREFUSED && errno != ENOENT) {
    return core::Status::fromErrno(errno, "connect to " + path);
  }
  if (::unlink(path.c_str()) < 0 && errno != ENOENT) {
    return core::Status::fromErrno(errno, "remove stale socket " + path);
  }
  NW_LOG(kLog, debug, "Removed the stale socket {}", path);
  return core::Status::ok();
}

}  // namespace

nlohmann::json okResponse(nlohmann::json result) {
  return {{"ok", true}, {"result", std::move(result)}};
}

nlohmann::json errorResponse(const std::string& message) {
  return {{"ok", false}, {"error", message}};
}

// One client: reads its request line, writes the answer, and is closed by the
// server once the answer is out, on error, or when its time is up.
class ControlServer::Connection final {
 public:
  Connection(ControlServer& server, core::UniqueFd fd, uid_t peerUid)
      : server_(server),
        fd_(std::move(fd)),
        peerUid_(peerUid),
        timer_(server.clock_.createTimer([this] { timedOut(); })) {}

  core::Status start() {
    auto source = server_.loop_.addIo(fd_.get(), EPOLLIN, [this](uint32_t) { ready(); });
    if (!source) return source.status();
    source_ = std::move(*source);
    timer_->armIn(server_.options_.timeout);
    return core::Status::ok();
  }

  // Stops every callback; the object itself goes later (see ControlServer::close).
  void stop() {
    source_.reset();
    timer_->cancel();
    fd_.reset();
  }

 private:
  void ready() {
    if (answering_) return write();
    char chunk[kReadChunk];
    while (true) {
      const ssize_t n = ::recv(fd_.get(), chunk, sizeof(chunk), MSG_DONTWAIT);
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN) return;
        return server_.close(this);  // reset by the client: nobody to answer
      }
      if (n == 0) {
        // The client shut down its side: what it sent is the whole request.
        if (request_.empty()) return server_.close(this);
        return answer(server_.dispatch(request_, peerUid_));
      }
      request_.append(chunk, static_cast<size_t>(n));
      if (const size_t end = request_.find('\n'); end != std::string::npos) {
        request_.resize(end);
        return answer(server_.dispatch(request_, peerUid_));
      }
      if (request_.size() > server_.options_.maxRequestBytes) {
        return answer(errorResponse("the request is larger than " +
                                    std::to_string(server_.options_.maxRequestBytes) + " bytes"));
      }
    }
  }

  void answer(const nlohmann::json& response) {
    answering_ = true;
    request_.clear();
    response_ = dumpLine(response);
    if (sd_event_source_set_io_events(source_.get(), EPOLLOUT) < 0) return server_.close(this);
    write();
  }

  void write() {
    while (written_ < response_.size()) {
      // MSG_NOSIGNAL: a client that went away must not kill the agent with SIGPIPE.
      const ssize_t n = ::send(fd_.get(), response_.data() + written_, response_.size() - written_,
                               MSG_DONTWAIT | MSG_NOSIGNAL);
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN) return;  // the client reads slowly: wait for EPOLLOUT
        return server_.close(this);
      }
      written_ += static_cast<size_t>(n);
    }
    server_.close(this);
  }

  void timedOut() {
    if (!answering_) {
      NW_LOG(kLog, debug, "Closing a control connection that sent no request in time");
      const std::string line = dumpLine(errorResponse(
          "no complete request within " + core::formatDuration(server_.options_.timeout) +
          "; send one JSON object on one line"));
      (void)!::send(fd_.get(), line.data(), line.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
    }
    server_.close(this);
  }

  ControlServer& server_;
  core::UniqueFd fd_;  // before source_, which must go first
  core::EventSource source_;
  const uid_t peerUid_;
  std::unique_ptr<core::Timer> timer_;
  std::string request_;
  std::string response_;
  size_t written_ = 0;
  bool answering_ = false;
};

ControlServer::ControlServer(core::Loop& loop, core::Clock& clock, ControlHandler& handler,
                             Options options)
    : loop_(loop), clock_(clock), handler_(handler), options_(std::move(options)) {}

core::Result<std::unique_ptr<ControlServer>> ControlServer::start(core::Loop& loop,
                                                                  core::Clock& clock,
                                                                  ControlHandler& handler,
                                                                  Options options) {
  std::unique_ptr<ControlServer> server(
      new ControlServer(loop, clock, handler, std::move(options)));
  if (core::Status s = server->listen(); !s) {
    return s.withContext("listen on " + server->options_.path);
  }
  return server;
}

ControlServer::~ControlServer() {
  for (auto& [raw, connection] : connections_) connection->stop();
  connections_.clear();
  closed_.clear();
  listenSource_.reset();
  listenFd_.reset();
  // Only the socket this server made: a newer agent may have replaced it.
  struct stat st {};
  if (socketInode_ != 0 && ::lstat(options_.path.c_str(), &st) == 0 && st.st_dev == socketDevice_ &&
      st.st_ino == socketInode_) {
    ::unlink(options_.path.c_str());
  }
}

core::Status ControlServer::listen() {
  auto address = socketAddress(options_.path);
  if (!address) return address.status();

  // systemd makes the directory through RuntimeDirectory=; made here as well
  // when the agent runs without it, root's alone.
  const std::string directory = core::parentDirectory(options_.path);
  if (::mkdir(directory.c_str(), 0700) < 0 && errno != EEXIST) {
    return core::Status::fromErrno(errno, "create " + directory);
  }
  if (core::Status s = clearStaleSocket(options_.path, *address); !s) return s;

  listenFd_.reset(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!listenFd_.isValid()) return core::Status::fromErrno(errno, "create socket");
  // bind() creates the file with the umask's mode: make it 0600 from the
  // start rather than chmod it after, when a client could already have
  // connected.
  const mode_t previous = ::umask(0177);
  const int bound =
      ::bind(listenFd_.get(), reinterpret_cast<const sockaddr*>(&*address), sizeof(*address));
  const int bindErrno = errno;
  ::umask(previous);
  if (bound < 0) return core::Status::fromErrno(bindErrno, "bind");
  struct stat st {};
  if (::lstat(options_.path.c_str(), &st) < 0) return core::Status::fromErrno(errno, "stat");
  socketDevice_ = st.st_dev;
  socketInode_ = st.st_ino;
  if (::listen(listenFd_.get(), SOMAXCONN) < 0) return core::Status::fromErrno(errno, "listen");

  auto source = loop_.addIo(listenFd_.get(), EPOLLIN, [this](uint32_t) { acceptAll(); });
  if (!source) return source.status();
  listenSource_ = std::move(*source);
  auto reaper = loop_.addDefer([this] { closed_.clear(); });
  if (!reaper) return reaper.status();
  reaper_ = std::move(*reaper);
  return core::Status::ok();
}

void ControlServer::acceptAll() {
  while (true) {
    core::UniqueFd fd(::accept4(listenFd_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
    if (!fd.isValid()) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (errno == EAGAIN) return;
      NW_LOG(kLog, warn, "Failed to accept a control connection: {}, retrying in {}",
             std::strerror(errno), core::formatDuration(kAcceptRetryDelay));
      sd_event_source_set_enabled(listenSource_.get(), SD_EVENT_OFF);
      if (!acceptRetryTimer_) {
        acceptRetryTimer_ = clock_.createTimer(
            [this] { sd_event_source_set_enabled(listenSource_.get(), SD_EVENT_ON); });
      }
      acceptRetryTimer_->armIn(kAcceptRetryDelay);
      return;
    }
    if (connections_.size() >= options_.maxConnections) {
      // Answered at once, without reading: the client may try again shortly.
      const size_t busy = connections_.size();
      const std::string line =
          dumpLine(errorResponse("the agent is busy with " + std::to_string(busy) + " other " +
                                 (busy == 1 ? "request" : "requests") + "; try again"));
      (void)!::send(fd.get(), line.data(), line.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
      continue;
    }
    ucred peer{};
    socklen_t length = sizeof(peer);
    if (::getsockopt(fd.get(), SOL_SOCKET, SO_PEERCRED, &peer, &length) < 0) {
      NW_LOG(kLog, warn, "Failed to read a control client's credentials: {}, ignoring it",
             std::strerror(errno));
      continue;
    }
    auto connection = std::make_unique<Connection>(*this, std::move(fd), peer.uid);
    if (core::Status s = connection->start(); !s) {
      NW_LOG(kLog, warn, "Failed to serve a control connection: {}, ignoring it", s.message());
      continue;
    }
    Connection* raw = connection.get();
    connections_.emplace(raw, std::move(connection));
  }
}

void ControlServer::close(Connection* connection) {
  auto it = connections_.find(connection);
  if (it == connections_.end()) return;
  it->second->stop();
  // Called from the connection's own callbacks: it is freed on the next
  // iteration, once they have returned.
  closed_.push_back(std::move(it->second));
  connections_.erase(it);
  sd_event_source_set_enabled(reaper_.get(), SD_EVENT_ONESHOT);
}

nlohmann::json ControlServer::dispatch(const std::string& line, uid_t peerUid) {
  if (peerUid != options_.allowedUid) {
    NW_LOG(kLog, warn, "Refused a control request from uid {}: only uid {} may ask", peerUid,
           options_.allowedUid);
    return errorResponse("permission denied: run as root");
  }
  nlohmann::json request;
  try {
    request = nlohmann::json::parse(line);
  } catch (const nlohmann::json::parse_error& error) {
    return errorResponse("malformed request: " + parseErrorText(error) +
                         "; send one JSON object on one line, like {\"command\": \"status\"}");
  }
  if (!request.is_object()) {
    return errorResponse(
        "malformed request: not a JSON object; send one like {\"command\": "
        "\"status\"}");
  }
  auto commandIt = request.find("command");
  if (commandIt == request.end() || !commandIt->is_string()) {
    return errorResponse("the request has no \"command\" (status, pause or resume)");
  }
  const std::string command = commandIt->get<std::string>();
  NW_LOG(kLog, debug, "Control request: {}", command);

  if (command == command::kStatus) return okResponse(handler_.status());

  auto unit = optionalString(request, "unit");
  if (!unit) return errorResponse(unit.status().message());
  if (command == command::kPause) {
    auto reason = optionalString(request, "reason");
    if (!reason) return errorResponse(reason.status().message());
    auto duration = optionalString(request, "for");
    if (!duration) return errorResponse(duration.status().message());
    PauseRequest pause{.reason = reason->value_or(""), .unit = *unit};
    if (*duration) {
      auto parsed = core::parseDuration(**duration);
      if (!parsed) return errorResponse("\"for\": " + parsed.status().message());
      pause.duration = *parsed;
    }
    auto result = handler_.pause(pause);
    return result ? okResponse(std::move(*result)) : errorResponse(result.status().message());
  }
  if (command == command::kResume) {
    auto result = handler_.resume(*unit);
    return result ? okResponse(std::move(*result)) : errorResponse(result.status().message());
  }
  return errorResponse("unknown command \"" + command + "\": expected status, pause or resume");
}

}  // namespace nodewarden::control
