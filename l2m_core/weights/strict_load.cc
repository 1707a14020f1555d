#include "l2m_core/weights/strict_load.h"

#include <ATen/ATen.h>
#include <torch/nn/module.h>

#include <stdexcept>
#include <unordered_map>

namespace l2m {
namespace {

std::unordered_map<std::string, at::Tensor> ModuleTensors(
    const torch::nn::Module& module, std::vector<std::string>* order) {
  std::unordered_map<std::string, at::Tensor> tensors;
  for (const auto& p : module.named_parameters(/*recurse=*/true)) {
    if (!p.value().defined()) continue;
    if (tensors.emplace(p.key(), p.value()).second) order->push_back(p.key());
  }
  for (const auto& b : module.named_buffers(/*recurse=*/true)) {
    if (!b.value().defined()) continue;
    if (tensors.emplace(b.key(), b.value()).second) order->push_back(b.key());
  }
  return tensors;
}

}  // namespace

std::vector<TensorSpec> ModuleSpecs(const torch::nn::Module& module) {
  std::vector<std::string> order;
  const auto tensors = ModuleTensors(module, &order);
  std::vector<TensorSpec> specs;
  specs.reserve(order.size());
  for (const std::string& name : order) {
    const at::Tensor& t = tensors.at(name);
    specs.push_back({name,
                     DtypeName(t.scalar_type()),
                     std::vector<int64_t>(t.sizes().begin(), t.sizes().end())});
  }
  return specs;
}

StrictLoadReport LoadStateDictStrict(torch::nn::Module& module,
                                     const StateDict& state_dict,
                                     const std::string& source_name,
                                     const StrictLoadOptions& options) {
  options.Check();
  std::vector<std::string> order;
  auto targets = ModuleTensors(module, &order);
  KeyComparison cmp =
      CompareKeys(ModuleSpecs(module), SpecsOf(state_dict), false);
  // Dtype compatibility is checked here, not by CompareKeys: widths may differ.
  for (const auto& [name, src] : state_dict.tensors) {
    const auto it = targets.find(name);
    if (it == targets.end()) continue;
    const at::ScalarType want = it->second.scalar_type();
    const at::ScalarType have = src.scalar_type();
    if (want == have) continue;
    const bool both_float =
        at::isFloatingType(want) && at::isFloatingType(have);
    if (!both_float || !options.convert_float_dtypes) {
      cmp.dtype_mismatch.push_back(name + ": module has " + DtypeName(want) +
                                   ", checkpoint has " + DtypeName(have));
    }
  }
  if (!cmp.ok()) {
    throw std::runtime_error(
        "Cannot load '" + source_name + "' into the " + module.name() +
        " module: the state dict does not match the architecture (" +
        std::to_string(cmp.missing.size()) + " missing, " +
        std::to_string(cmp.unexpected.size()) + " unexpected, " +
        std::to_string(cmp.shape_mismatch.size()) + " mis-shaped, " +
        std::to_string(cmp.dtype_mismatch.size()) +
        " incompatible-dtype keys)\n" + cmp.ToString());
  }
  StrictLoadReport report;
  at::NoGradGuard no_grad;
  for (const auto& [name, src] : state_dict.tensors) {
    at::Tensor& dst = targets.at(name);
    if (dst.scalar_type() != src.scalar_type()) ++report.converted;
    dst.copy_(src);
    ++report.loaded;
  }
  return report;
}

}  // namespace l2m
