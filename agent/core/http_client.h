#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "agent/core/clock.h"
#include "agent/core/status.h"

namespace nodewarden::core {

// One HTTP(S) GET, or a POST when it has a body. The response's body goes
// to a file the caller names, or into memory.
struct HttpRequest {
  std::string url;
  // PEM bundle of trusted CAs; empty: the system's bundle.
  std::string caFile;
  // Client certificate and key (PEM files) for mutual TLS; empty: none.
  std::string clientCertificate;
  std::string clientKey;
  // Whole transfer, connection included.
  Duration timeout = std::chrono::minutes(10);
  Duration connectTimeout = std::chrono::seconds(30);
  // A body longer than this (announced or received) aborts the transfer.
  uint64_t maxBytes = 16 * 1024 * 1024;
  // Where the body goes: empty keeps it in HttpResponse::body; otherwise the
  // path of a file that is created or truncated.
  std::string outputPath;
  // Off: a 3xx is the response, as a health check wants to see it.
  bool followRedirects = true;
  // Off: connect directly, whatever http_proxy and friends in the agent's
  // environment say; a check of a local endpoint must not go through a proxy.
  bool useProxy = true;
  // Set: the request is a POST of this body, of this type.
  std::optional<std::string> body;
  std::string contentType = "application/json";
};

// A completed exchange, whatever its status code.
struct HttpResponse {
  long status = 0;     // 200, 404, ...
  std::string body;    // only when the request had no outputPath
  uint64_t bytes = 0;  // body bytes received
  Duration duration{};
};

// HTTP(S) for the agent: artifact downloads now, probes later. The real one
// drives libcurl's multi socket interface from the event loop, so any number
// of transfers run at once without a thread.
class HttpClient {
 public:
  using Callback = std::function<void(Result<HttpResponse>)>;

  virtual ~HttpClient() = default;
  // Starts the request; `done` runs later on the loop thread, never inside
  // get(). An error means no complete response arrived: the host did not
  // resolve or answer, TLS verification failed, the body exceeded maxBytes,
  // the timeout passed, or the output file could not be written. Its message
  // names the URL and what went wrong; its code says whether trying again
  // may help: kTimeout and kInternal (the network) may, the others won't.
  virtual void get(HttpRequest request, Callback done) = 0;
};

}  // namespace nodewarden::core
