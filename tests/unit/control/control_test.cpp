#include "agent/control/control_server.h"

#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "agent/control/control_client.h"
#include "agent/core/loop.h"

namespace nodewarden::control {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

// Answers as the daemon would, and remembers what it was asked.
class FakeHandler final : public ControlHandler {
 public:
  json status() override {
    ++statusCalls;
    return statusResult;
  }
  core::Result<json> pause(const PauseRequest& request) override {
    pauses.push_back(request);
    if (!pauseError.empty()) return core::Status::invalidArgument(pauseError);
    return json{{"paused", {{"node", nullptr}, {"units", json::object()}}}};
  }
  core::Result<json> resume(const std::optional<std::string>& unit) override {
    resumes.push_back(unit);
    return json{{"resumed", true}};
  }

  json statusResult = {{"agent", {{"version", "0.1.0"}, {"pid", 812}}},
                       {"events", json::array({{{"reason", "Restarted"}}})}};
  std::string pauseError;
  int statusCalls = 0;
  std::vector<PauseRequest> pauses;
  std::vector<std::optional<std::string>> resumes;
};

class ControlServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string templ = std::filesystem::temp_directory_path() / "nodewarden-control-XXXXXX";
    if (::mkdtemp(templ.data()) == nullptr) {
      FAIL() << "mkdtemp " << templ << ": " << std::strerror(errno);
    }
    dir_ = templ;
    // A directory that does not exist yet, as /run/nodewarden at first boot.
    path_ = dir_ + "/run/agent.sock";
    auto loop = core::Loop::create();
    ASSERT_TRUE(loop.isOk()) << loop.status().message();
    loop_ = std::move(loop).value();
    clock_ = std::make_unique<core::LoopClock>(*loop_);
  }
  void TearDown() override {
    server_.reset();
    std::filesystem::remove_all(dir_);
  }

  void startServer(ControlServer::Options options = {}) {
    options.path = path_;
    auto server = ControlServer::start(*loop_, *clock_, handler_, std::move(options));
    ASSERT_TRUE(server.isOk()) << server.status().message();
    server_ = std::move(server).value();
  }

  // The client blocks, so it runs on a thread while the loop serves it here.
  core::Result<json> onThread(const std::function<core::Result<json>()>& work) {
    std::optional<core::Result<json>> result;
    std::thread thread([&] {
      auto r = work();
      loop_->post([&result, r = std::move(r)]() mutable { result.emplace(std::move(r)); });
    });
    core::Status ran = loop_->runUntil([&] { return result.has_value(); });
    thread.join();
    EXPECT_TRUE(ran.isOk()) << ran.message();
    return result ? std::move(*result) : core::Result<json>(core::Status::internal("no result"));
  }
  core::Result<json> call(const json& request) {
    return onThread([&] { return ControlClient(path_, 5s).call(request); });
  }

  // Sends `bytes` as they are (optionally closing the sending side), and
  // returns everything the server wrote before it closed.
  std::string raw(const std::string& bytes, bool shutdownWrite = false) {
    auto answer = onThread([&]() -> core::Result<json> {
      core::UniqueFd fd = connectRaw();
      (void)!::send(fd.get(), bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (shutdownWrite) ::shutdown(fd.get(), SHUT_WR);
      return json(readAll(fd.get()));
    });
    return answer ? answer->get<std::string>() : answer.status().message();
  }

  core::UniqueFd connectRaw() {
    core::UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::strncpy(address.sun_path, path_.c_str(), sizeof(address.sun_path) - 1);
    EXPECT_EQ(::connect(fd.get(), reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0)
        << std::strerror(errno);
    return fd;
  }

  static std::string readAll(int fd) {
    std::string out;
    char chunk[4096];
    for (ssize_t n; (n = ::read(fd, chunk, sizeof(chunk))) > 0;) out.append(chunk, n);
    return out;
  }

  static json parseLine(const std::string& line) {
    EXPECT_TRUE(line.ends_with("\n")) << line;
    return json::parse(line, nullptr, false);
  }

  std::string dir_;
  std::string path_;
  std::unique_ptr<core::Loop> loop_;
  std::unique_ptr<core::LoopClock> clock_;
  FakeHandler handler_;
  std::unique_ptr<ControlServer> server_;
};

TEST_F(ControlServerTest, StatusMakesTheRoundTripThroughTheClient) {
  startServer();
  auto result = call({{"command", "status"}});
  ASSERT_TRUE(result.isOk()) << result.status().message();
  EXPECT_EQ(*result, handler_.statusResult);
  EXPECT_EQ(handler_.statusCalls, 1);

  // And again: one exchange per connection, the server keeps serving.
  auto again = call({{"command", "status"}});
  ASSERT_TRUE(again.isOk()) << again.status().message();
  EXPECT_EQ(handler_.statusCalls, 2);
}

TEST_F(ControlServerTest, TheSocketIsRootsAloneInADirectoryMadeForIt) {
  startServer();
  struct stat st {};
  ASSERT_EQ(::lstat(path_.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  ASSERT_EQ(::stat((dir_ + "/run").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0700u);
}

TEST_F(ControlServerTest, StoppingRemovesTheSocket) {
  startServer();
  ASSERT_TRUE(std::filesystem::exists(path_));
  server_.reset();
  EXPECT_FALSE(std::filesystem::exists(path_));
  auto result = call({{"command", "status"}});
  ASSERT_FALSE(result.isOk());
  EXPECT_EQ(result.status().message(),
            "cannot reach the agent at " + path_ +
                ": is nodewarden-agent running? (systemctl status nodewarden-agent)");
}

TEST_F(ControlServerTest, ASocketLeftByAKilledAgentIsReplaced) {
  ASSERT_EQ(::mkdir((dir_ + "/run").c_str(), 0700), 0);
  {
    // Bound and closed, as a killed agent leaves it: nobody listens.
    core::UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM, 0));
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::strncpy(address.sun_path, path_.c_str(), sizeof(address.sun_path) - 1);
    ASSERT_EQ(::bind(fd.get(), reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
  }
  ASSERT_TRUE(std::filesystem::exists(path_));
  startServer();
  EXPECT_TRUE(call({{"command", "status"}}).isOk());
}

TEST_F(ControlServerTest, ASecondAgentDoesNotTakeTheSocketOfOneThatRuns) {
  startServer();
  FakeHandler other;
  auto second = ControlServer::start(*loop_, *clock_, other, {.path = path_});
  ASSERT_FALSE(second.isOk());
  EXPECT_NE(second.status().message().find("another agent is listening on " + path_),
            std::string::npos)
      << second.status().message();
  EXPECT_TRUE(call({{"command", "status"}}).isOk());  // the first still answers
}

TEST_F(ControlServerTest, PathThatIsNotASocketIsLeftAlone) {
  ASSERT_EQ(::mkdir((dir_ + "/run").c_str(), 0700), 0);
  { std::ofstream(path_) << "precious"; }
  auto server = ControlServer::start(*loop_, *clock_, handler_, {.path = path_});
  ASSERT_FALSE(server.isOk());
  EXPECT_NE(server.status().message().find("is not a socket"), std::string::npos);
  EXPECT_TRUE(std::filesystem::is_regular_file(path_));
}

TEST_F(ControlServerTest, PauseAndResumeReachTheHandlerWithTheirFields) {
  startServer();
  auto paused = call({{"command", "pause"},
                      {"reason", "kernel upgrade"},
                      {"for", "1h30m"},
                      {"unit", "kubelet.service"}});
  ASSERT_TRUE(paused.isOk()) << paused.status().message();
  EXPECT_TRUE((*paused)["paused"].is_object());
  ASSERT_EQ(handler_.pauses.size(), 1u);
  EXPECT_EQ(handler_.pauses[0].reason, "kernel upgrade");
  EXPECT_EQ(handler_.pauses[0].duration, core::Duration(90min));
  EXPECT_EQ(handler_.pauses[0].unit, "kubelet.service");

  ASSERT_TRUE(call({{"command", "pause"}, {"reason", "r"}, {"unit", nullptr}}).isOk());
  ASSERT_EQ(handler_.pauses.size(), 2u);
  EXPECT_FALSE(handler_.pauses[1].duration.has_value());
  EXPECT_FALSE(handler_.pauses[1].unit.has_value());

  auto resumed = call({{"command", "resume"}, {"unit", "kubelet.service"}});
  ASSERT_TRUE(resumed.isOk()) << resumed.status().message();
  EXPECT_EQ(*resumed, (json{{"resumed", true}}));
  ASSERT_TRUE(call({{"command", "resume"}}).isOk());
  ASSERT_EQ(handler_.resumes.size(), 2u);
  EXPECT_EQ(handler_.resumes[0], "kubelet.service");
  EXPECT_EQ(handler_.resumes[1], std::nullopt);
}

TEST_F(ControlServerTest, TheHandlersRefusalReachesTheOperator) {
  startServer();
  handler_.pauseError = "a pause needs a reason (--reason TEXT)";
  auto response = onThread([&] {
    return ControlClient(path_).exchange({{"command", "pause"}, {"reason", ""}});
  });
  ASSERT_TRUE(response.isOk()) << response.status().message();
  EXPECT_EQ(*response, (json{{"ok", false}, {"error", handler_.pauseError}}));
  auto called = call({{"command", "pause"}, {"reason", ""}});
  ASSERT_FALSE(called.isOk());
  EXPECT_EQ(called.status().message(), handler_.pauseError);
}

TEST_F(ControlServerTest, BadFieldsAreRefusedBeforeTheHandler) {
  startServer();
  auto badDuration = call({{"command", "pause"}, {"reason", "r"}, {"for", "soon"}});
  ASSERT_FALSE(badDuration.isOk());
  EXPECT_EQ(badDuration.status().message(),
            "\"for\": \"soon\" is not a duration (examples: 90s, 5m, 1h30m)");
  auto badUnit = call({{"command", "resume"}, {"unit", 7}});
  ASSERT_FALSE(badUnit.isOk());
  EXPECT_EQ(badUnit.status().message(), "\"unit\" must be a string");
  EXPECT_TRUE(handler_.pauses.empty());
  EXPECT_TRUE(handler_.resumes.empty());
}

TEST_F(ControlServerTest, UnknownCommandsAndMissingCommandsGetAClearError) {
  startServer();
  auto unknown = call({{"command", "restart"}});
  ASSERT_FALSE(unknown.isOk());
  EXPECT_EQ(unknown.status().message(),
            "unknown command \"restart\": expected status, pause or resume");
  auto missing = call({{"unit", "kubelet.service"}});
  ASSERT_FALSE(missing.isOk());
  EXPECT_EQ(missing.status().message(), "the request has no \"command\" (status, pause or resume)");
}

TEST_F(ControlServerTest, MalformedJsonGetsAClearError) {
  startServer();
  const json answer = parseLine(raw("{\"command\": stat\n"));
  EXPECT_EQ(answer["ok"], false);
  const std::string error = answer["error"];
  EXPECT_TRUE(error.starts_with("malformed request: parse error at line 1, column")) << error;
  EXPECT_NE(error.find("{\"command\": \"status\"}"), std::string::npos) << error;

  const json notObject = parseLine(raw("[1, 2]\n"));
  EXPECT_EQ(notObject["error"],
            "malformed request: not a JSON object; send one like {\"command\": \"status\"}");
  EXPECT_EQ(handler_.statusCalls, 0);
}

TEST_F(ControlServerTest, ARequestEndedByClosingInsteadOfANewlineIsAnswered) {
  startServer();
  const json answer = parseLine(raw(R"({"command": "status"})", /*shutdownWrite=*/true));
  EXPECT_EQ(answer["ok"], true);
  EXPECT_EQ(answer["result"], handler_.statusResult);
}

TEST_F(ControlServerTest, AnOversizeRequestIsRefusedWithoutWaitingForItsEnd) {
  startServer({.maxRequestBytes = 1024});
  const json answer = parseLine(raw(std::string(4000, ' ')));  // no newline, never ends
  EXPECT_EQ(answer, (json{{"ok", false}, {"error", "the request is larger than 1024 bytes"}}));
}

TEST_F(ControlServerTest, ASilentClientTimesOutWithoutHoldingUpOthers) {
  startServer({.timeout = 300ms});
  core::UniqueFd silent = connectRaw();
  const auto start = std::chrono::steady_clock::now();

  // Another client is served at once while the silent one waits.
  auto result = call({{"command", "status"}});
  ASSERT_TRUE(result.isOk()) << result.status().message();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 300ms);
  EXPECT_EQ(server_->connections(), 1u);

  bool closed = false;
  std::string answer;
  auto watch = loop_->addIo(silent.get(), EPOLLIN, [&](uint32_t) {
    answer = readAll(silent.get());
    closed = true;
  });
  ASSERT_TRUE(watch.isOk());
  ASSERT_TRUE(loop_->runUntil([&] { return closed; }).isOk());
  EXPECT_GE(std::chrono::steady_clock::now() - start, 300ms);
  EXPECT_EQ(
      parseLine(answer),
      (json{{"ok", false},
            {"error", "no complete request within 300ms; send one JSON object on one line"}}));
  EXPECT_EQ(server_->connections(), 0u);
}

TEST_F(ControlServerTest, ConnectionsPastTheBoundAreToldTheAgentIsBusy) {
  startServer({.maxConnections = 1});
  core::UniqueFd silent = connectRaw();
  // Let the server accept the silent one first.
  ASSERT_TRUE(loop_->runUntil([&] { return server_->connections() == 1; }).isOk());
  auto result = call({{"command", "status"}});
  ASSERT_FALSE(result.isOk());
  EXPECT_EQ(result.status().message(), "the agent is busy with 1 other request; try again");
  EXPECT_EQ(handler_.statusCalls, 0);
}

TEST_F(ControlServerTest, TheClientSaysWhenTheAgentDoesNotAnswer) {
  ASSERT_EQ(::mkdir((dir_ + "/run").c_str(), 0700), 0);
  // Listening, never accepting: an agent whose loop is stuck.
  core::UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM, 0));
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::strncpy(address.sun_path, path_.c_str(), sizeof(address.sun_path) - 1);
  ASSERT_EQ(::bind(fd.get(), reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
  ASSERT_EQ(::listen(fd.get(), 4), 0);
  auto result = ControlClient(path_, 200ms).call({{"command", "status"}});
  ASSERT_FALSE(result.isOk());
  EXPECT_EQ(result.status().code(), core::Status::Code::kTimeout);
  EXPECT_EQ(result.status().message(), "the agent at " + path_ + " did not answer within 200ms");
}

// What a user other than root sees, both through the socket's mode (the
// normal case) and, with the modes opened up, through the server's own
// check of the peer. Runs the client in a child that gives up root.
class ControlServerPeerTest : public ControlServerTest {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root to run a client as another user";
    ControlServerTest::SetUp();
  }

  // The message the client got, run as uid 65534 (nobody).
  std::string callAsNobody() {
    int pipeFds[2];
    if (::pipe2(pipeFds, O_CLOEXEC) != 0) return "pipe failed";
    core::UniqueFd readEnd(pipeFds[0]), writeEnd(pipeFds[1]);
    const pid_t pid = ::fork();
    if (pid == 0) {
      std::string message = "setuid failed";
      if (::setgid(65534) == 0 && ::setuid(65534) == 0) {
        auto result = ControlClient(path_, 5s).call({{"command", "status"}});
        message = result ? "ok" : result.status().message();
      }
      (void)!::write(writeEnd.get(), message.data(), message.size());
      ::_exit(0);
    }
    writeEnd.reset();
    std::string message;
    bool done = false;
    auto watch = loop_->addIo(readEnd.get(), EPOLLIN, [&](uint32_t) {
      message = readAll(readEnd.get());
      done = true;
    });
    EXPECT_TRUE(watch.isOk());
    EXPECT_TRUE(loop_->runUntil([&] { return done; }).isOk());
    int status = 0;
    ::waitpid(pid, &status, 0);
    return message;
  }
};

TEST_F(ControlServerPeerTest, TheSocketsModeKeepsOtherUsersOut) {
  startServer();
  EXPECT_EQ(callAsNobody(), "permission denied: run as root");
  EXPECT_EQ(handler_.statusCalls, 0);
}

TEST_F(ControlServerPeerTest, TheServerRefusesAPeerThatIsNotRootEvenWhenTheModeLetsItIn) {
  startServer();
  ASSERT_EQ(::chmod(dir_.c_str(), 0755), 0);
  ASSERT_EQ(::chmod((dir_ + "/run").c_str(), 0755), 0);
  ASSERT_EQ(::chmod(path_.c_str(), 0666), 0);
  EXPECT_EQ(callAsNobody(), "permission denied: run as root");
  EXPECT_EQ(handler_.statusCalls, 0);
  EXPECT_TRUE(call({{"command", "status"}}).isOk());  // root still is
}

}  // namespace
}  // namespace nodewarden::control
