#include "agent/cmd/arguments.h"

#include <getopt.h>

#include <iostream>

#include "agent/cmd/commands.h"

namespace nodewarden::cmd {

std::variant<Arguments, int> Arguments::parse(int argc, char** argv,
                                              std::span<const OptionSpec> options, size_t operands,
                                              std::string_view usage) {
  // getopt_long wants NUL-terminated names that outlive the parse.
  std::vector<std::string> names;
  names.reserve(options.size());
  std::vector<option> table;
  for (size_t i = 0; i < options.size(); ++i) {
    names.emplace_back(options[i].name);
    table.push_back({names.back().c_str(), options[i].takesValue ? required_argument : no_argument,
                     nullptr, static_cast<int>(i)});
  }
  table.push_back({"help", no_argument, nullptr, 'h'});
  table.push_back({nullptr, 0, nullptr, 0});

  Arguments arguments;
  optind = 1;
  opterr = 1;  // getopt names the offending option on stderr
  for (int index; (index = getopt_long(argc, argv, "h", table.data(), nullptr)) != -1;) {
    if (index == 'h') {
      std::cout << usage;
      return kExitOk;
    }
    if (index < 0 || static_cast<size_t>(index) >= options.size()) {
      std::cerr << usage;
      return kExitUsage;
    }
    arguments.values_[names[static_cast<size_t>(index)]] = optarg != nullptr ? optarg : "";
  }
  for (int i = optind; i < argc; ++i) arguments.operands_.emplace_back(argv[i]);
  if (operands != kAnyOperands && arguments.operands_.size() != operands) {
    std::cerr << usage;
    return kExitUsage;
  }
  return arguments;
}

std::optional<std::string> Arguments::value(std::string_view name) const {
  auto it = values_.find(std::string(name));
  if (it == values_.end()) return std::nullopt;
  return it->second;
}

}  // namespace nodewarden::cmd
