// NodeProber on a real event loop, against sockets, a small HTTP server and
// child processes of the test's own.

#include "agent/heal/node_prober.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "agent/core/curl_http_client.h"
#include "agent/core/loop.h"
#include "agent/core/loop_process_runner.h"
#include "agent/core/unique_fd.h"

namespace nodewarden::heal {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;
using ::testing::StartsWith;

// A TCP socket on 127.0.0.1 with a port the kernel chose; listening or not.
core::UniqueFd tcpSocket(bool listening, int backlog, uint16_t& port) {
  core::UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  EXPECT_TRUE(fd.isValid()) << std::strerror(errno);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(::bind(fd.get(), reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0)
      << std::strerror(errno);
  if (listening) {
    EXPECT_EQ(::listen(fd.get(), backlog), 0) << std::strerror(errno);
  }
  socklen_t length = sizeof(address);
  ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&address), &length);
  port = ntohs(address.sin_port);
  return fd;
}

// HTTP/1.1 on the test's loop: answers each request by its path, then closes
// the connection. /slow never answers.
class TinyHttpServer {
 public:
  explicit TinyHttpServer(core::Loop& loop) : loop_(loop) {
    listener_ = tcpSocket(/*listening=*/true, 16, port_);
    auto source = loop_.addIo(listener_.get(), EPOLLIN, [this](uint32_t) { accept(); });
    EXPECT_TRUE(source) << source.status().message();
    if (source) listenSource_ = std::move(*source);
  }

  std::string url(const std::string& path) const {
    return "http://127.0.0.1:" + std::to_string(port_) + path;
  }
  int requests() const { return requests_; }

 private:
  struct Client {
    core::UniqueFd fd;
    core::EventSource source;
    std::string request;
  };

  void accept() {
    while (true) {
      core::UniqueFd fd(::accept4(listener_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
      if (!fd.isValid()) return;
      const int id = nextClient_++;
      auto source = loop_.addIo(fd.get(), EPOLLIN, [this, id](uint32_t) { read(id); });
      ASSERT_TRUE(source);
      clients_[id] = Client{std::move(fd), std::move(*source), {}};
    }
  }

  void read(int id) {
    Client& client = clients_.at(id);
    char buffer[4096];
    ssize_t n = ::read(client.fd.get(), buffer, sizeof(buffer));
    if (n <= 0) {
      if (n < 0 && errno == EAGAIN) return;
      clients_.erase(id);
      return;
    }
    client.request.append(buffer, static_cast<size_t>(n));
    if (client.request.find("\r\n\r\n") == std::string::npos) return;
    ++requests_;
    const size_t start = client.request.find(' ') + 1;
    const std::string path = client.request.substr(start, client.request.find(' ', start) - start);
    std::string head;
    std::string body = "ok\n";
    if (path == "/slow") return;
    if (path == "/healthz") {
      head = "200 OK";
    } else if (path == "/created") {
      head = "201 Created";
    } else if (path == "/error") {
      head = "500 Internal Server Error";
      body = "broken\n";
    } else if (path == "/redirect") {
      head = "302 Found\r\nLocation: /healthz";
    } else {
      head = "404 Not Found";
    }
    const std::string response = "HTTP/1.1 " + head + "\r\nConnection: close\r\nContent-Length: " +
                                 std::to_string(body.size()) + "\r\n\r\n" + body;
    // Small enough for the socket's buffer in one write.
    EXPECT_EQ(::write(client.fd.get(), response.data(), response.size()),
              static_cast<ssize_t>(response.size()));
    clients_.erase(id);
  }

  core::Loop& loop_;
  core::UniqueFd listener_;
  uint16_t port_ = 0;
  core::EventSource listenSource_;
  int nextClient_ = 0;
  int requests_ = 0;
  std::map<int, Client> clients_;
};

class NodeProberTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto loop = core::Loop::create();
    ASSERT_TRUE(loop) << loop.status().message();
    loop_ = std::move(*loop);
    clock_ = std::make_unique<core::LoopClock>(*loop_);
    auto http = core::CurlHttpClient::create(*loop_);
    ASSERT_TRUE(http) << http.status().message();
    http_ = std::move(*http);
    auto processes = core::LoopProcessRunner::create(*loop_, *clock_, /*killGrace=*/200ms);
    ASSERT_TRUE(processes) << processes.status().message();
    processes_ = std::move(*processes);
    prober_ = std::make_unique<NodeProber>(*loop_, *clock_, *http_, *processes_);
    std::string dir = (std::filesystem::temp_directory_path() / "nodewarden-probe-XXXXXX").string();
    ASSERT_NE(::mkdtemp(dir.data()), nullptr) << std::strerror(errno);
    dir_ = dir;
  }

  void TearDown() override {
    prober_.reset();
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }

  ProbeResult check(const ProbeSpec& spec) {
    std::optional<ProbeResult> result;
    prober_->check(spec, [&](ProbeResult r) { result = std::move(r); });
    EXPECT_FALSE(result.has_value()) << "the callback ran inside check()";
    core::Status s = loop_->runUntil([&] { return result.has_value(); });
    EXPECT_TRUE(s) << s.message();
    return result.value_or(ProbeResult{.ok = false, .message = "no result"});
  }

