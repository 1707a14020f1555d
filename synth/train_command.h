#pragma once

#include <string>

// `l2m train` and the standalone `l2m_train` program (built without OpenCV,
// for the GPU machine): the trainer of l2m_core/train fed with pairs made on
// the fly from photos (synth/train_pairs.h) or with exact planar pairs.
//
//   l2m train --Train.output_path RUN --Data.image_dir PHOTOS [--Train.* ...]
//
// Rerunning the same command resumes from RUN/checkpoint.pt.

namespace l2m {

// argv[0] is the command name. Returns the exit code; throws on bad options
// or data (the caller prints the message).
int RunTrainCommand(int argc, char** argv);

}  // namespace l2m
