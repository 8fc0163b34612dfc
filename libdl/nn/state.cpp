// Saving and loading module weights, all-or-nothing.
#include "dl/nn/state.h"

namespace dl::nn {

void save_weights(const Module& m, const std::string& path) {
  TensorFile f;
  f.metadata["kind"] = "weights";
  f.tensors = m.state();
  save_tensor_file(path, f);
}

void load_state(Module& m, const NamedTensors& tensors, const std::string& origin) {
  const NamedTensors mine = m.state();
  std::vector<const Tensor*> sources;
  for (const auto& [name, t] : mine) {
    const Tensor* src = nullptr;
    for (const auto& [n, u] : tensors)
      if (n == name) src = &u;
    DL_CHECK(src, origin, ": the model's tensor '", name, "' ", t.shape().str(), " is missing (the file holds ",
             tensors.size(), " tensors", tensors.empty() ? "" : ", the first '" + tensors[0].first + "'", ")");
    DL_CHECK(src->shape() == t.shape() && src->dtype() == t.dtype(), origin, ": tensor '", name, "' is ",
             src->shape().str(), " ", dtype_name(src->dtype()), " in the file, the model expects ", t.shape().str(), " ",
             dtype_name(t.dtype()));
    sources.push_back(src);
  }
  for (const auto& [n, u] : tensors) {
    bool known = false;
    for (const auto& [name, t] : mine) known = known || name == n;
    DL_CHECK(known, origin, ": the file's tensor '", n, "' ", u.shape().str(), " has no counterpart in the model");
  }
  for (size_t i = 0; i < mine.size(); ++i) {
    Tensor dst = mine[i].second;
    dst.copy_(*sources[i]);
  }
}

void load_weights(Module& m, const std::string& path) {
  const TensorFile f = load_tensor_file(path);
  load_state(m, f.tensors, path);
}

}  // namespace dl::nn
