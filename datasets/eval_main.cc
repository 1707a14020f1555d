// Stand-alone `l2m_eval`, the same as `l2m eval` (for use before the command
// is registered in the l2m program, and for scripts that want only this).

#include "datasets/eval_command.h"

#include <exception>
#include <iostream>

int main(int argc, char** argv) {
  try {
    argv[0] = const_cast<char*>("eval");
    return l2m::RunEvalCommand(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "l2m eval: " << e.what() << "\n";
    return 1;
  }
}
