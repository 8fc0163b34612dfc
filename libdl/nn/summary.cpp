// A model's summary from one hooked forward (dl/nn/summary.h).
#include "dl/nn/summary.h"

#include <algorithm>
#include <cstdio>
#include <map>
#include <sstream>

#include "dl/autograd/engine.h"
#include "dl/nn/layers.h"

namespace dl::nn {
namespace {

int64_t own_parameters(const Module& m) {
  int64_t n = m.num_parameters();
  for (const auto& [name, child] : m.named_children()) n -= child->num_parameters();
  return n;
}

// Note [summary FLOPs] in dl/nn/summary.h.
int64_t layer_flops(const Module& m, const Tensor& in, const Tensor& out) {
  const int64_t outputs = out.numel();
  if (const auto* conv = dynamic_cast<const Conv2d*>(&m)) {
    const int64_t per_output = conv->weight.numel() / conv->weight.size(0);  // C_in / groups x R x S
    return 2 * outputs * per_output + (conv->bias.defined() ? outputs : 0);
  }
  if (const auto* up = dynamic_cast<const ConvTranspose2d*>(&m)) {
    const int64_t per_input = up->weight.numel() / up->weight.size(0);  // C_out / groups x R x S
    return 2 * in.numel() * per_input + (up->bias.defined() ? outputs : 0);
  }
  if (const auto* fc = dynamic_cast<const Linear*>(&m))
    return 2 * outputs * fc->weight.size(1) + (fc->bias.defined() ? outputs : 0);
  if (const auto* bn = dynamic_cast<const BatchNorm2d*>(&m)) return bn->folded ? 0 : 2 * outputs;
  return 0;
}

std::string human(double value, const char* const* units, double step) {
  int u = 0;
  while (value >= step && units[u + 1] != nullptr) value /= step, ++u;
  char buf[32];
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.2f %s", value, units[u]);
  return buf;
}
std::string bytes(int64_t b) {
  static const char* const units[] = {"B", "KiB", "MiB", "GiB", "TiB", nullptr};
  return human(static_cast<double>(b), units, 1024);
}
std::string flop_count(int64_t f) {
  static const char* const units[] = {"FLOP", "kFLOP", "MFLOP", "GFLOP", "TFLOP", nullptr};
  return human(static_cast<double>(f), units, 1000);
}

// Every module's train/eval flag, put back on destruction.
class TrainFlags {
 public:
  explicit TrainFlags(Module& model) {
    for (const auto& [name, m] : model.named_modules()) flags_.emplace_back(m, m->is_training());
  }
  ~TrainFlags() {
    for (const auto& [m, on] : flags_) m->train(on);  // depth first: each child after its parent
  }
  TrainFlags(const TrainFlags&) = delete;
  TrainFlags& operator=(const TrainFlags&) = delete;

 private:
  std::vector<std::pair<Module*, bool>> flags_;
};

}  // namespace

Summary summary(Layer& model, const Shape& input_shape, DType dtype, Device device) {
  Summary s;
  s.input_shape = input_shape;
  s.dtype = dtype;
  s.device = device;
  for (const ParamRef& p : model.parameter_refs()) {
    s.parameters += p.tensor.numel();
    s.parameter_bytes += static_cast<int64_t>(p.tensor.nbytes());
    if (p.tensor.requires_grad()) s.trainable_parameters += p.tensor.numel();
  }

  // A row opens when a call begins (pre-hook) and is filled in when it returns (forward hook).
  std::map<Module*, std::string> names;  // the first name of a module registered twice
  for (const auto& [name, m] : model.named_modules()) names.emplace(m, name);
  std::vector<size_t> open;
  std::vector<ScopedHook> hooks;
  for (const auto& entry : names) {
    auto* layer = dynamic_cast<Layer*>(entry.first);
    if (layer == nullptr) continue;  // a grouping Module: never called
    const std::string& name = entry.second;
    hooks.emplace_back(layer->register_forward_pre_hook([&s, &open, &name](Module& called, const Tensor&) {
      SummaryRow row;
      row.name = name;
      row.type = called.type_name();
      row.depth = static_cast<int>(open.size());
      row.parameters = own_parameters(called);
      row.leaf = called.named_children().empty();
      open.push_back(s.rows.size());
      s.rows.push_back(std::move(row));
    }));
    hooks.emplace_back(layer->register_forward_hook([&s, &open](Module& called, const Tensor& in, const Tensor& out) {
      SummaryRow& row = s.rows[open.back()];
      open.pop_back();
      row.output_shape = out.shape();
      row.output_bytes = static_cast<int64_t>(out.nbytes());
      row.flops = layer_flops(called, in, out);
    }));
  }

  TrainFlags flags(model);
  model.eval();
  autograd::NoGradGuard no_grad;
  s.output_shape = model(Tensor::zeros(input_shape, dtype, device)).shape();
  for (const SummaryRow& row : s.rows) {
    s.flops += row.flops;
    if (row.leaf) s.activation_bytes += row.output_bytes;
  }
  return s;
}

Summary summary(Layer& model, const Shape& input_shape) {
  const auto params = model.parameters();
  const auto first = std::find_if(params.begin(), params.end(), [](const Tensor& p) { return is_floating(p.dtype()); });
  if (first == params.end()) return summary(model, input_shape, DType::kFloat32, Device::cpu());
  return summary(model, input_shape, first->dtype(), first->device());
}

std::string Summary::str() const {
  std::vector<std::vector<std::string>> cells{{"layer", "type", "output shape", "parameters", "FLOPs", "output"}};
  for (const SummaryRow& r : rows)
    cells.push_back({std::string(2 * r.depth, ' ') + (r.name.empty() ? "(model)" : r.name), r.type,
                     r.output_shape.str(), std::to_string(r.parameters), std::to_string(r.flops),
                     bytes(r.output_bytes)});
  std::vector<size_t> width(cells[0].size(), 0);
  for (const auto& line : cells)
    for (size_t c = 0; c < line.size(); ++c) width[c] = std::max(width[c], line[c].size());
  std::ostringstream os;
  auto print = [&](const std::vector<std::string>& line) {
    for (size_t c = 0; c < line.size(); ++c) {
      const bool numeric = c >= 3;  // numbers right-aligned, text left-aligned
      const std::string pad(width[c] - line[c].size(), ' ');
      os << (c ? "  " : "") << (numeric ? pad + line[c] : line[c] + (c + 1 < line.size() ? pad : ""));
    }
    os << '\n';
  };
  size_t total_width = 0;
  for (size_t w : width) total_width += w + 2;
  print(cells[0]);
  os << std::string(total_width - 2, '-') << '\n';
  for (size_t i = 1; i < cells.size(); ++i) print(cells[i]);
  os << std::string(total_width - 2, '-') << '\n';
  os << "input " << input_shape.str() << " " << dtype_name(dtype) << " on " << device.str() << " -> output "
     << output_shape.str() << '\n';
  os << "parameters: " << parameters << " (" << trainable_parameters << " trainable), " << bytes(parameter_bytes)
     << '\n';
  os << "forward: " << flops << " FLOPs (" << flop_count(flops) << ", a multiply-add counted as 2), "
     << bytes(activation_bytes) << " of layer outputs\n";
  return os.str();
}

std::ostream& operator<<(std::ostream& os, const Summary& s) { return os << s.str(); }

}  // namespace dl::nn
