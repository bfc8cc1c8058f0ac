// CurlHttpClient against a real HTTPS server on 127.0.0.1, with a CA, server
// and client certificates made for the test run.

#include "agent/core/curl_http_client.h"

#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "agent/core/atomic_file.h"

namespace nodewarden::core {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;

// Serves <root>/<name> at /files/<name> (with Content-Length) and at
// /stream/<name> (without: read until the connection closes), and a few
// paths that misbehave. With a client CA it requires a client certificate.
constexpr std::string_view kServer = R"PY(
import http.server, os, socketserver, ssl, sys, time

root, cert, key, client_ca = sys.argv[1:5]
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(cert, key)
if client_ca != "-":
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_verify_locations(client_ca)

class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, code, body=b"", location=None, length=True):
        self.send_response(code)
        if location:
            self.send_header("Location", location)
        if length:
            self.send_header("Content-Length", str(len(body)))
        else:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        path = self.path
        for prefix, length in (("/files/", True), ("/stream/", False)):
            if path.startswith(prefix):
                try:
                    with open(os.path.join(root, path[len(prefix):]), "rb") as f:
                        return self.reply(200, f.read(), length=length)
                except OSError:
                    return self.reply(404, b"no such file\n")
        if path == "/slow":
            time.sleep(60)
            return self.reply(200, b"late")
        if path == "/redirect":
            return self.reply(302, location="/files/small")
        if path == "/loop":
            return self.reply(302, location="/loop")
        if path == "/to-http":
            return self.reply(302, location="http://127.0.0.1:9/files/small")
        return self.reply(404, b"no such path\n")

    def do_POST(self):
        # Echoes the body and its type, as "TYPE\nBODY".
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.reply(201, self.headers.get("Content-Type", "").encode() + b"\n" + body)

class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    request_queue_size = 64

    # Clients that hang up (timeouts, refused certificates) are expected.
    def handle_error(self, request, client_address):
        pass

    # The handshake in the request's own thread, so a slow or failing
    # client holds up no other.
    def finish_request(self, request, client_address):
        try:
            request = context.wrap_socket(request, server_side=True)
        except (OSError, ssl.SSLError):
            return
        super().finish_request(request, client_address)

server = Server(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
)PY";

void run(const std::string& command) {
  ASSERT_EQ(std::system((command + " >/dev/null 2>&1").c_str()), 0) << command;
}

// A CA and certificates it signed for a server on 127.0.0.1 and a client;
// another CA that signed nothing here.
void makeCertificates(const std::string& dir) {
  const std::string ec = " -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
  for (const char* ca : {"ca", "other-ca"}) {
    run("openssl req -x509" + ec + " -days 2 -keyout " + dir + "/" + ca + ".key -out " + dir + "/" +
        ca + ".pem -subj /CN=" + ca +
        " -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign");
  }
  for (const std::string name : {"server", "client"}) {
    const std::string base = dir + "/" + name;
    ASSERT_TRUE(writeFileAtomic(base + ".ext",
                                name == "server" ? "subjectAltName=IP:127.0.0.1\n"
                                                   "extendedKeyUsage=serverAuth\n"
                                                 : "extendedKeyUsage=clientAuth\n",
                                {}));
    run("openssl req -new" + ec + " -keyout " + base + ".key -out " + base +
        ".csr -subj /CN=" + (name == "server" ? "127.0.0.1" : "node-1"));
    run("openssl x509 -req -days 2 -in " + base + ".csr -CA " + dir + "/ca.pem -CAkey " + dir +
        "/ca.key -CAcreateserial -out " + base + ".pem -extfile " + base + ".ext");
  }
}

