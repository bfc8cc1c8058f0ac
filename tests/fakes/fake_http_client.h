#pragma once

#include <deque>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "agent/core/http_client.h"

namespace nodewarden::core {

// An HttpClient for unit tests. It records every request in order and answers
// from a script kept per URL: the responses queued with respondOnce(), in
// order, then the one set with respond(). A URL with no answer fails as an
// unreachable host would, so no test passes by accident.
//
// Nothing happens by itself: get() queues the request and the test delivers
// the answers with complete(), in order. So a callback never runs inside
// get(), as with the real client. Like the real client, a response's body goes
// to the request's outputPath when it names one, and a body larger than the
// request's maxBytes is an error.
//
//   FakeHttpClient http;
//   http.respondOnce("https://x/a", Status::timeout("GET https://x/a: timed out"));
//   http.respond("https://x/a", 200, "contents");
//   ... run the code under test ...
//   http.complete();
class FakeHttpClient final : public HttpClient {
 public:
  // Every later request for `url` gets this status and body.
  void respond(const std::string& url, long status, std::string body = "");
  void respond(const std::string& url, Result<HttpResponse> response);
  // The next request for `url` gets `response`, ahead of respond()'s.
  void respondOnce(const std::string& url, Result<HttpResponse> response);

  const std::vector<HttpRequest>& requests() const { return requests_; }
  // requests() as their URLs.
  std::vector<std::string> urls() const;
  void clearRequests() { requests_.clear(); }

  size_t pending() const { return queued_.size(); }
  // Delivers queued answers in order, including those of requests their
  // callbacks make, until none is left; returns how many were delivered.
  size_t complete();

  void get(HttpRequest request, Callback done) override;

 private:
  struct Script {
    std::deque<Result<HttpResponse>> once;
    std::optional<Result<HttpResponse>> always;
  };
  struct Queued {
    HttpRequest request;
    Result<HttpResponse> response;
    Callback done;
  };

  Result<HttpResponse> answer(const std::string& url);
  static Result<HttpResponse> deliverBody(const HttpRequest& request,
                                          Result<HttpResponse> response);

  std::map<std::string, Script> scripts_;
  std::vector<HttpRequest> requests_;
  std::deque<Queued> queued_;
};

}  // namespace nodewarden::core
