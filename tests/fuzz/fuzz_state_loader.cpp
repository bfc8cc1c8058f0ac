// The agent's desired-state loader on arbitrary text: it must never crash, and
// a state it accepts must render (toDocument) to a document it reads back as
// the same state, since that is how the control plane sends states to agents.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "agent/state/document.h"
#include "agent/state/loader.h"
#include "tests/fuzz/fuzz_support.h"

using namespace nodewarden;

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  fuzz::silenceLogs();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const state::LoadResult loaded = state::loadString(text, "fuzz.yaml");
  // The state or the problems that kept it from being one: never both, never neither.
  if (loaded.ok() != loaded.errors.empty()) std::abort();
  for (const auto& error : loaded.errors) (void)error.toString();
  if (!loaded.ok()) return 0;

  const std::string document = state::toDocument(*loaded.state);
  const state::LoadResult reloaded = state::loadString(document, "rendered.yaml");
  const v1::NodeState none;
  fuzz::requireRoundTrip(*loaded.state, document, reloaded.errors,
                         reloaded.ok() ? *reloaded.state : none);
  return 0;
}
