#pragma once

#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace nodewarden::cmd {

// For parse(): the command counts its operands itself.
inline constexpr size_t kAnyOperands = static_cast<size_t>(-1);

// A long option a subcommand accepts: --name, or --name VALUE.
struct OptionSpec {
  std::string_view name;
  bool takesValue = false;
};

// A subcommand's options and operands, parsed the same way for every command.
class Arguments final {
 public:
  // Parses argv (argv[0] is the subcommand). Returns the exit code to stop
  // with instead when the command should not run: 0 after printing `usage`
  // for --help, 64 after printing it to stderr for an unknown option, a
  // missing value or a number of operands other than `operands`.
  static std::variant<Arguments, int> parse(int argc, char** argv,
                                            std::span<const OptionSpec> options, size_t operands,
                                            std::string_view usage);

  bool has(std::string_view name) const { return values_.contains(std::string(name)); }
  std::optional<std::string> value(std::string_view name) const;
  const std::vector<std::string>& operands() const { return operands_; }

 private:
  std::map<std::string, std::string> values_;
  std::vector<std::string> operands_;
};

}  // namespace nodewarden::cmd
