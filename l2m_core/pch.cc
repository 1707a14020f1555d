// Anchor translation unit of the target that owns the precompiled
// <torch/torch.h>.
#include <torch/torch.h>

namespace l2m {
// Keeps the archive non-empty on toolchains that warn about empty static
// libraries.
int TorchPchAnchor() { return 0; }
}  // namespace l2m
