// Saving and loading module weights, all-or-nothing.
#include "dl/nn/state.h"

#include <cstring>
#include <fstream>
#include <unordered_map>

#include "dl/core/safetensors.h"

namespace dl::nn {

// Note [one weights format]: a model's weights are written as safetensors, and only so. It is the
// format the field exchanges weights in (PyTorch, Hugging Face, torchvision state_dicts converted
// once), it holds exactly what weights are (named tensors of plain dtypes and string metadata), a
// stranger's file is read strictly without executing anything (Note [strict safetensors header]),
// and a file libdl writes loads in PyTorch with `safetensors.torch.load_file` as it is. The libdl
// tensor file (dl/core/serialize.h) stays for what is not weights: a trainer's checkpoint, whose
// optimiser moments, step counters and RNG state never leave libdl and whose CRC-32 over every byte
// must refuse a bit flipped on disk before a resumed run trains on it. load_weights still reads weights
// that an earlier libdl wrote as a tensor file, telling the two apart by their first bytes.

void save_weights(const Module& m, const std::string& path) {
  save_safetensors(path, m.state(), {{"format", "pt"}, {"producer", "libdl"}});
}

void load_state(Module& m, const NamedTensors& tensors, const std::string& origin, const LoadOptions& o) {
  const NamedTensors mine = m.state();
  auto skipped = [&](const std::string& name) {
    for (const auto& suffix : o.skip_suffixes)
      if (name.size() >= suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0)
        return true;
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
    // Floating dtypes convert into the model's (a bfloat16 or float16 file into a float32 model, as
    // PyTorch's load_state_dict copies); any other difference is an error.
    const bool same_kind =
        src->dtype() == t.dtype() || (is_floating_point(src->dtype()) && is_floating_point(t.dtype()));
    DL_CHECK(src->shape() == t.shape() && same_kind, origin, ": tensor '", name, "' is ", src->shape().str(), " ",
             dtype_name(src->dtype()), " in the file, the model expects ", t.shape().str(), " ", dtype_name(t.dtype()));
    // A batch-norm variance below zero cannot come from training: a corrupt or hostile file.
    const std::string var = "running_var";
    if (name.size() >= var.size() && name.compare(name.size() - var.size(), var.size(), var) == 0 &&
        is_floating_point(src->dtype())) {
      const std::vector<float> v = src->to_vector_f32();
      for (size_t i = 0; i < v.size(); ++i)
        DL_CHECK(v[i] >= 0, origin, ": tensor '", name, "' holds the variance ", v[i], " at element ", i,
                 "; a batch-norm variance is never negative");
    }
    sources.push_back(src);
  }
  for (const auto& [n, u] : tensors) {
    if (o.allow_unexpected || skipped(n)) continue;
    DL_CHECK(known_names.count(n), origin, ": the file's tensor '", n, "' ", u.shape().str(),
             " has no counterpart in the model");
  }
  for (size_t i = 0; i < mine.size(); ++i) {
    if (!sources[i]) continue;
    Tensor dst = mine[i].second;
    dst.copy_(sources[i]->dtype() == dst.dtype() ? *sources[i] : sources[i]->to(dst.dtype()));
  }
}

void load_weights(Module& m, const std::string& path, const LoadOptions& o) {
  char magic[8] = {};
  std::ifstream(path, std::ios::binary).read(magic, sizeof magic);
  if (std::memcmp(magic, "DLTENSR1", 8) == 0) {
    load_state(m, load_tensor_file(path).tensors, path, o);  // written by libdl before Note [one weights format]
    return;
  }
  load_state(m, load_safetensors(path).tensors, path, o);
}

}  // namespace dl::nn
