#pragma once

namespace l2m {

// `l2m synth <views|relight|sky|scene> [options]`: argv[0] = "synth",
// argv[1] = the subcommand. Returns the process exit status; throws on bad
// input (the caller prints the message).
int RunSynthCommand(int argc, char** argv);

}  // namespace l2m
