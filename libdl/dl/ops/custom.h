// Custom ops: a user's op with its own forward and backward bodies per device, dispatched on the device
// of its inputs like libdl's own ops, and differentiated by the same engine. examples/custom_op is a
// worked example (softplus with a slope, a CPU body and a CUDA kernel); README "Your own op on both
// devices" walks through it.
//
//   const dl::ops::CustomOp softplus = dl::ops::CustomOp("softplus_beta")
//       .cpu(cpu_forward, cpu_backward)      // std::function bodies, see below
//       .cuda(cuda_forward, cuda_backward);  // launches the user's kernel on libdl's stream
//   dl::Tensor y = softplus({x});
//
// The rules are those of libdl's own ops (DESIGN.md):
// - Every input lives on one device, and the op runs the body of that device. A device without a body
//   throws dl::Error naming the op and the device: nothing falls back to another device.
// - A forward returns a new tensor on the inputs' device; it runs with grad mode off (whatever ops it
//   calls record nothing) and, for CUDA, with the inputs' device current (dl::cuda::DeviceGuard). A CUDA
//   body launches its kernels on dl::cuda::current_stream(device) (Note [custom kernels on libdl's
//   stream] in dl/core/cuda.h); Tensor::data<T>() of a CUDA tensor is a device pointer.
// - A backward *returns* one gradient per input, undefined where needs_grad[i] is false, each of its
//   input's shape on the same device (it assigns; the engine accumulates). The inputs and the output are
//   kept for it from the forward until backward runs (Note [graph memory] in dl/autograd/engine.h).
//   An op whose body has no backward may run under NoGradGuard or on inputs that need no grad; on an
//   input that requires grad it throws.
// dl::testing::gradcheck (dl/testing/gradcheck.h) checks a CPU body's backward in float64.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "dl/core/device.h"
#include "dl/core/tensor.h"

namespace dl::ops {

// The output of the op from its inputs (all on one device).
using CustomForwardFn = std::function<Tensor(const std::vector<Tensor>& inputs)>;
// The gradients of the inputs from the forward's inputs and output and the gradient of the output.
using CustomBackwardFn =
    std::function<std::vector<Tensor>(const std::vector<Tensor>& inputs, const Tensor& output,
                                      const Tensor& grad_output, const std::vector<bool>& needs_grad)>;

// The bodies of one device.
struct CustomBody {
  CustomForwardFn forward;    // empty: the op has no body for this device
  CustomBackwardFn backward;  // empty: the op cannot be differentiated on this device
};

class CustomOp {
 public:
  // `name` names the op in errors and in the autograd graph.
  explicit CustomOp(std::string name);

  // Sets the bodies of a device; returns *this, so that a definition reads as one expression.
  CustomOp& cpu(CustomForwardFn forward, CustomBackwardFn backward = {});
  CustomOp& cuda(CustomForwardFn forward, CustomBackwardFn backward = {});

  const std::string& name() const { return name_; }
  bool has_body(DeviceType device) const { return static_cast<bool>(body(device).forward); }

  // Runs the body of the inputs' device and records its backward when some input requires grad.
  // Throws dl::Error when there are no inputs or one is undefined, the inputs live on different devices,
  // the device has no body, or an input requires grad and the body has no backward.
  Tensor operator()(const std::vector<Tensor>& inputs) const;

 private:
  const CustomBody& body(DeviceType device) const { return device == DeviceType::kCUDA ? cuda_ : cpu_; }

  std::string name_;
  CustomBody cpu_;
  CustomBody cuda_;
};

}  // namespace dl::ops
