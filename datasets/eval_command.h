#pragma once

// `l2m eval`: a matcher adapter over a benchmark, with a stated protocol and
// estimator.
//
//   l2m eval --benchmark scannet_pairs|megadepth1500|scannet1500|homography
//            --data_path P --matcher sift|flow|l2m --output_path DIR
//            [--Eval.protocol roma|loftr] [--Eval.estimator
//            ransac|magsac|lo-ransac]
//            [--Eval.* ...] [--Sift.* / --Flow.* matcher options]
//
// Writes DIR/results.json (pose: auc@5, auc@10, auc@20; homography: auc@3px,
// auc@5px, auc@10px; in percent; plus protocol, estimator, num_pairs, ...),
// DIR/results.md, DIR/curves.png, DIR/worst_pairs/*.png and DIR/pairs/*.json
// (one atomically written file per pair; a rerun with the same settings skips
// the pairs already there).

namespace l2m {

// argv[0] = "eval". Returns the process exit code; throws std::exception on
// bad options or data (the caller prints e.what()).
int RunEvalCommand(int argc, char** argv);

}  // namespace l2m