// The Python server as a child process; stopped by its PID.
class ServerProcess {
 public:
  void start(const std::string& dir, const std::string& clientCa) {
    int out[2];
    ASSERT_EQ(::pipe(out), 0);
    pid_ = ::fork();
    ASSERT_GE(pid_, 0);
    if (pid_ == 0) {
      ::dup2(out[1], STDOUT_FILENO);
      ::close(out[0]);
      ::close(out[1]);
      const std::string script = dir + "/server.py", files = dir + "/files",
                        cert = dir + "/server.pem", key = dir + "/server.key";
      ::execlp("python3", "python3", script.c_str(), files.c_str(), cert.c_str(), key.c_str(),
               clientCa.c_str(), nullptr);
      ::_exit(127);
    }
    ::close(out[1]);
    FILE* stream = ::fdopen(out[0], "r");
    char line[32] = {};
    const bool read = std::fgets(line, sizeof(line), stream) != nullptr;
    std::fclose(stream);
    ASSERT_TRUE(read) << "the test server did not start";
    port_ = std::atoi(line);
    ASSERT_GT(port_, 0);
  }

  void stop() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }

  std::string url(const std::string& path) const {
    return "https://127.0.0.1:" + std::to_string(port_) + path;
  }

 private:
  pid_t pid_ = -1;
  int port_ = 0;
};

class CurlHttpClientTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    std::string templ =
        (std::filesystem::temp_directory_path() / "nodewarden-curl-XXXXXX").string();
    ASSERT_NE(::mkdtemp(templ.data()), nullptr) << std::strerror(errno);
    dir_ = templ;
    std::filesystem::create_directory(dir_ + "/files");
    ASSERT_TRUE(writeFileAtomic(dir_ + "/server.py", kServer, {}));
    ASSERT_TRUE(writeFileAtomic(dir_ + "/files/small", "small artifact\n", {}));
    ASSERT_TRUE(writeFileAtomic(dir_ + "/files/big", std::string(300'000, 'b'), {}));
    ASSERT_NO_FATAL_FAILURE(makeCertificates(dir_));
    server_ = new ServerProcess;
    ASSERT_NO_FATAL_FAILURE(server_->start(dir_, "-"));
    mutualServer_ = new ServerProcess;
    ASSERT_NO_FATAL_FAILURE(mutualServer_->start(dir_, dir_ + "/ca.pem"));
  }

  static void TearDownTestSuite() {
    for (ServerProcess* server : {server_, mutualServer_}) {
      if (server) server->stop();
      delete server;
    }
    server_ = mutualServer_ = nullptr;
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }

  void SetUp() override {
    auto loop = Loop::create();
    ASSERT_TRUE(loop) << loop.status().message();
    loop_ = std::move(*loop);
    auto client = CurlHttpClient::create(*loop_);
    ASSERT_TRUE(client) << client.status().message();
    client_ = std::move(*client);
  }

  HttpRequest request(const std::string& path) const {
    return HttpRequest{.url = server_->url(path), .caFile = dir_ + "/ca.pem"};
  }

  Result<HttpResponse> fetch(HttpRequest request) {
    std::optional<Result<HttpResponse>> result;
    client_->get(std::move(request), [&](Result<HttpResponse> r) { result.emplace(std::move(r)); });
    EXPECT_FALSE(result.has_value()) << "the callback ran inside get()";
    Status s = loop_->runUntil([&] { return result.has_value(); });
    EXPECT_TRUE(s) << s.message();
    EXPECT_EQ(client_->active(), 0u);
    return result ? std::move(*result) : Result<HttpResponse>(Status::internal("no result"));
  }

  static inline std::string dir_;
  static inline ServerProcess* server_ = nullptr;
  static inline ServerProcess* mutualServer_ = nullptr;
  std::unique_ptr<Loop> loop_;
  std::unique_ptr<CurlHttpClient> client_;
};

TEST_F(CurlHttpClientTest, DownloadsIntoMemory) {
  auto response = fetch(request("/files/small"));
  ASSERT_TRUE(response) << response.status().message();
  EXPECT_EQ(response->status, 200);
  EXPECT_EQ(response->body, "small artifact\n");
  EXPECT_EQ(response->bytes, 15u);
  EXPECT_GT(response->duration, 0ns);
}

TEST_F(CurlHttpClientTest, DownloadsToAPrivateFile) {
  HttpRequest get = request("/files/big");
  get.outputPath = dir_ + "/downloaded";
  ASSERT_TRUE(writeFileAtomic(get.outputPath, "old and longer than nothing", {}));

  auto response = fetch(get);

  ASSERT_TRUE(response) << response.status().message();
  EXPECT_EQ(response->status, 200);
  EXPECT_EQ(response->bytes, 300'000u);
  EXPECT_EQ(response->body, "");
  auto content = readFile(get.outputPath, 1 << 20);
  ASSERT_TRUE(content) << content.status().message();
  EXPECT_EQ(*content, std::string(300'000, 'b'));
  // Replaced: the old file kept its mode; a new one is created 0600.
  std::filesystem::remove(get.outputPath);
  ASSERT_TRUE(fetch(get));
  struct stat st {};
  ASSERT_EQ(::stat(get.outputPath.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST_F(CurlHttpClientTest, PostsABodyWithItsType) {
  HttpRequest post = request("/hooks/alert");
  post.body = R"({"kind": "DiskUsage"})";
  auto response = fetch(std::move(post));
  ASSERT_TRUE(response) << response.status().message();
  EXPECT_EQ(response->status, 201);
  EXPECT_EQ(response->body, "application/json\n{\"kind\": \"DiskUsage\"}");
}

TEST_F(CurlHttpClientTest, ReturnsAnErrorStatusAsAResponse) {
  auto response = fetch(request("/files/missing"));
  ASSERT_TRUE(response) << response.status().message();
  EXPECT_EQ(response->status, 404);
  EXPECT_EQ(response->body, "no such file\n");
}

TEST_F(CurlHttpClientTest, RefusesAServerTheGivenCaDidNotSign) {
  HttpRequest get = request("/files/small");
  get.caFile = dir_ + "/other-ca.pem";
  auto response = fetch(get);
  ASSERT_FALSE(response);
  EXPECT_EQ(response.status().code(), Status::Code::kFailedPrecondition);
  EXPECT_THAT(response.status().message(), HasSubstr("GET " + get.url + ": "));
}

TEST_F(CurlHttpClientTest, RefusesAServerTheSystemBundleDoesNotTrust) {
  HttpRequest get = request("/files/small");
  get.caFile.clear();
  auto response = fetch(get);
  ASSERT_FALSE(response);
  EXPECT_EQ(response.status().code(), Status::Code::kFailedPrecondition);
}

TEST_F(CurlHttpClientTest, RefusesABodyLargerThanTheLimit) {
  for (const char* path : {"/files/big", "/stream/big"}) {
    SCOPED_TRACE(path);
    HttpRequest get = request(path);
    get.maxBytes = 100'000;
    auto response = fetch(get);
    ASSERT_FALSE(response);
    EXPECT_EQ(response.status().code(), Status::Code::kInvalidArgument);
    EXPECT_THAT(response.status().message(), HasSubstr("the body exceeds 100000 bytes"));
    get.maxBytes = 300'000;
    EXPECT_TRUE(fetch(get)) << "exactly at the limit";
  }
}

TEST_F(CurlHttpClientTest, GivesUpAtTheTimeout) {
  HttpRequest get = request("/slow");
  get.timeout = 300ms;
  auto response = fetch(get);
  ASSERT_FALSE(response);
  EXPECT_EQ(response.status().code(), Status::Code::kTimeout);
  EXPECT_THAT(response.status().message(), HasSubstr(get.url));
}

TEST_F(CurlHttpClientTest, ReportsAnUnreachableServerAsANetworkError) {
  HttpRequest get = request("/files/small");
  get.url = "https://127.0.0.1:1/files/small";
  auto response = fetch(get);
  ASSERT_FALSE(response);
  EXPECT_EQ(response.status().code(), Status::Code::kInternal);
  EXPECT_THAT(response.status().message(), HasSubstr("GET https://127.0.0.1:1/files/small: "));
}

TEST_F(CurlHttpClientTest, FollowsRedirectsButNotInCirclesNorToPlainHttp) {
  auto followed = fetch(request("/redirect"));
  ASSERT_TRUE(followed) << followed.status().message();
  EXPECT_EQ(followed->body, "small artifact\n");

  auto circle = fetch(request("/loop"));
  ASSERT_FALSE(circle);
  EXPECT_EQ(circle.status().code(), Status::Code::kInvalidArgument);

  auto downgrade = fetch(request("/to-http"));
  ASSERT_FALSE(downgrade);
  EXPECT_EQ(downgrade.status().code(), Status::Code::kInvalidArgument);
}

TEST_F(CurlHttpClientTest, SpeaksOnlyHttpAndHttps) {
  HttpRequest get = request("/files/small");
  get.url = "file://" + dir_ + "/files/small";
  auto response = fetch(get);
  ASSERT_FALSE(response);
  EXPECT_EQ(response.status().code(), Status::Code::kInvalidArgument);
}

TEST_F(CurlHttpClientTest, PresentsTheClientCertificate) {
  HttpRequest get = request("/files/small");
  get.url = mutualServer_->url("/files/small");
  EXPECT_FALSE(fetch(get)) << "the server requires a client certificate";

  get.clientCertificate = dir_ + "/client.pem";
  get.clientKey = dir_ + "/client.key";
  auto response = fetch(get);
  ASSERT_TRUE(response) << response.status().message();
  EXPECT_EQ(response->body, "small artifact\n");
}

TEST_F(CurlHttpClientTest, RunsManyTransfersAtOnce) {
  constexpr int kTransfers = 12;
  std::vector<std::optional<Result<HttpResponse>>> results(kTransfers);
  for (int i = 0; i < kTransfers; ++i) {
    HttpRequest get = request(i % 2 ? "/files/big" : "/files/small");
    if (i % 3 == 0) get.outputPath = dir_ + "/concurrent-" + std::to_string(i);
    client_->get(get, [&results, i](Result<HttpResponse> r) { results[i].emplace(std::move(r)); });
  }
  EXPECT_EQ(client_->active(), size_t{kTransfers});
  // A slow transfer holds up none of the others.
  HttpRequest slow = request("/slow");
  slow.timeout = 30s;
  bool slowDone = false;
  client_->get(slow, [&](Result<HttpResponse>) { slowDone = true; });

  Status s = loop_->runUntil([&] {
    return std::all_of(results.begin(), results.end(), [](auto& r) { return r.has_value(); });
  });
  ASSERT_TRUE(s) << s.message();
  for (int i = 0; i < kTransfers; ++i) {
    ASSERT_TRUE(*results[i]) << results[i]->status().message();
    EXPECT_EQ((*results[i])->bytes, i % 2 ? 300'000u : 15u);
  }
  EXPECT_FALSE(slowDone);
  EXPECT_EQ(client_->active(), 1u);
}

TEST_F(CurlHttpClientTest, ReportsAnOutputFileItCannotCreate) {
  HttpRequest get = request("/files/small");
  get.outputPath = dir_ + "/no/such/directory/file";
  auto response = fetch(get);
  ASSERT_FALSE(response);
  EXPECT_EQ(response.status().code(), Status::Code::kFailedPrecondition);
  EXPECT_THAT(response.status().message(), HasSubstr(get.outputPath));
}

TEST_F(CurlHttpClientTest, DestroyingTheClientAbandonsItsTransfers) {
  bool called = false;
  client_->get(request("/slow"), [&](Result<HttpResponse>) { called = true; });
  client_->get(request("/files/small"), [&](Result<HttpResponse>) { called = true; });
  // Let the transfers connect, then drop them.
  LoopClock clock(*loop_);
  bool waited = false;
  auto timer = clock.createTimer([&] { waited = true; });
  timer->armIn(100ms);
  ASSERT_TRUE(loop_->runUntil([&] { return waited || called; }));
  called = false;
  client_->get(request("/files/small"), [&](Result<HttpResponse>) { called = true; });
  client_.reset();

  waited = false;
  timer->armIn(200ms);
  ASSERT_TRUE(loop_->runUntil([&] { return waited; }));
  EXPECT_FALSE(called);
}

}  // namespace
}  // namespace nodewarden::core
