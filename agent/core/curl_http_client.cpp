#include "agent/core/curl_http_client.h"

#include <fcntl.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <limits>
#include <string_view>

#include "agent/core/unique_fd.h"

namespace nodewarden::core {

namespace {

constexpr long kMaxRedirects = 5;

struct EasyCleanup {
  void operator()(CURL* easy) const { curl_easy_cleanup(easy); }
};
using EasyPtr = std::unique_ptr<CURL, EasyCleanup>;

Status initializeCurl() {
  // Once per process; thread-safe since curl 7.84.
  static const CURLcode code = curl_global_init(CURL_GLOBAL_DEFAULT);
  if (code != CURLE_OK) {
    return Status::internal(std::string("initialize libcurl: ") + curl_easy_strerror(code));
  }
  return Status::ok();
}

// See the table in the header.
Status::Code codeFor(CURLcode code) {
  switch (code) {
    case CURLE_OPERATION_TIMEDOUT:
      return Status::Code::kTimeout;
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_CRL_BADFILE:
      return Status::Code::kFailedPrecondition;
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_TOO_MANY_REDIRECTS:
    case CURLE_FILESIZE_EXCEEDED:
      return Status::Code::kInvalidArgument;
    default:
      return Status::Code::kInternal;
  }
}

bool isHttps(std::string_view url) {
  constexpr std::string_view kScheme = "https:";
  return url.size() >= kScheme.size() &&
         std::equal(kScheme.begin(), kScheme.end(), url.begin(), [](char a, char b) {
           return a == std::tolower(static_cast<unsigned char>(b));
         });
}

// Milliseconds for curl, where 0 means "no limit": never less than 1.
long milliseconds(Duration duration) {
  const auto ms = std::chrono::ceil<std::chrono::milliseconds>(duration).count();
  return static_cast<long>(std::clamp<int64_t>(ms, 1, std::numeric_limits<long>::max()));
}

}  // namespace

class CurlHttpClient::Transfer final {
 public:
  Transfer(HttpRequest request, Callback done)
      : request_(std::move(request)), done_(std::move(done)) {}

  Status configure();
  CURL* easy() const { return easy_.get(); }
  Callback takeCallback() { return std::move(done_); }
  Result<HttpResponse> finish(CURLcode code);
  const std::string& url() const { return request_.url; }

 private:
  static size_t onData(char* data, size_t size, size_t count, void* transfer);
  size_t receive(const char* data, size_t size);

