#pragma once

#include <string>

// Pictures of a training run from its JSON-lines log (l2m_core/train's
// train_log.jsonl): training loss (log scale) and learning rate, validation
// EPE, PCK@1/3/5 px and certainty calibration, against the step.

namespace l2m {

// Reads `log_path` and writes a PNG to `png_path` (atomically). Throws
// std::runtime_error naming the file when the log is missing, has a
// malformed line, or holds no training line.
void PlotTrainingCurves(const std::string& log_path,
                        const std::string& png_path);

}  // namespace l2m
