#pragma once

namespace nodewarden::server::cmd {

// One function per subcommand; argv[0] is the subcommand's name (for the
// admin commands, the noun: "token", "state", "nodes", "alerts"). Each
// returns the process exit code.
int run(int argc, char** argv);
int token(int argc, char** argv);
int state(int argc, char** argv);
int nodes(int argc, char** argv);
int alerts(int argc, char** argv);

}  // namespace nodewarden::server::cmd
