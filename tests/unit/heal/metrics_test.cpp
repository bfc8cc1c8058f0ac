// Metrics served over real HTTP on 127.0.0.1, scraped the way Prometheus does.

#include "agent/metrics/metrics.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <string>

#include "agent/core/unique_fd.h"

namespace nodewarden::metrics {
namespace {

using namespace std::chrono_literals;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

struct HttpResponse {
  std::string head;
  std::string body;
};

int portOf(const std::string& address) { return std::stoi(address.substr(address.rfind(':') + 1)); }

core::UniqueFd connectTo(int port) {
  core::UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  EXPECT_TRUE(fd.isValid()) << std::strerror(errno);
  // A server that stops answering fails the test instead of hanging it.
  timeval timeout{.tv_sec = 10, .tv_usec = 0};
  ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0) {
    return core::UniqueFd();
  }
  return fd;
}

// GET `path` with HTTP/1.0, so the server closes the connection after the body.
HttpResponse get(const std::string& address, const std::string& path = "/metrics") {
  core::UniqueFd fd = connectTo(portOf(address));
  if (!fd.isValid()) {
    ADD_FAILURE() << "connect to " << address << ": " << std::strerror(errno);
    return {};
  }
  const std::string request = "GET " + path + " HTTP/1.0\r\nHost: " + address + "\r\n\r\n";
  EXPECT_EQ(::write(fd.get(), request.data(), request.size()),
            static_cast<ssize_t>(request.size()));
  std::string response;
  char buffer[4096];
  for (;;) {
    const ssize_t n = ::read(fd.get(), buffer, sizeof(buffer));
    if (n < 0) ADD_FAILURE() << "read from " << address << ": " << std::strerror(errno);
    if (n <= 0) break;
    response.append(buffer, static_cast<size_t>(n));
  }
  const size_t end = response.find("\r\n\r\n");
  if (end == std::string::npos) return {response, ""};
  return {response.substr(0, end), response.substr(end + 4)};
}

// "200" from "HTTP/1.0 200 OK\r\n...".
std::string statusOf(const HttpResponse& response) {
  const size_t space = response.head.find(' ');
  if (space == std::string::npos) return "";
  return response.head.substr(space + 1, 3);
}

std::unique_ptr<Metrics> serveOnFreePort() {
  auto metrics = Metrics::serve("127.0.0.1:0");
  EXPECT_TRUE(metrics.isOk()) << metrics.status().message();
  return metrics.isOk() ? std::move(metrics).value() : nullptr;
}

// The value of the series written exactly as `series` (name and labels), or
// "" when the scrape does not have it.
std::string valueOf(const std::string& body, const std::string& series) {
  const std::string prefix = "\n" + series + " ";
  const size_t at = ("\n" + body).find(prefix);
  if (at == std::string::npos) return "";
  const size_t start = at + prefix.size() - 1;
  return body.substr(start, body.find('\n', start) - start);
}

TEST(Metrics, ServesOnTheBoundPort) {
  auto metrics = serveOnFreePort();
  ASSERT_NE(metrics, nullptr);
  EXPECT_THAT(metrics->address(), StartsWith("127.0.0.1:"));
  EXPECT_NE(portOf(metrics->address()), 0);

  const HttpResponse response = get(metrics->address());
  EXPECT_EQ(statusOf(response), "200");
  EXPECT_THAT(response.head, HasSubstr("text/plain"));
  EXPECT_THAT(response.body, HasSubstr("# TYPE nodewarden_converges_total counter"));
  EXPECT_EQ(valueOf(response.body, "nodewarden_paused"), "0");
  EXPECT_EQ(valueOf(response.body, R"(nodewarden_converges_total{result="success"})"), "0");
  EXPECT_EQ(valueOf(response.body, R"(nodewarden_converges_total{result="failure"})"), "0");
  EXPECT_EQ(valueOf(response.body, "nodewarden_last_converge_timestamp_seconds"), "0");
}

TEST(Metrics, CountsRestartsByUnitAndReason) {
  auto metrics = serveOnFreePort();
  ASSERT_NE(metrics, nullptr);
  metrics->unitRestarted("kubelet.service", restart_reason::kFailed);
  metrics->unitRestarted("kubelet.service", restart_reason::kFailed);
  metrics->unitRestarted("kubelet.service", restart_reason::kProbe);
  metrics->unitRestarted("containerd.service", restart_reason::kDependency);

  const std::string body = get(metrics->address()).body;
  auto restarts = [&](const std::string& unit, const std::string& reason) {
    return valueOf(
        body, "nodewarden_unit_restarts_total{reason=\"" + reason + "\",unit=\"" + unit + "\"}");
  };
  EXPECT_EQ(restarts("kubelet.service", "failed"), "2");
  EXPECT_EQ(restarts("kubelet.service", "probe"), "1");
  // The other reasons are there from the first restart on, at 0.
  EXPECT_EQ(restarts("kubelet.service", "dependency"), "0");
  EXPECT_EQ(restarts("kubelet.service", "converge"), "0");
  EXPECT_EQ(restarts("containerd.service", "dependency"), "1");
  EXPECT_EQ(restarts("containerd.service", "failed"), "0");
}

TEST(Metrics, RecordsProbeResults) {
  auto metrics = serveOnFreePort();
  ASSERT_NE(metrics, nullptr);
  metrics->probeResult("kubelet.service", true, 250ms);
  metrics->probeResult("kubelet.service", true, 100ms);
  metrics->probeResult("kubelet.service", false, 1500ms);
  metrics->probeResult("containerd.service", true, 2ms);

  const std::string body = get(metrics->address()).body;
  EXPECT_EQ(
      valueOf(body, R"(nodewarden_probe_checks_total{result="success",unit="kubelet.service"})"),
      "2");
  EXPECT_EQ(
      valueOf(body, R"(nodewarden_probe_checks_total{result="failure",unit="kubelet.service"})"),
      "1");
  EXPECT_EQ(valueOf(body, R"(nodewarden_probe_duration_seconds{unit="kubelet.service"})"), "1.5");
  EXPECT_EQ(valueOf(body, R"(nodewarden_probe_up{unit="kubelet.service"})"), "0");
  EXPECT_EQ(valueOf(body, R"(nodewarden_probe_up{unit="containerd.service"})"), "1");
  EXPECT_EQ(valueOf(body, R"(nodewarden_probe_duration_seconds{unit="containerd.service"})"),
            "0.002");
  // A unit with a probe has its restart counters at 0 before the first restart.
  EXPECT_EQ(
      valueOf(body, R"(nodewarden_unit_restarts_total{reason="probe",unit="kubelet.service"})"),
      "0");
}

TEST(Metrics, ShowsConditions) {
  auto metrics = serveOnFreePort();
  ASSERT_NE(metrics, nullptr);
  metrics->condition("kubelet.service", "ProbeFailing", true);
  metrics->condition("node", "DiskPressure", true);
  metrics->condition("node", "DiskPressure", false);

  const std::string body = get(metrics->address()).body;
  EXPECT_EQ(valueOf(body, R"(nodewarden_condition{subject="kubelet.service",type="ProbeFailing"})"),
            "1");
  EXPECT_EQ(valueOf(body, R"(nodewarden_condition{subject="node",type="DiskPressure"})"), "0");
}

TEST(Metrics, RecordsConvergeRunsAndPause) {
  auto metrics = serveOnFreePort();
  ASSERT_NE(metrics, nullptr);
  const auto before = std::chrono::system_clock::now();
  metrics->converged(2s, true, 3, 0);
  metrics->converged(500ms, false, 1, 2);
  const auto after = std::chrono::system_clock::now();
  metrics->paused(true);

  const std::string body = get(metrics->address()).body;
  EXPECT_THAT(body, HasSubstr("# TYPE nodewarden_converge_duration_seconds histogram"));
  EXPECT_EQ(valueOf(body, "nodewarden_converge_duration_seconds_count"), "2");
  EXPECT_EQ(valueOf(body, "nodewarden_converge_duration_seconds_sum"), "2.5");
  EXPECT_EQ(valueOf(body, R"(nodewarden_converge_duration_seconds_bucket{le="0.25"})"), "0");
  EXPECT_EQ(valueOf(body, R"(nodewarden_converge_duration_seconds_bucket{le="1"})"), "1");
  EXPECT_EQ(valueOf(body, R"(nodewarden_converge_duration_seconds_bucket{le="2.5"})"), "2");
  EXPECT_EQ(valueOf(body, R"(nodewarden_converge_duration_seconds_bucket{le="+Inf"})"), "2");
  EXPECT_EQ(valueOf(body, R"(nodewarden_converges_total{result="success"})"), "1");
  EXPECT_EQ(valueOf(body, R"(nodewarden_converges_total{result="failure"})"), "1");
  // The last run's figures, not a sum.
  EXPECT_EQ(valueOf(body, "nodewarden_converge_changes"), "1");
  EXPECT_EQ(valueOf(body, "nodewarden_converge_failures"), "2");
  EXPECT_EQ(valueOf(body, "nodewarden_paused"), "1");

  const std::string timestamp = valueOf(body, "nodewarden_last_converge_timestamp_seconds");
  ASSERT_FALSE(timestamp.empty());
  const auto seconds = [](std::chrono::system_clock::time_point t) {
    return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
  };
  EXPECT_GE(std::stod(timestamp), static_cast<double>(seconds(before)));
  EXPECT_LE(std::stod(timestamp), static_cast<double>(seconds(after)));

  metrics->paused(false);
  EXPECT_EQ(valueOf(get(metrics->address()).body, "nodewarden_paused"), "0");
}

TEST(Metrics, ForgetUnitRemovesItsSeries) {
  auto metrics = serveOnFreePort();
  ASSERT_NE(metrics, nullptr);
  for (const char* unit : {"old.service", "kubelet.service"}) {
    metrics->unitRestarted(unit, restart_reason::kFailed);
    metrics->probeResult(unit, false, 1s);
    metrics->condition(unit, "Degraded", true);
    metrics->condition(unit, "ProbeFailing", true);
  }
  metrics->condition("node", "DiskPressure", true);
  ASSERT_THAT(get(metrics->address()).body, HasSubstr("old.service"));

  metrics->forgetUnit("old.service");
  metrics->forgetUnit("never-seen.service");

  std::string body = get(metrics->address()).body;
  EXPECT_THAT(body, Not(HasSubstr("old.service")));
  EXPECT_EQ(
      valueOf(body, R"(nodewarden_unit_restarts_total{reason="failed",unit="kubelet.service"})"),
      "1");
  EXPECT_EQ(valueOf(body, R"(nodewarden_probe_up{unit="kubelet.service"})"), "0");
  EXPECT_EQ(valueOf(body, R"(nodewarden_condition{subject="kubelet.service",type="Degraded"})"),
            "1");
  EXPECT_EQ(valueOf(body, R"(nodewarden_condition{subject="node",type="DiskPressure"})"), "1");

  // A unit that comes back starts from nothing.
  metrics->unitRestarted("old.service", restart_reason::kConverge);
  body = get(metrics->address()).body;
  EXPECT_EQ(
      valueOf(body, R"(nodewarden_unit_restarts_total{reason="converge",unit="old.service"})"),
      "1");
  EXPECT_EQ(valueOf(body, R"(nodewarden_unit_restarts_total{reason="failed",unit="old.service"})"),
            "0");
  EXPECT_THAT(body, Not(HasSubstr(R"(subject="old.service")")));
}

TEST(Metrics, ServesOnlyMetrics) {
  auto metrics = serveOnFreePort();
  ASSERT_NE(metrics, nullptr);
  EXPECT_EQ(statusOf(get(metrics->address(), "/")), "404");
  EXPECT_EQ(statusOf(get(metrics->address(), "/etc/passwd")), "404");
}

TEST(Metrics, DisabledCountsAndServesNothing) {
  auto metrics = Metrics::disabled();
  metrics->unitRestarted("kubelet.service", restart_reason::kFailed);
  metrics->probeResult("kubelet.service", false, 1s);
  metrics->condition("kubelet.service", "Degraded", true);
  metrics->converged(1s, false, 1, 1);
  metrics->paused(true);
  metrics->forgetUnit("kubelet.service");
  EXPECT_EQ(metrics->address(), "");
}

TEST(Metrics, PortTakenIsAnErrorNamingTheAddress) {
  core::UniqueFd taken(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  ASSERT_TRUE(taken.isValid());
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(taken.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(::listen(taken.get(), 1), 0);
  socklen_t length = sizeof(addr);
  ASSERT_EQ(::getsockname(taken.get(), reinterpret_cast<sockaddr*>(&addr), &length), 0);
  const std::string address = "127.0.0.1:" + std::to_string(ntohs(addr.sin_port));

  auto metrics = Metrics::serve(address);
  ASSERT_FALSE(metrics.isOk());
  EXPECT_EQ(metrics.status().message(), "serve metrics on " + address + ": Address already in use");
}

TEST(Metrics, SecondServerOnTheSameAddressFails) {
  auto first = serveOnFreePort();
  ASSERT_NE(first, nullptr);
  auto second = Metrics::serve(first->address());
  ASSERT_FALSE(second.isOk());
  EXPECT_THAT(second.status().message(),
              AllOf(HasSubstr(first->address()), HasSubstr("Address already in use")));
  // The first one still answers.
  EXPECT_EQ(statusOf(get(first->address())), "200");
}

TEST(Metrics, AddressNotOnThisMachineIsAnError) {
  // 192.0.2.0/24 is reserved for documentation: never a local address.
  auto metrics = Metrics::serve("192.0.2.1:9558");
  ASSERT_FALSE(metrics.isOk());
  EXPECT_THAT(metrics.status().message(),
              AllOf(HasSubstr("192.0.2.1:9558"), HasSubstr("Cannot assign requested address")));
}

TEST(Metrics, RejectsWhatIsNotHostAndPort) {
  for (const char* address :
       {"9558", "localhost", ":9558", "127.0.0.1:", "127.0.0.1:95x8", "127.0.0.1:1,127.0.0.1:2"}) {
    auto metrics = Metrics::serve(address);
    ASSERT_FALSE(metrics.isOk()) << address;
    EXPECT_EQ(metrics.status().code(), core::Status::Code::kInvalidArgument) << address;
    EXPECT_EQ(metrics.status().message(),
              std::string("serve metrics on ") + address + ": not host:port");
  }
}

TEST(Metrics, StopsServingWhenDestroyed) {
  std::string address;
  {
    auto metrics = serveOnFreePort();
    ASSERT_NE(metrics, nullptr);
    address = metrics->address();
    EXPECT_EQ(statusOf(get(address)), "200");
  }
  EXPECT_FALSE(connectTo(portOf(address)).isValid());
  // The port is free again for the next agent start.
  auto again = Metrics::serve(address);
  ASSERT_TRUE(again.isOk()) << again.status().message();
  EXPECT_EQ(again.value()->address(), address);
}

}  // namespace
}  // namespace nodewarden::metrics
