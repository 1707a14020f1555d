#pragma once

#include "l2m_core/weights/key_list.h"
#include "l2m_core/weights/state_dict.h"

#include <string>
#include <vector>

// Forward declaration keeps <torch/torch.h> (20 s per TU) out of users.
namespace torch {
namespace nn {
class Module;
}  // namespace nn
}  // namespace torch

namespace l2m {

struct StrictLoadOptions {
  // Floating-point tensors may change width (fp16/bf16 checkpoints into an
  // fp32 module, or the reverse). Integer <-> float is always an error.
  bool convert_float_dtypes = true;

  void Check() const {}
};

struct StrictLoadReport {
  size_t loaded = 0;     // Parameters and buffers assigned.
  size_t converted = 0;  // Of those, how many changed dtype.
};

// Names, dtypes and shapes of all parameters and (defined) buffers of a
// module, in named_parameters() then named_buffers() order.
std::vector<TensorSpec> ModuleSpecs(const torch::nn::Module& module);

// Copies every tensor of `state_dict` into the module's parameters and
// buffers. Unlike the reference (which silently keeps a random ViT when keys
// do not match), nothing is copied unless names and shapes match exactly:
// otherwise std::runtime_error lists ALL missing, unexpected, mis-shaped and
// incompatible-dtype keys, naming `source_name`.
StrictLoadReport LoadStateDictStrict(
    torch::nn::Module& module,
    const StateDict& state_dict,
    const std::string& source_name,
    const StrictLoadOptions& options = StrictLoadOptions());

}  // namespace l2m
