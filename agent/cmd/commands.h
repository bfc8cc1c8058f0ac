#pragma once

namespace nodewarden::cmd {

// One function per subcommand; each parses its own arguments (argv[0] is the
// subcommand's name) and returns the process exit code.
int validate(int argc, char** argv);
int apply(int argc, char** argv);
int run(int argc, char** argv);
// Ask the running agent over its control socket.
int status(int argc, char** argv);
int pause(int argc, char** argv);
int resume(int argc, char** argv);

// Exit codes shared by the one-shot commands (apply adds 2 and 4, Puppet-style).
constexpr int kExitOk = 0;
constexpr int kExitInvalid = 1;  // bad input or arguments, or the agent said no: nothing changed
constexpr int kExitUsage = 64;   // EX_USAGE

}  // namespace nodewarden::cmd
