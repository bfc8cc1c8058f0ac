// The memory floor of the agent's libraries: a program linked against the
// same shared libraries as nodewarden-agent that starts each of them the way
// the agent does and nothing more, then prints its own resident set in kB.
// bench/footprint runs it next to the agent, so the agent's RSS can be read
// as "libraries" plus "the agent's own".

#include <openssl/evp.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>
#include <systemd/sd-journal.h>
#include <yaml.h>

#include <curl/curl.h>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <string>

#include <google/protobuf/descriptor.pb.h>
#include <grpcpp/grpcpp.h>
#include <prometheus/counter.h>
#include <prometheus/registry.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

namespace {

long residentKb() {
  std::ifstream rollup("/proc/self/smaps_rollup");
  std::string name;
  long kb = 0;
  while (rollup >> name) {
    if (name == "Rss:" && rollup >> kb) return kb;
  }
  return -1;
}

}  // namespace

int main() {
  // The HTTP client: libcurl's global state and a multi handle.
  curl_global_init(CURL_GLOBAL_DEFAULT);
  CURLM* multi = curl_multi_init();

  // The loop, the system bus and the journal (the kernel's messages).
  sd_event* event = nullptr;
  sd_event_default(&event);
  sd_bus* bus = nullptr;
  sd_bus_open_system(&bus);
  sd_journal* journal = nullptr;
  sd_journal_open(&journal, SD_JOURNAL_LOCAL_ONLY);

  // OpenSSL's digests (artifact checksums).
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_Digest("x", 1, digest, &length, EVP_sha256(), nullptr);

  // A YAML document through libyaml and a message through protobuf's reflection.
  yaml_parser_t parser;
  yaml_parser_initialize(&parser);
  const std::string text = "name: floor\n";
  yaml_parser_set_input_string(&parser, reinterpret_cast<const unsigned char*>(text.data()),
                               text.size());
  yaml_event_t yamlEvent;
  while (yaml_parser_parse(&parser, &yamlEvent) && yamlEvent.type != YAML_STREAM_END_EVENT) {
    yaml_event_delete(&yamlEvent);
  }
  yaml_event_delete(&yamlEvent);
  yaml_parser_delete(&parser);
  google::protobuf::FileDescriptorProto message;
  message.GetReflection()->SetString(&message, message.GetDescriptor()->FindFieldByName("name"),
                                     "floor");

  // gRPC, loaded (the agent talks to a server only when it has one).
  (void)grpc::Version();

  // Logging and the metrics registry.
  auto logger = spdlog::stderr_logger_st("floor");
  logger->info("started");
  auto registry = std::make_shared<prometheus::Registry>();
  prometheus::BuildCounter()
      .Name("floor_total")
      .Help("floor")
      .Register(*registry)
      .Add({})
      .Increment();

  std::cout << residentKb() << "\n";

  sd_journal_close(journal);
  sd_bus_unref(bus);
  sd_event_unref(event);
  curl_multi_cleanup(multi);
  curl_global_cleanup();
  return 0;
}
