// Custom ops (dl/ops/custom.h): the checks and the dispatch on the inputs' device, the bodies' results
// checked as libdl's own front ends check theirs, the backward recorded beside the forward.
#include "dl/ops/custom.h"

#include <optional>
#include <utility>

#include "dl/autograd/engine.h"
#include "dl/core/cuda.h"
#include "dl/core/error.h"
#include "dl/ops/trace.h"

namespace dl::ops {
namespace {

const char* device_kind(DeviceType type) { return type == DeviceType::kCUDA ? "CUDA" : "CPU"; }

// The inputs' one device; names the op and the first input that differs.
Device common_device(const std::string& op, const std::vector<Tensor>& inputs) {
  DL_CHECK(!inputs.empty(), "custom op '", op, "': expected at least one input, got none");
  for (size_t i = 0; i < inputs.size(); ++i)
    DL_CHECK(inputs[i].defined(), "custom op '", op, "': input ", i, " is an undefined tensor");
  const Device device = inputs[0].device();
  for (size_t i = 1; i < inputs.size(); ++i)
    DL_CHECK(inputs[i].device() == device, "custom op '", op, "': input ", i, " is on ", inputs[i].device().str(),
             " but input 0 is on ", device.str(), "; a tensor moves only by an explicit to(Device)");
  return device;
}

// Runs `fn` with the device current when it is a CUDA device (a user's kernel launches go there).
template <typename Fn>
auto on_device(Device device, Fn&& fn) {
  std::optional<cuda::DeviceGuard> guard;
  if (device.is_cuda()) guard.emplace(device.index);
  return fn();
}

void check_gradients(const std::string& op, Device device, const std::vector<Tensor>& grads,
                     const std::vector<Tensor>& inputs) {
  DL_CHECK(grads.size() == inputs.size(), "custom op '", op, "': its ", device_kind(device.type), " backward returned ",
           grads.size(), " gradients for ", inputs.size(), " inputs");
  for (size_t i = 0; i < grads.size(); ++i)
    DL_CHECK(!grads[i].defined() || grads[i].device() == device, "custom op '", op, "': its ", device_kind(device.type),
             " backward returned the gradient of input ", i, " on ", grads[i].device().str(), ", expected ",
             device.str());
}

}  // namespace

CustomOp::CustomOp(std::string name) : name_(std::move(name)) {}

CustomOp& CustomOp::cpu(CustomForwardFn forward, CustomBackwardFn backward) {
  cpu_ = {std::move(forward), std::move(backward)};
  return *this;
}

CustomOp& CustomOp::cuda(CustomForwardFn forward, CustomBackwardFn backward) {
  cuda_ = {std::move(forward), std::move(backward)};
  return *this;
}

Tensor CustomOp::operator()(const std::vector<Tensor>& inputs) const {
  const Device device = common_device(name_, inputs);
  const CustomBody& b = body(device.type);
  DL_CHECK(b.forward, "custom op '", name_, "' has no ", device_kind(device.type), " body, and its inputs are on ",
           device.str(), " (define it with .", device.is_cuda() ? "cuda" : "cpu",
           "(forward, backward); libdl never runs an op on another device than its inputs')");
  // No output: a custom op has no form outside libdl, and an exporter names it if its inputs are traced.
  if (auto* tr = detail::active_tracer()) tr->record({name_.c_str(), inputs, Tensor()});
  const bool record = autograd::needs_record(inputs);
  if (record) {
    for (size_t i = 0; i < inputs.size(); ++i)
      DL_CHECK(!inputs[i].requires_grad() || b.backward, "custom op '", name_, "' has no ", device_kind(device.type),
               " backward, but input ", i, " requires grad (define the backward, or run under NoGradGuard)");
  }

  Tensor output = on_device(device, [&] {
    autograd::NoGradGuard no_grad;  // what the body computes with is not part of the graph
    return b.forward(inputs);
  });
  DL_CHECK(output.defined(), "custom op '", name_, "': its ", device_kind(device.type),
           " forward returned an undefined tensor");
  DL_CHECK(output.device() == device, "custom op '", name_, "': its ", device_kind(device.type),
           " forward returned a tensor on ", output.device().str(), ", expected ", device.str());
  output = output.detach();  // a new handle: the graph node goes on it, never on an input the body returned
  if (!record) return output;

  std::vector<Tensor> saved;
  saved.reserve(inputs.size());
  for (const Tensor& t : inputs) saved.push_back(t.detach());
  const Tensor saved_output = output.detach();
  auto fn = [name = name_, device, backward = b.backward, saved = std::move(saved), saved_output](
                const Tensor& grad_output, const std::vector<bool>& needs_grad) {
    std::vector<Tensor> grads =
        on_device(device, [&] { return backward(saved, saved_output, grad_output, needs_grad); });
    check_gradients(name, device, grads, saved);
    return grads;
  };
  return autograd::record(name_.c_str(), output, inputs, std::move(fn));
}

}  // namespace dl::ops
