// Runs one PackageManager operation on the real event loop and prints what
// came back, one fact a line, for tests/integration/test_dnf_backend.py:
//
//   package_backend_driver --root R --dnf-arg=--config=C observe alpha=1.0 beta:latest gamma:absent
//   package_backend_driver --root R --dnf-arg=--config=C apply install=alpha-1.0-1 remove=beta
//   hold=alpha
//
// observe prints "name installed=V held=0|1 queried=0|1 candidate=V available=a,b" and
// "note ..." lines; apply prints "ok". A failure prints "error: <message>" and exits 1.

#include <cstdio>
#include <iostream>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "agent/core/loop.h"
#include "agent/core/loop_process_runner.h"
#include "agent/packages/dnf_package_manager.h"

namespace nw = nodewarden;

namespace {

int fail(const std::string& message) {
  std::cout << "error: " << message << std::endl;
  return 1;
}

nw::packages::PackageWant parseWant(std::string_view arg) {
  nw::packages::PackageWant want;
  if (const size_t colon = arg.find(':'); colon != std::string_view::npos) {
    want.name = std::string(arg.substr(0, colon));
    const std::string_view ensure = arg.substr(colon + 1);
    want.ensure = ensure == "latest" ? nw::packages::PackageWant::Ensure::kLatest
                                     : nw::packages::PackageWant::Ensure::kAbsent;
  } else if (const size_t equals = arg.find('='); equals != std::string_view::npos) {
    want.name = std::string(arg.substr(0, equals));
    want.version = std::string(arg.substr(equals + 1));
  } else {
    want.name = std::string(arg);
  }
  return want;
}

std::string joined(const std::vector<std::string>& items) {
  std::string out;
  for (const std::string& item : items) out += (out.empty() ? "" : ",") + item;
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  nw::packages::DnfPackageManager::Options options;
  std::vector<std::string_view> args(argv + 1, argv + argc);
  size_t i = 0;
  for (; i < args.size(); ++i) {
    if (args[i] == "--root" && i + 1 < args.size()) {
      options.root = std::string(args[++i]);
    } else if (args[i].starts_with("--dnf-arg=")) {
      options.dnfArguments.emplace_back(args[i].substr(10));
    } else {
      break;
    }
  }
  if (i == args.size()) return fail("usage: [--root R] [--dnf-arg=A]... observe|apply ...");
  const std::string_view command = args[i++];

  auto loop = nw::core::Loop::create();
  if (!loop) return fail(loop.status().message());
  nw::core::LoopClock clock(**loop);
  auto runner = nw::core::LoopProcessRunner::create(**loop, clock);
  if (!runner) return fail(runner.status().message());
  nw::packages::DnfPackageManager manager(**runner, clock, options);

  if (command == "observe") {
    std::vector<nw::packages::PackageWant> wants;
    for (; i < args.size(); ++i) wants.push_back(parseWant(args[i]));
    std::optional<nw::core::Result<nw::packages::PackageSnapshot>> result;
    manager.observe(wants, [&](auto snapshot) { result = std::move(snapshot); });
    if (auto s = (*loop)->runUntil([&] { return result.has_value(); }); !s)
      return fail(s.message());
    if (!*result) return fail(result->status().message());
    for (const auto& [name, info] : (*result)->packages) {
      std::cout << name << " installed=" << info.installed.value_or("") << " held=" << info.held
                << " queried=" << info.queried << " candidate=" << info.candidate.value_or("")
                << " available=" << joined(info.available) << "\n";
    }
    for (const std::string& note : (*result)->notes) std::cout << "note " << note << "\n";
    return 0;
  }
  if (command == "apply") {
    nw::packages::PackageTransaction transaction;
    for (; i < args.size(); ++i) {
      const std::string_view arg = args[i];
      const size_t equals = arg.find('=');
      const std::string_view verb = arg.substr(0, equals);
      const std::string value(arg.substr(equals + 1));
      if (verb == "install") {
        // name or name@version
        const size_t at = value.find('@');
        transaction.install.push_back(
            {value.substr(0, at), at == std::string::npos ? "" : value.substr(at + 1)});
      } else if (verb == "remove") {
        transaction.remove.push_back(value);
      } else if (verb == "hold") {
        transaction.hold.push_back(value);
      } else if (verb == "unhold") {
        transaction.unhold.push_back(value);
      } else {
        return fail("unknown change " + std::string(arg));
      }
    }
    std::optional<nw::core::Status> result;
    manager.apply(transaction, [&](nw::core::Status status) { result = std::move(status); });
    if (auto s = (*loop)->runUntil([&] { return result.has_value(); }); !s)
      return fail(s.message());
    if (!*result) return fail(result->message());
    std::cout << "ok" << std::endl;
    return 0;
  }
  return fail("unknown command " + std::string(command));
}
