#pragma once

namespace l2m {

// `l2m match_pair --image1 A --image2 B --output_path DIR`: matches one pair
// and writes matches.txt, matches.png and, for the dense L2M matcher,
// certainty.png and warp.png.
int RunMatchPairCommand(int argc, char** argv);

}  // namespace l2m
