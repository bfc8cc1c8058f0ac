// What a node sends the server: the numbered messages of its stream, stored by
// server::storeNodeMessage, and what it enrolls with (bootstrap token, node
// name, CSR). None may crash the server, and the store must keep its promise
// of applying each message exactly once.
//
// An input is a series of pieces (fuzz::InputReader: a 2-byte length, then
// the bytes), each parsed as one v1::AgentMessage and stored in turn, so that
// one input can hold resends, gaps and every kind of message in any order.
// The whole input also goes, as text and as the DER of a PEM request, to the
// enrollment parsers.
//
// The store, its token and the node are made once: opening a store per input
// would cost more than the messages. So that an input means the same whatever
// ran before it, a sequence in (0, INT64_MAX] counts from where the node's
// sequence stood when the input began (its low 32 bits, so that this never
// overflows in a run); 0 and those past INT64_MAX, which the server refuses,
// are kept as they are.

#include <openssl/evp.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <memory>
#include <string>
#include <string_view>

#include "agent/pki/csr.h"
#include "nodewarden/v1/control.pb.h"
#include "server/service/enrollment_service.h"
#include "server/service/node_service.h"
#include "server/store/sqlite_store.h"
#include "tests/fuzz/fuzz_support.h"

using namespace nodewarden;

namespace {

const std::string kNode = "fuzz-node";
// Fixed, so that an input stores the same every time.
const server::Time kNow{std::chrono::seconds(1'700'000'000)};
// Pieces past these many are ignored: a longer series finds nothing new.
constexpr int kMaxMessages = 64;
constexpr uint64_t kMaxSequence = std::numeric_limits<int64_t>::max();

std::unique_ptr<server::SqliteStore> store;

[[noreturn]] void fail(const std::string& what) {
  std::fprintf(stderr, "%s\n", what.c_str());
  std::abort();
}

uint64_t lastSequence() {
  auto node = store->node(kNode);
  if (!node || !*node) fail("the enrolled node is gone: " + node.status().message());
  return (*node)->lastSequence;
}

void rebase(v1::AgentMessage& message, uint64_t base) {
  const uint64_t sequence = message.sequence();
  if (sequence == 0 || sequence > kMaxSequence) return;
  message.set_sequence(base + (sequence & 0xFFFFFFFF));
}

// The status storeNodeMessage() owes `message`.
grpc::StatusCode expectedCode(const v1::AgentMessage& message) {
  if (message.sequence() == 0) return grpc::StatusCode::INVALID_ARGUMENT;
  switch (message.body_case()) {
    case v1::AgentMessage::kHello:
      return grpc::StatusCode::FAILED_PRECONDITION;
    case v1::AgentMessage::BODY_NOT_SET:
      return grpc::StatusCode::INVALID_ARGUMENT;
    default:
      // The store refuses what SQLite's integers cannot hold.
      return message.sequence() > kMaxSequence ? grpc::StatusCode::UNAVAILABLE
                                               : grpc::StatusCode::OK;
  }
}

void storeMessage(const v1::AgentMessage& message) {
  const uint64_t before = lastSequence();
  const grpc::Status status = server::storeNodeMessage(*store, kNode, message, kNow);
  const std::string what = "sequence " + std::to_string(message.sequence()) + " (node at " +
                           std::to_string(before) + ", body " +
                           std::to_string(message.body_case()) + ")";
  if (status.error_code() != expectedCode(message)) {
    fail("storeNodeMessage: unexpected status " + std::to_string(status.error_code()) + " \"" +
         status.error_message() + "\" for " + what);
  }
  // Applied once: a new sequence moves the node to it, a resend changes nothing.
  const uint64_t expected = status.ok() ? std::max(before, message.sequence()) : before;
  if (const uint64_t after = lastSequence(); after != expected) {
    fail("storeNodeMessage: node at sequence " + std::to_string(after) + ", not " +
         std::to_string(expected) + ", after " + what);
  }
}

std::string asPemRequest(std::string_view der) {
  std::string pem = "-----BEGIN CERTIFICATE REQUEST-----\n";
  constexpr size_t kLineBytes = 48;  // 64 characters of base64
  for (size_t offset = 0; offset < der.size(); offset += kLineBytes) {
    const size_t size = std::min(kLineBytes, der.size() - offset);
    unsigned char line[65];
    const int length = EVP_EncodeBlock(line, reinterpret_cast<const unsigned char*>(&der[offset]),
                                       static_cast<int>(size));
    pem.append(reinterpret_cast<const char*>(line), static_cast<size_t>(length));
    pem.push_back('\n');
  }
  return pem + "-----END CERTIFICATE REQUEST-----\n";
}

void checkEnrollmentParsers(std::string_view text) {
  if (auto token = server::parseBootstrapToken(text)) {
    if (token->id.size() != 6 || token->secret.size() != 16 ||
        token->id + "." + token->secret != text) {
      fail("parseBootstrapToken: \"" + std::string(text) + "\" gave id \"" + token->id +
           "\" and secret \"" + token->secret + "\"");
    }
  }
  (void)server::validNodeName(text);
  (void)pki::readCsr(text);
  (void)pki::readCsr(asPemRequest(text));
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  fuzz::silenceLogs();
  auto opened = server::SqliteStore::open(":memory:");
  if (!opened) fail("open the store: " + opened.status().message());
  store = std::move(*opened);
  const server::TokenRecord token{.id = "fuzzid",
                                  .secret = "0123456789abcdef",
                                  .group = "fuzz",
                                  .created = kNow,
                                  .expires = server::Time::max()};
  if (core::Status s = store->putToken(token); !s) fail("put the token: " + s.message());
  auto node = store->enroll({.tokenId = token.id,
                             .nodeName = kNode,
                             .certificateSerial = "01",
                             .certificateExpires = kNow + std::chrono::hours(24 * 365)},
                            kNow);
  if (!node) fail("enroll the node: " + node.status().message());
  // From 1 on, every rebased sequence is one the store may take.
  v1::AgentMessage first;
  first.set_sequence(1);
  first.mutable_usage()->set_cpu_percent(1);
  storeMessage(first);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  checkEnrollmentParsers(std::string_view(reinterpret_cast<const char*>(data), size));

  fuzz::InputReader input(data, size);
  const uint64_t base = lastSequence();
  for (int i = 0; i < kMaxMessages && !input.empty(); ++i) {
    const std::string_view piece = input.piece();
    v1::AgentMessage message;
    if (!message.ParseFromArray(piece.data(), static_cast<int>(piece.size()))) continue;
    rebase(message, base);
    storeMessage(message);
  }
  return 0;
}
