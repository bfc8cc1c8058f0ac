#pragma once

#include <cstdint>
#include <map>
#include <memory>

#include "agent/core/clock.h"
#include "agent/heal/probe.h"

namespace nodewarden::core {
class HttpClient;
class Loop;
class ProcessRunner;
}  // namespace nodewarden::core

namespace nodewarden::heal {

// The prober of the running agent, all on the event loop and without a
// thread: HTTP(S) through the HttpClient (libcurl's multi interface), TCP and
// Unix socket connects as non-blocking sockets watched by the loop, exec
// through the ProcessRunner. Every check ends within its timeout (an exec
// check once its killed child is reaped).
//
// HTTP checks never follow redirects nor use a proxy from the environment,
// keep at most kMaxBody bytes of a body (a longer one fails the check), and
// pass when the status is expected (any 2xx by default). TCP addresses are
// numeric or localhost, as validation requires, so nothing is resolved.
// Destroying the prober abandons the checks in flight: their callbacks never
// run.
class NodeProber final : public Prober {
 public:
  static constexpr uint64_t kMaxBody = 64 * 1024;
  // Bytes of an exec check's output kept, for the first line of its stderr.
  static constexpr size_t kMaxOutput = 4 * 1024;

  NodeProber(core::Loop& loop, core::Clock& clock, core::HttpClient& http,
             core::ProcessRunner& processes);
  ~NodeProber() override;

  NodeProber(const NodeProber&) = delete;
  NodeProber& operator=(const NodeProber&) = delete;

  void check(const ProbeSpec& spec, Callback done) override;

  // TCP and Unix socket connects in flight.
  size_t connecting() const { return connects_.size(); }

 private:
  class Connect;  // one non-blocking connect, its socket, watch and timer

  void checkHttp(const ProbeSpec& spec, Callback done);
  void checkTcp(const ProbeSpec& spec, Callback done);
  void checkExec(const ProbeSpec& spec, Callback done);
  // Ends connect `id`, then reports on the next loop iteration.
  void endConnect(uint64_t id, bool ok, std::string message);
  // Runs `done` with the result on the next loop iteration.
  void deliver(Callback done, ProbeResult result);

  core::Loop& loop_;
  core::Clock& clock_;
  core::HttpClient& http_;
  core::ProcessRunner& processes_;
  uint64_t nextConnect_ = 0;
  std::map<uint64_t, std::unique_ptr<Connect>> connects_;
  // Callbacks that outlive the prober find it gone.
  std::shared_ptr<NodeProber*> self_;
};

}  // namespace nodewarden::heal
