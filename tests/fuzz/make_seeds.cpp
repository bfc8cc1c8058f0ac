// Writes the seed inputs and dictionaries the fuzz targets start from, made
// from the schema and the code of today rather than checked-in bytes that
// would drift from them: fuzz_seeds <directory>. Every file it writes is named
// in tests/fuzz/meson.build; scripts/fuzz hands them to their targets.

#include <google/protobuf/descriptor.h>

#include <cstdio>
#include <set>
#include <string>
#include <string_view>

#include "agent/core/atomic_file.h"
#include "agent/core/base64.h"
#include "agent/pki/csr.h"
#include "agent/pki/key.h"
#include "agent/state/field_names.h"
#include "nodewarden/v1/agent_config.pb.h"
#include "nodewarden/v1/control.pb.h"
#include "nodewarden/v1/server_config.pb.h"
#include "nodewarden/v1/state.pb.h"
#include "tests/fuzz/fuzz_support.h"

using namespace nodewarden;

namespace {

std::string directory;
bool failed = false;

void write(const std::string& name, std::string_view data) {
  if (core::Status s = core::writeFileAtomic(directory + "/" + name, data, {.mode = 0644}); !s) {
    std::fprintf(stderr, "fuzz_seeds: %s\n", s.message().c_str());
    failed = true;
  }
}

// Pieces as fuzz_node_messages reads them: one AgentMessage each.
std::string messages(std::initializer_list<v1::AgentMessage> list) {
  std::string input;
  for (const auto& message : list) fuzz::appendPiece(input, message.SerializeAsString());
  return input;
}

v1::AgentMessage report(uint64_t sequence) {
  v1::AgentMessage message;
  message.set_sequence(sequence);
  auto* report = message.mutable_report();
  report->set_desired_version("workers@3+node-1@2");
  report->set_result("ok");
  report->set_finished_at_us(1'700'000'000'000'000);
  report->set_duration_us(1'500'000);
  auto* resource = report->add_resources();
  resource->set_resource("file:/etc/containerd/config.toml");
  resource->set_action("write");
  resource->set_outcome("applied");
  return message;
}

v1::AgentMessage health(uint64_t sequence) {
  v1::AgentMessage message;
  message.set_sequence(sequence);
  auto* condition = message.mutable_health()->add_conditions();
  condition->set_subject("kubelet.service");
  condition->set_type("CrashLooping");
  condition->set_status(true);
  condition->set_reason("RestartedTooOften");
  condition->set_since_us(1'700'000'000'000'000);
  auto* event = message.mutable_health()->add_events();
  event->set_time_us(1'700'000'000'000'000);
  event->set_subject("kubelet.service");
  event->set_reason("Restarted");
  event->set_message("Restarted kubelet.service (1 restart)");
  event->set_type("Warning");
  return message;
}

v1::AgentMessage usage(uint64_t sequence) {
  v1::AgentMessage message;
  message.set_sequence(sequence);
  auto* usage = message.mutable_usage();
  usage->set_time_us(1'700'000'000'000'000);
  usage->set_cpu_percent(12.5);
  usage->set_memory_used_bytes(uint64_t{3} << 30);
  usage->set_memory_total_bytes(uint64_t{8} << 30);
  auto* disk = usage->add_disks();
  disk->set_mount("/");
  disk->set_used_bytes(uint64_t{20} << 30);
  disk->set_size_bytes(uint64_t{40} << 30);
  return message;
}

v1::AgentMessage dropped(uint64_t sequence, uint64_t count) {
  v1::AgentMessage message;
  message.set_sequence(sequence);
  message.mutable_dropped()->set_count(count);
  return message;
}

v1::AgentMessage hello() {
  v1::AgentMessage message;
  message.mutable_hello()->mutable_facts()->set_hostname("node-1");
  return message;
}

void writeNodeMessageSeeds() {
  write("fuzz_node_messages-stream.seed",
        messages({report(1), health(2), usage(3), dropped(4, 2)}));
  // What the server refuses or ignores: resends, sequence 0, a second hello,
  // an empty message, a sequence SQLite cannot hold.
  v1::AgentMessage empty;
  empty.set_sequence(6);
  write("fuzz_node_messages-refused.seed",
        messages({usage(5), usage(5), usage(0), hello(), empty, usage(uint64_t{1} << 63)}));
  write("fuzz_node_messages-token.seed", "abcdef.0123456789abcdef");

  auto key = pki::PrivateKey::generate();
  auto csr = key ? pki::makeCsr(*key, "node-1") : core::Result<std::string>(key.status());
  if (!csr) {
    std::fprintf(stderr, "fuzz_seeds: make a CSR: %s\n", csr.status().message().c_str());
    failed = true;
    return;
  }
  write("fuzz_node_messages-csr.seed", *csr);
  // The target also reads its input as the DER inside a PEM request.
  std::string_view body = *csr;
  body.remove_prefix(body.find('\n') + 1);
  body = body.substr(0, body.find("-----"));
  auto der = core::decodeBase64(body);
  if (!der) {
    std::fprintf(stderr, "fuzz_seeds: decode the CSR: %s\n", der.status().message().c_str());
    failed = true;
    return;
  }
  write("fuzz_node_messages-csr-der.seed", *der);
}

// Files as fuzz_spool reads them: flags (0 message, 1 Dropped record, 2 the
// floor file; 4: add the header), a sequence byte and the content.
std::string spoolFile(uint8_t flags, uint8_t sequence, std::string_view content) {
  std::string input;
  input.push_back(static_cast<char>(flags));
  input.push_back(static_cast<char>(sequence));
  fuzz::appendPiece(input, content);
  return input;
}

void writeSpoolSeeds() {
  constexpr uint8_t kMessage = 4, kDropped = 5, kFloor = 2;
  write("fuzz_spool-messages.seed", spoolFile(kMessage, 7, report(7).SerializeAsString()) +
                                        spoolFile(kMessage, 8, health(8).SerializeAsString()) +
                                        spoolFile(kMessage, 9, usage(9).SerializeAsString()));
  // A drop a crash interrupted: the record and the messages it counts.
  write("fuzz_spool-dropped.seed", spoolFile(kMessage, 3, usage(3).SerializeAsString()) +
                                       spoolFile(kDropped, 4, dropped(4, 2).SerializeAsString()) +
                                       spoolFile(kMessage, 4, usage(4).SerializeAsString()) +
                                       spoolFile(kMessage, 5, usage(5).SerializeAsString()));
  write("fuzz_spool-floor.seed", spoolFile(kFloor, 0, "41\n"));
}

// The names documents use, for libFuzzer's -dict: the fields' JSON names and
// the enums' written names of `type` and every message it holds.
void collectNames(const google::protobuf::Descriptor* type, std::set<std::string>& names,
                  std::set<const google::protobuf::Descriptor*>& seen) {
  if (!seen.insert(type).second) return;
  for (int i = 0; i < type->field_count(); ++i) {
    const google::protobuf::FieldDescriptor* field = type->field(i);
    names.insert(field->json_name());
    if (const auto* enumType = field->enum_type()) {
      const std::string prefix = state::enumValuePrefix(enumType);
      for (int v = 0; v < enumType->value_count(); ++v) {
        names.insert(state::writtenEnumName(enumType->value(v), prefix));
      }
    }
    if (const auto* message = field->message_type()) collectNames(message, names, seen);
  }
}

void writeDictionary(const std::string& name,
                     std::initializer_list<const google::protobuf::Descriptor*> types) {
  std::set<std::string> names;
  std::set<const google::protobuf::Descriptor*> seen;
  for (const auto* type : types) collectNames(type, names, seen);
  // YAML's own syntax, which mutations rarely hit byte by byte.
  std::string dictionary =
      "\": \"\n\"- \"\n\"---\"\n\"|\\x0a\"\n\">-\"\n\"&a \"\n\"*a\"\n\"!!str \"\n\"[]\"\n\"{}\"\n";
  for (const std::string& word : names) dictionary += "\"" + word + "\"\n";
  write(name, dictionary);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: fuzz_seeds <directory>\n");
    return 2;
  }
  directory = argv[1];
  writeNodeMessageSeeds();
  writeSpoolSeeds();
  writeDictionary("fuzz_state_loader.dict", {v1::NodeState::descriptor()});
  writeDictionary("fuzz_agent_config.dict",
                  {v1::AgentConfig::descriptor(), v1::ServerConfig::descriptor()});
  return failed ? 1 : 0;
}
