#pragma once

#include "l2m_core/weights/pickle.h"
#include "l2m_core/weights/state_dict.h"

#include <functional>
#include <string>
#include <vector>

namespace l2m {

// How a checkpoint's object tree is turned into a flat state dict.
struct CheckpointReadOptions {
  // While the top-level dict holds no tensors, descend into the first of these
  // keys that holds a dict (Lightning "state_dict", DINOv2/FiT3D "model").
  bool unwrap = true;
  std::vector<std::string> unwrap_keys = {
      "state_dict", "model", "model_state_dict", "module"};
  // Removed (repeatedly) while every tensor name starts with one of them:
  // DataParallel "module.", Lightning "model.". Unlike the reference loader,
  // which deletes these substrings anywhere in a name, a prefix is only
  // removed when it is common to all names, so a real submodule called
  // "model" is never mangled.
  std::vector<std::string> strip_prefixes = {"module.", "model."};
  // When non-empty: keep only names starting with it, and remove it (e.g.
  // "model.encoder." to take one part of a Lightning checkpoint).
  std::string select_prefix;
  // Limits for the embedded pickle.
  PickleOptions pickle;

  void Check() const;
};

// Reads a PyTorch checkpoint without Python: the zip format (torch >= 1.6,
// including torch 2.x files), the legacy pre-1.6 format, and safetensors.
// Accepts plain dicts, OrderedDict state dicts (which LibTorch's
// torch::pickle_load cannot read), Lightning checkpoints and {"model": ...}
// wrappers. Tensors are on the CPU in their stored dtype. Throws
// std::runtime_error naming the file and the problem (missing, truncated,
// not a checkpoint, corrupt pickle, storage out of range, ...).
StateDict ReadCheckpoint(
    const std::string& path,
    const CheckpointReadOptions& options = CheckpointReadOptions());

// The same for a checkpoint held in memory; `source_name` is used in messages.
StateDict ReadCheckpointFromMemory(
    const std::string& bytes,
    const std::string& source_name,
    const CheckpointReadOptions& options = CheckpointReadOptions());

// Raw bytes of one storage, as the container provides it.
struct StorageRecord {
  std::string key;
  at::ScalarType dtype = at::kFloat;
  int64_t numel = 0;  // Elements of `dtype` the pickle says it holds.
};

// Interprets an already-parsed checkpoint pickle; `load_storage` returns the
// storage for a record as a 1-D uint8 tensor of exactly numel * itemsize
// bytes (or throws). Used by the container readers and by the tests.
StateDict StateDictFromPickle(
    const PickleTree& tree,
    const std::function<at::Tensor(const StorageRecord&)>& load_storage,
    const CheckpointReadOptions& options = CheckpointReadOptions());

}  // namespace l2m
