// `l2m_train`: the trainer on its own, for machines built with
// L2M_CORE_ONLY (no OpenCV, no COLMAP backend), e.g. the GPU machine. Same
// options as `l2m train`.

#include "synth/train_command.h"

#include <exception>
#include <iostream>

int main(int argc, char** argv) {
  try {
    return l2m::RunTrainCommand(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "ERROR: " << e.what() << std::endl;
    return 1;
  }
}
