#pragma once

#include <curl/curl.h>

#include <deque>
#include <map>
#include <memory>

#include "agent/core/http_client.h"
#include "agent/core/loop.h"

namespace nodewarden::core {

// HttpClient on libcurl's multi socket interface, driven by the loop: curl
// tells which sockets to watch and when to wake it, the loop tells curl what
// happened. Any number of transfers run at once on the loop thread.
//
// TLS peers are always verified (against the request's caFile, or the
// system's bundle); only http and https are spoken, and a redirect from https
// may lead only to https. Errors carry a code a caller can act on:
//   kTimeout             the request's timeout or connectTimeout passed
//   kInternal            the network failed (resolve, connect, reset, TLS
//                        handshake): worth another try later
//   kFailedPrecondition  the peer failed verification, or the output file
//                        could not be written
//   kInvalidArgument     the body exceeded maxBytes, the URL is not http(s),
//                        or it redirected too often or to a refused scheme
//
// Destroying the client abandons the transfers in flight; their callbacks
// never run.
class CurlHttpClient final : public HttpClient {
 public:
  static Result<std::unique_ptr<CurlHttpClient>> create(Loop& loop);

  CurlHttpClient(const CurlHttpClient&) = delete;
  CurlHttpClient& operator=(const CurlHttpClient&) = delete;
  ~CurlHttpClient() override;

  void get(HttpRequest request, Callback done) override;

  // Transfers started and not yet reported.
  size_t active() const { return transfers_.size(); }

 private:
  struct MultiCleanup {
    void operator()(CURLM* multi) const { curl_multi_cleanup(multi); }
  };
  class Transfer;  // one easy handle, its output and its callback

  explicit CurlHttpClient(Loop& loop);
  Status setUp();

  static int onSocket(CURL* easy, curl_socket_t socket, int what, void* client, void*);
  static int onTimer(CURLM*, long timeoutMs, void* client);
  void socketAction(curl_socket_t socket, int events);
  // Reports the transfers curl has finished.
  void collectFinished();
  // Queues a result for the next loop iteration.
  void deliver(Callback done, Result<HttpResponse> result);
  void deliverOne();

  Loop& loop_;
  LoopClock clock_;
  // The destructor takes the transfers out of it and cleans it up while the
  // members its callbacks touch are still in place.
  std::unique_ptr<CURLM, MultiCleanup> multi_;
  std::map<CURL*, std::unique_ptr<Transfer>> transfers_;
  std::map<curl_socket_t, EventSource> sockets_;
  std::unique_ptr<Timer> timer_;
  EventSource deliverSource_;
  std::deque<std::pair<Callback, Result<HttpResponse>>> finished_;
};

}  // namespace nodewarden::core