  static ProbeSpec tcp(const std::string& address) {
    ProbeSpec spec;
    spec.kind = ProbeSpec::Kind::kTcp;
    spec.address = address;
    spec.timeout = 2s;
    return spec;
  }

  static ProbeSpec http(const std::string& url) {
    ProbeSpec spec;
    spec.kind = ProbeSpec::Kind::kHttp;
    spec.url = url;
    spec.timeout = 2s;
    return spec;
  }

  static ProbeSpec exec(std::vector<std::string> command, core::Duration timeout = 2s) {
    ProbeSpec spec;
    spec.kind = ProbeSpec::Kind::kExec;
    spec.command = std::move(command);
    spec.timeout = timeout;
    return spec;
  }

  // A listening Unix socket at `name` under the test's directory.
  core::UniqueFd unixListener(const std::string& path) {
    core::UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::strncpy(address.sun_path, path.c_str(), sizeof(address.sun_path) - 1);
    EXPECT_EQ(::bind(fd.get(), reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0)
        << std::strerror(errno);
    EXPECT_EQ(::listen(fd.get(), 4), 0);
    return fd;
  }

  std::unique_ptr<core::Loop> loop_;
  std::unique_ptr<core::LoopClock> clock_;
  std::unique_ptr<core::CurlHttpClient> http_;
  std::unique_ptr<core::LoopProcessRunner> processes_;
  std::unique_ptr<NodeProber> prober_;
  std::string dir_;
};

TEST_F(NodeProberTest, TcpConnectToAListener) {
  uint16_t port = 0;
  core::UniqueFd listener = tcpSocket(/*listening=*/true, 4, port);
  ProbeResult result = check(tcp("127.0.0.1:" + std::to_string(port)));
  EXPECT_TRUE(result.ok) << result.message;
  EXPECT_EQ(result.message, "connected");
  EXPECT_EQ(prober_->connecting(), 0u);
  EXPECT_TRUE(check(tcp("localhost:" + std::to_string(port))).ok);
}

TEST_F(NodeProberTest, TcpRefusedPortFails) {
  uint16_t port = 0;
  // Bound but not listening: the port is ours, and refuses connections.
  core::UniqueFd bound = tcpSocket(/*listening=*/false, 0, port);
  const std::string address = "127.0.0.1:" + std::to_string(port);
  ProbeResult result = check(tcp(address));
  EXPECT_FALSE(result.ok);
  EXPECT_EQ(result.message, "connect " + address + ": Connection refused");
  EXPECT_EQ(prober_->connecting(), 0u);
}

TEST_F(NodeProberTest, TcpConnectThatHangsTimesOut) {
  uint16_t port = 0;
  // A listener with a full accept queue drops further connection requests,
  // so the next connect waits for an answer that never comes.
  core::UniqueFd listener = tcpSocket(/*listening=*/true, 0, port);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  core::UniqueFd filler(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  ASSERT_EQ(::connect(filler.get(), reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);

  ProbeSpec spec = tcp("127.0.0.1:" + std::to_string(port));
  spec.timeout = 200ms;
  ProbeResult result = check(spec);
  EXPECT_FALSE(result.ok);
  EXPECT_EQ(result.message, "timed out after 200ms");
  EXPECT_GE(result.duration, 200ms);
  EXPECT_EQ(prober_->connecting(), 0u);
}

TEST_F(NodeProberTest, UnixSocketAnswering) {
  const std::string path = dir_ + "/containerd.sock";
  core::UniqueFd listener = unixListener(path);
  ProbeResult result = check(tcp("unix:" + path));
  EXPECT_TRUE(result.ok) << result.message;
}

TEST_F(NodeProberTest, UnixSocketMissingOrNotListening) {
  const std::string missing = dir_ + "/missing.sock";
  EXPECT_EQ(check(tcp("unix:" + missing)).message,
            "connect unix:" + missing + ": No such file or directory");
  // The file of a socket whose process is gone.
  const std::string stale = dir_ + "/stale.sock";
  unixListener(stale);
  EXPECT_EQ(check(tcp("unix:" + stale)).message, "connect unix:" + stale + ": Connection refused");
}

TEST_F(NodeProberTest, TcpAddressThatIsNotNumericIsNotResolved) {
  ProbeResult result = check(tcp("example.com:80"));
  EXPECT_FALSE(result.ok);
  EXPECT_THAT(result.message, HasSubstr("is not a numeric IP address or localhost"));
}

TEST_F(NodeProberTest, HttpExpectsAny2xxByDefault) {
  TinyHttpServer server(*loop_);
  ProbeResult ok = check(http(server.url("/healthz")));
  EXPECT_TRUE(ok.ok) << ok.message;
  EXPECT_EQ(ok.message, "HTTP 200");
  EXPECT_TRUE(check(http(server.url("/created"))).ok);
  ProbeResult error = check(http(server.url("/error")));
  EXPECT_FALSE(error.ok);
  EXPECT_EQ(error.message, "HTTP 500 from " + server.url("/error"));
  EXPECT_EQ(server.requests(), 3);
}

TEST_F(NodeProberTest, HttpExpectedStatusesReplaceTheDefault) {
  TinyHttpServer server(*loop_);
  ProbeSpec spec = http(server.url("/error"));
  spec.expectedStatuses = {500, 503};
  EXPECT_TRUE(check(spec).ok);
  spec.url = server.url("/healthz");
  spec.expectedStatuses = {204, 404};
  ProbeResult result = check(spec);
  EXPECT_FALSE(result.ok);
  EXPECT_EQ(result.message, "HTTP 200 from " + server.url("/healthz") + ", expected 204 or 404");
}

TEST_F(NodeProberTest, HttpRedirectIsTheAnswer) {
  TinyHttpServer server(*loop_);
  ProbeResult result = check(http(server.url("/redirect")));
  EXPECT_FALSE(result.ok);
  EXPECT_EQ(result.message, "HTTP 302 from " + server.url("/redirect"));
  EXPECT_EQ(server.requests(), 1) << "the redirect was followed";
}

// An agent behind a proxy for its downloads still checks local endpoints
// directly.
TEST_F(NodeProberTest, HttpIgnoresProxiesFromTheEnvironment) {
  TinyHttpServer server(*loop_);
  uint16_t port = 0;
  core::UniqueFd deadProxy = tcpSocket(/*listening=*/false, 0, port);
  const std::string proxy = "http://127.0.0.1:" + std::to_string(port);
  ::setenv("http_proxy", proxy.c_str(), 1);
  ::setenv("HTTP_PROXY", proxy.c_str(), 1);
  ProbeResult result = check(http(server.url("/healthz")));
  ::unsetenv("http_proxy");
  ::unsetenv("HTTP_PROXY");
  EXPECT_TRUE(result.ok) << result.message;
}

TEST_F(NodeProberTest, HttpRefusedAndSlow) {
  uint16_t port = 0;
  core::UniqueFd bound = tcpSocket(/*listening=*/false, 0, port);
  ProbeResult refused = check(http("http://127.0.0.1:" + std::to_string(port) + "/healthz"));
  EXPECT_FALSE(refused.ok);
  EXPECT_THAT(refused.message, StartsWith("GET http://127.0.0.1:" + std::to_string(port)));

  TinyHttpServer server(*loop_);
  ProbeSpec spec = http(server.url("/slow"));
  spec.timeout = 200ms;
  ProbeResult slow = check(spec);
  EXPECT_FALSE(slow.ok);
  EXPECT_EQ(slow.message, "timed out after 200ms");
  EXPECT_GE(slow.duration, 200ms);
  EXPECT_EQ(http_->active(), 0u);
}

TEST_F(NodeProberTest, ExecHealthyOnExitZero) {
  ProbeResult ok = check(exec({"/bin/true"}));
  EXPECT_TRUE(ok.ok) << ok.message;
  EXPECT_EQ(ok.message, "exit status 0");
  ProbeResult failed = check(exec({"/bin/false"}));
  EXPECT_FALSE(failed.ok);
  EXPECT_EQ(failed.message, "exit status 1");
  ProbeResult said = check(exec({"/bin/sh", "-c", "echo 'not ready' >&2; exit 3"}));
  EXPECT_EQ(said.message, "exit status 3: not ready");
}

TEST_F(NodeProberTest, ExecPastItsTimeoutIsKilled) {
  ProbeResult result = check(exec({"/bin/sleep", "5"}, 200ms));
  EXPECT_FALSE(result.ok);
  EXPECT_EQ(result.message, "timed out after 200ms");
  EXPECT_LT(result.duration, 5s) << "the check waited for sleep to end";
  EXPECT_EQ(processes_->running(), 0u);
}

TEST_F(NodeProberTest, ExecOfAMissingProgramFails) {
  ProbeResult result = check(exec({dir_ + "/no-such-program"}));
  EXPECT_FALSE(result.ok);
  EXPECT_THAT(result.message, HasSubstr("No such file or directory"));
}

TEST_F(NodeProberTest, ChecksInFlightAreAbandonedWithTheProber) {
  const std::string path = dir_ + "/containerd.sock";
  core::UniqueFd listener = unixListener(path);
  uint16_t port = 0;
  core::UniqueFd hung = tcpSocket(/*listening=*/true, 0, port);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  core::UniqueFd filler(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  ASSERT_EQ(::connect(filler.get(), reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);

  int called = 0;
  prober_->check(tcp("unix:" + path), [&](ProbeResult) { ++called; });
  prober_->check(tcp("127.0.0.1:" + std::to_string(port)), [&](ProbeResult) { ++called; });
  prober_->check(exec({"/bin/true"}), [&](ProbeResult) { ++called; });
  EXPECT_EQ(prober_->connecting(), 1u);
  prober_.reset();
  // Long enough for each of them to have answered.
  bool waited = false;
  auto timer = clock_->createTimer([&] { waited = true; });
  timer->armIn(300ms);
  ASSERT_TRUE(loop_->runUntil([&] { return waited; }));
  EXPECT_EQ(called, 0);
}

}  // namespace
}  // namespace nodewarden::heal