  HttpRequest request_;
  Callback done_;
  EasyPtr easy_;
  std::unique_ptr<curl_slist, decltype(&curl_slist_free_all)> headers_{nullptr,
                                                                       &curl_slist_free_all};
  UniqueFd output_;
  std::string body_;
  uint64_t bytes_ = 0;
  bool tooLarge_ = false;
  Status writeError_;
  char error_[CURL_ERROR_SIZE] = {};
};

Status CurlHttpClient::Transfer::configure() {
  const std::string what = (request_.body ? "POST " : "GET ") + request_.url;
  easy_.reset(curl_easy_init());
  if (!easy_) return Status::internal(what + ": cannot create a curl handle");
  if (!request_.outputPath.empty()) {
    output_.reset(
        ::open(request_.outputPath.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
    if (!output_.isValid()) {
      return Status::failedPrecondition(
          Status::fromErrno(errno, what + ": open " + request_.outputPath).message());
    }
  }

  CURL* easy = easy_.get();
  CURLcode code = CURLE_OK;
  auto set = [&](CURLoption option, auto value) {
    if (code == CURLE_OK) code = curl_easy_setopt(easy, option, value);
  };
  const curl_off_t maxBytes = static_cast<curl_off_t>(
      std::min<uint64_t>(request_.maxBytes, std::numeric_limits<curl_off_t>::max()));
  set(CURLOPT_URL, request_.url.c_str());
  set(CURLOPT_PRIVATE, this);
  set(CURLOPT_ERRORBUFFER, error_);
  set(CURLOPT_NOSIGNAL, 1L);
  set(CURLOPT_WRITEFUNCTION, &Transfer::onData);
  set(CURLOPT_WRITEDATA, this);
  set(CURLOPT_PROTOCOLS_STR, "http,https");
  // A redirect may not downgrade a verified channel to plain text.
  set(CURLOPT_REDIR_PROTOCOLS_STR, isHttps(request_.url) ? "https" : "http,https");
  set(CURLOPT_FOLLOWLOCATION, request_.followRedirects ? 1L : 0L);
  set(CURLOPT_MAXREDIRS, kMaxRedirects);
  set(CURLOPT_SSL_VERIFYPEER, 1L);
  set(CURLOPT_SSL_VERIFYHOST, 2L);
  if (!request_.caFile.empty()) set(CURLOPT_CAINFO, request_.caFile.c_str());
  if (!request_.clientCertificate.empty()) {
    set(CURLOPT_SSLCERT, request_.clientCertificate.c_str());
  }
  if (!request_.clientKey.empty()) set(CURLOPT_SSLKEY, request_.clientKey.c_str());
  set(CURLOPT_TIMEOUT_MS, milliseconds(request_.timeout));
  set(CURLOPT_CONNECTTIMEOUT_MS, milliseconds(request_.connectTimeout));
  set(CURLOPT_MAXFILESIZE_LARGE, maxBytes);
  if (!request_.useProxy) set(CURLOPT_NOPROXY, "*");
  set(CURLOPT_USERAGENT, "nodewarden/" NODEWARDEN_VERSION);
  if (request_.body) {
    set(CURLOPT_POSTFIELDS, request_.body->data());
    set(CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(request_.body->size()));
    const std::string contentType = "Content-Type: " + request_.contentType;
    headers_.reset(curl_slist_append(nullptr, contentType.c_str()));
    set(CURLOPT_HTTPHEADER, headers_.get());
  }
  if (code != CURLE_OK) {
    return Status::internal(what + ": set up the transfer: " + curl_easy_strerror(code));
  }
  return Status::ok();
}

size_t CurlHttpClient::Transfer::onData(char* data, size_t size, size_t count, void* transfer) {
  return static_cast<Transfer*>(transfer)->receive(data, size * count);
}

// Anything but `size` back aborts the transfer with CURLE_WRITE_ERROR.
size_t CurlHttpClient::Transfer::receive(const char* data, size_t size) {
  if (size > request_.maxBytes - bytes_) {
    tooLarge_ = true;
    return 0;
  }
  if (!output_.isValid()) {
    body_.append(data, size);
  } else {
    for (size_t written = 0; written < size;) {
      ssize_t n = ::write(output_.get(), data + written, size - written);
      if (n < 0) {
        if (errno == EINTR) continue;
        writeError_ = Status::fromErrno(errno, "write " + request_.outputPath);
        return 0;
      }
      written += static_cast<size_t>(n);
    }
  }
  bytes_ += size;
  return size;
}

Result<HttpResponse> CurlHttpClient::Transfer::finish(CURLcode code) {
  const std::string what = "GET " + request_.url + ": ";
  output_.reset();
  if (tooLarge_ || code == CURLE_FILESIZE_EXCEEDED) {
    return Status::invalidArgument(what + "the body exceeds " + std::to_string(request_.maxBytes) +
                                   " bytes");
  }
  if (!writeError_.isOk()) return Status::failedPrecondition(what + writeError_.message());
  if (code != CURLE_OK) {
    const std::string reason = error_[0] != '\0' ? error_ : curl_easy_strerror(code);
    return Status::error(codeFor(code), what + reason);
  }
  HttpResponse response;
  curl_easy_getinfo(easy_.get(), CURLINFO_RESPONSE_CODE, &response.status);
  curl_off_t microseconds = 0;
  curl_easy_getinfo(easy_.get(), CURLINFO_TOTAL_TIME_T, &microseconds);
  response.duration = std::chrono::microseconds(microseconds);
  response.body = std::move(body_);
  response.bytes = bytes_;
  return response;
}

CurlHttpClient::CurlHttpClient(Loop& loop) : loop_(loop), clock_(loop) {}

Result<std::unique_ptr<CurlHttpClient>> CurlHttpClient::create(Loop& loop) {
  if (Status s = initializeCurl(); !s) return s;
  std::unique_ptr<CurlHttpClient> client(new CurlHttpClient(loop));
  if (Status s = client->setUp(); !s) return s;
  return client;
}

Status CurlHttpClient::setUp() {
  multi_.reset(curl_multi_init());
  if (!multi_) return Status::internal("create a curl multi handle");
  CURLM* multi = multi_.get();
  CURLMcode code = curl_multi_setopt(multi, CURLMOPT_SOCKETFUNCTION, &CurlHttpClient::onSocket);
  if (code == CURLM_OK) code = curl_multi_setopt(multi, CURLMOPT_SOCKETDATA, this);
  if (code == CURLM_OK) {
    code = curl_multi_setopt(multi, CURLMOPT_TIMERFUNCTION, &CurlHttpClient::onTimer);
  }
  if (code == CURLM_OK) code = curl_multi_setopt(multi, CURLMOPT_TIMERDATA, this);
  if (code != CURLM_OK) {
    return Status::internal(std::string("set up curl: ") + curl_multi_strerror(code));
  }
  timer_ = clock_.createTimer([this] { socketAction(CURL_SOCKET_TIMEOUT, 0); });
  auto deliver = loop_.addDefer([this] { deliverOne(); });
  if (!deliver) return deliver.status();
  deliverSource_ = std::move(*deliver);
  return Status::ok();
}

CurlHttpClient::~CurlHttpClient() {
  // Removing a handle may call onSocket() and onTimer(): the members they
  // touch are still in place here.
  for (const auto& [easy, transfer] : transfers_) curl_multi_remove_handle(multi_.get(), easy);
  transfers_.clear();
  multi_.reset();
}

void CurlHttpClient::get(HttpRequest request, Callback done) {
  auto transfer = std::make_unique<Transfer>(std::move(request), std::move(done));
  if (Status s = transfer->configure(); !s) return deliver(transfer->takeCallback(), s);
  CURL* easy = transfer->easy();
  auto [it, inserted] = transfers_.emplace(easy, std::move(transfer));
  // Calls onTimer() to have the transfer started from the loop.
  if (CURLMcode code = curl_multi_add_handle(multi_.get(), easy); code != CURLM_OK) {
    std::unique_ptr<Transfer> failed = std::move(it->second);
    transfers_.erase(it);
    deliver(failed->takeCallback(),
            Status::internal("GET " + failed->url() + ": " + curl_multi_strerror(code)));
  }
}

int CurlHttpClient::onSocket(CURL*, curl_socket_t socket, int what, void* client, void*) {
  auto* self = static_cast<CurlHttpClient*>(client);
  if (what == CURL_POLL_REMOVE) {
    self->sockets_.erase(socket);
    return 0;
  }
  uint32_t events = 0;
  if (what & CURL_POLL_IN) events |= EPOLLIN;
  if (what & CURL_POLL_OUT) events |= EPOLLOUT;
  if (auto it = self->sockets_.find(socket); it != self->sockets_.end()) {
    return sd_event_source_set_io_events(it->second.get(), events) < 0 ? -1 : 0;
  }
  auto source = self->loop_.addIo(socket, events, [self, socket](uint32_t revents) {
    int flags = 0;
    if (revents & EPOLLIN) flags |= CURL_CSELECT_IN;
    if (revents & EPOLLOUT) flags |= CURL_CSELECT_OUT;
    if (revents & (EPOLLERR | EPOLLHUP)) flags |= CURL_CSELECT_ERR;
    self->socketAction(socket, flags);
  });
  // -1 makes curl fail the transfers on this socket.
  if (!source) return -1;
  self->sockets_.emplace(socket, std::move(*source));
  return 0;
}

int CurlHttpClient::onTimer(CURLM*, long timeoutMs, void* client) {
  auto* self = static_cast<CurlHttpClient*>(client);
  if (timeoutMs < 0) {
    self->timer_->cancel();
  } else {
    // 0 too goes through the loop: curl may not be re-entered from here.
    self->timer_->armIn(std::chrono::milliseconds(timeoutMs));
  }
  return 0;
}

void CurlHttpClient::socketAction(curl_socket_t socket, int events) {
  int running = 0;
  // A failure here concerns the multi handle as a whole (a socket curl does
  // not know); the transfers report their own errors below.
  curl_multi_socket_action(multi_.get(), socket, events, &running);
  collectFinished();
}

void CurlHttpClient::collectFinished() {
  int queued = 0;
  while (CURLMsg* message = curl_multi_info_read(multi_.get(), &queued)) {
    if (message->msg != CURLMSG_DONE) continue;
    CURL* easy = message->easy_handle;
    const CURLcode result = message->data.result;
    auto it = transfers_.find(easy);
    if (it == transfers_.end()) continue;
    std::unique_ptr<Transfer> transfer = std::move(it->second);
    transfers_.erase(it);
    curl_multi_remove_handle(multi_.get(), easy);
    deliver(transfer->takeCallback(), transfer->finish(result));
  }
}

void CurlHttpClient::deliver(Callback done, Result<HttpResponse> result) {
  finished_.emplace_back(std::move(done), std::move(result));
  sd_event_source_set_enabled(deliverSource_.get(), SD_EVENT_ONESHOT);
}

void CurlHttpClient::deliverOne() {
  if (finished_.empty()) return;
  auto [done, result] = std::move(finished_.front());
  finished_.pop_front();
  if (!finished_.empty()) sd_event_source_set_enabled(deliverSource_.get(), SD_EVENT_ONESHOT);
  done(std::move(result));  // may destroy the client: touch nothing after
}

}  // namespace nodewarden::core
