#include "tests/fakes/fake_http_client.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

#include "agent/core/unique_fd.h"

namespace nodewarden::core {

void FakeHttpClient::respond(const std::string& url, long status, std::string body) {
  HttpResponse response;
  response.status = status;
  response.bytes = body.size();
  response.body = std::move(body);
  respond(url, std::move(response));
}

void FakeHttpClient::respond(const std::string& url, Result<HttpResponse> response) {
  scripts_[url].always.emplace(std::move(response));
}

void FakeHttpClient::respondOnce(const std::string& url, Result<HttpResponse> response) {
  scripts_[url].once.push_back(std::move(response));
}

std::vector<std::string> FakeHttpClient::urls() const {
  std::vector<std::string> urls;
  for (const HttpRequest& request : requests_) urls.push_back(request.url);
  return urls;
}

Result<HttpResponse> FakeHttpClient::answer(const std::string& url) {
  auto it = scripts_.find(url);
  if (it != scripts_.end() && !it->second.once.empty()) {
    Result<HttpResponse> response = std::move(it->second.once.front());
    it->second.once.pop_front();
    return response;
  }
  if (it != scripts_.end() && it->second.always) return *it->second.always;
  return Status::internal("GET " + url + ": Could not resolve host");
}

// What the real client would hand back: the body in the file or in memory.
Result<HttpResponse> FakeHttpClient::deliverBody(const HttpRequest& request,
                                                 Result<HttpResponse> response) {
  if (!response) return response;
  if (response->body.size() > request.maxBytes) {
    return Status::invalidArgument("GET " + request.url + ": the body exceeds " +
                                   std::to_string(request.maxBytes) + " bytes");
  }
  response->bytes = response->body.size();
  if (request.outputPath.empty()) return response;
  UniqueFd fd(::open(request.outputPath.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  const std::string& body = response->body;
  if (!fd.isValid() || ::write(fd.get(), body.data(), body.size()) != ssize_t(body.size())) {
    return Status::failedPrecondition(
        Status::fromErrno(errno, "GET " + request.url + ": write " + request.outputPath).message());
  }
  response->body.clear();
  return response;
}

void FakeHttpClient::get(HttpRequest request, Callback done) {
  queued_.push_back(Queued{request, answer(request.url), std::move(done)});
  requests_.push_back(std::move(request));
}

size_t FakeHttpClient::complete() {
  size_t completed = 0;
  while (!queued_.empty()) {
    Queued next = std::move(queued_.front());
    queued_.pop_front();
    ++completed;
    next.done(deliverBody(next.request, std::move(next.response)));
  }
  return completed;
}

}  // namespace nodewarden::core
