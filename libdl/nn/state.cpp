// Saving and loading module weights, all-or-nothing.
#include "dl/nn/state.h"

#include <unordered_map>

#include "dl/core/safetensors.h"

namespace dl::nn {

void save_weights(const Module& m, const std::string& path) {
  TensorFile f;
  f.metadata["kind"] = "weights";
  f.tensors = m.state();
  save_tensor_file(path, f);
}

void load_state(Module& m, const NamedTensors& tensors, const std::string& origin, const LoadOptions& o) {
  const NamedTensors mine = m.state();
  auto skipped = [&](const std::string& name) {
    for (const auto& suffix : o.skip_suffixes)
      if (name.size() >= suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0) return true;
    return false;
  };
  // By name through a map: a file may hold millions of tensors.
  std::unordered_map<std::string, const Tensor*> by_name;
  for (const auto& [n, u] : tensors) by_name[n] = &u;
  std::unordered_map<std::string, bool> known_names;
  for (const auto& [name, t] : mine) known_names[name] = true;
  std::vector<const Tensor*> sources;
  for (const auto& [name, t] : mine) {
    const auto found = by_name.find(name);
    const Tensor* src = found == by_name.end() ? nullptr : found->second;
    if (!src && o.allow_missing) {
      sources.push_back(nullptr);
      continue;
    }
    DL_CHECK(src, origin, ": the model's tensor '", name, "' ", t.shape().str(), " is missing (the file holds ",
             tensors.size(), " tensors", tensors.empty() ? "" : ", the first '" + tensors[0].first + "'", ")");
    DL_CHECK(src->shape() == t.shape() && src->dtype() == t.dtype(), origin, ": tensor '", name, "' is ",
             src->shape().str(), " ", dtype_name(src->dtype()), " in the file, the model expects ", t.shape().str(), " ",
             dtype_name(t.dtype()));
    // A batch-norm variance below zero cannot come from training: a corrupt or hostile file.
    const std::string var = "running_var";
    if (name.size() >= var.size() && name.compare(name.size() - var.size(), var.size(), var) == 0 &&
        src->dtype() == DType::kFloat32) {
      const Tensor c = src->to(Device::cpu());
      const float* v = c.data<float>();
      for (int64_t i = 0; i < c.numel(); ++i)
        DL_CHECK(v[i] >= 0, origin, ": tensor '", name, "' holds the variance ", v[i], " at element ", i,
                 "; a batch-norm variance is never negative");
    }
    sources.push_back(src);
  }
  for (const auto& [n, u] : tensors) {
    if (o.allow_unexpected || skipped(n)) continue;
    DL_CHECK(known_names.count(n), origin, ": the file's tensor '", n, "' ", u.shape().str(), " has no counterpart in the model");
  }
  for (size_t i = 0; i < mine.size(); ++i) {
    if (!sources[i]) continue;
    Tensor dst = mine[i].second;
    dst.copy_(*sources[i]);
  }
}

void save_safetensors_weights(const Module& m, const std::string& path) {
  save_safetensors(path, m.state(), {{"format", "pt"}, {"producer", "libdl"}});
}

void load_safetensors_weights(Module& m, const std::string& path, const LoadOptions& o) {
  load_state(m, load_safetensors(path).tensors, path, o);
}

void load_weights(Module& m, const std::string& path) {
  const TensorFile f = load_tensor_file(path);
  load_state(m, f.tensors, path);
}

}  // namespace dl::nn
