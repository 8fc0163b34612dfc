// oneDNN convolution: primitive descriptors built once per geometry and kept in a cache, user
// buffers (NCHW, OIHW) reordered into the layouts the primitives prefer and back. oneDNN runs on the
// same OpenMP threads as the rest of the backend.
#include "backend/cpu/conv2d_onednn.h"

#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <tuple>
#include <unordered_map>

#include "dl/config.h"
#include "dl/core/error.h"

#if DL_WITH_ONEDNN
#include <oneapi/dnnl/dnnl.hpp>

#include "backend/cpu/scratch.h"
#endif

namespace dl::cpu {

#if !DL_WITH_ONEDNN

bool onednn_available() { return false; }
bool onednn_bf16_available() { return false; }
bool onednn_conv2d_forward(const Conv2dGeometry&, const void*, const float*, const float*, void*) { return false; }
bool onednn_conv2d_backward(const Conv2dGeometry&, const void*, const float*, const void*, void*, float*, float*) {
  return false;
}

#else

namespace {

using dnnl::memory;
using Tag = memory::format_tag;
using Dims = memory::dims;

// Everything that decides the primitives: the geometry, the math precision and whether there is a bias.
using Key = std::tuple<int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int, int, int, int, int, int, int,
                       bool, bool, bool, bool, bool, bool>;
Key key_of(const Conv2dGeometry& g, bool bias) {
  return {g.n,
          g.c,
          g.h,
          g.w,
          g.k,
          g.r,
          g.s,
          g.p.stride[0],
          g.p.stride[1],
          g.p.padding[0],
          g.p.padding[1],
          g.p.dilation[0],
          g.p.dilation[1],
          g.p.groups,
          g.math == Precision::kBf16,
          bias,
          g.channels_last,
          g.relu,
          g.x_bf16,
          g.y_bf16};
}

struct Primitives {
  memory::desc src, wei, bias, dst;  // the user's layouts (NCHW or NHWC, [G]OIHW, X, NCHW or NHWC)
  dnnl::convolution_forward::primitive_desc fwd;
  dnnl::convolution_backward_data::primitive_desc bwd_data;
  dnnl::convolution_backward_weights::primitive_desc bwd_weights;
  dnnl::convolution_forward fwd_prim;
  dnnl::convolution_backward_data bwd_data_prim;
  dnnl::convolution_backward_weights bwd_weights_prim;
};

struct Engine {
  dnnl::engine engine{dnnl::engine::kind::cpu, 0};
  dnnl::stream stream{engine};
  std::mutex mu;
  std::map<Key, std::unique_ptr<Primitives> > cache;
};

Engine& engine() {
  static Engine* e = new Engine();  // kept for the process: primitives may be used until exit
  return *e;
}

Primitives& primitives_for(const Conv2dGeometry& g, bool bias) {
  Engine& e = engine();
  const Key key = key_of(g, bias);
  auto it = e.cache.find(key);
  if (it != e.cache.end()) return *it->second;

  // Note [bf16 convolution]: under bf16 the operands (src, weights, diff_dst) are rounded to bfloat16
  // by the same reorders that move them into oneDNN's blocked layouts, and the products accumulate in
  // float32; what comes out (dst, diff_src, diff_weights, the bias gradient: a float32 sum of the
  // rounded diff_dst) is float32, so that batch norm, the losses and the optimiser see float32 as
  // everywhere else. The bias itself stays float32. With bf16 activations (g.x_bf16, g.y_bf16: Note [bf16
  // activations] in ops/precision.cpp) src and diff_src, dst and diff_dst are bfloat16 in the user's own
  // buffers, and the kernels read and write them as they are; the weight, its gradient and the bias stay
  // float32.
  const auto f32 = memory::data_type::f32, bf16 = memory::data_type::bf16;
  const auto op_type = g.math == Precision::kBf16 ? bf16 : f32;
  const auto x_type = g.x_bf16 ? bf16 : f32, y_type = g.y_bf16 ? bf16 : f32;
  const Dims src_dims{g.n, g.c, g.h, g.w}, dst_dims{g.n, g.k, g.ho, g.wo}, bias_dims{g.k};
  const bool grouped = g.p.groups > 1;
  const Dims wei_dims =
      grouped ? Dims{g.p.groups, g.k / g.p.groups, g.c / g.p.groups, g.r, g.s} : Dims{g.k, g.c, g.r, g.s};
  const Dims strides{g.p.stride[0], g.p.stride[1]};
  const Dims dilates{g.p.dilation[0] - 1, g.p.dilation[1] - 1};  // oneDNN counts the gaps
  const Dims pad_l{g.p.padding[0], g.p.padding[1]};
  // Right padding that gives exactly Ho x Wo (the floor of window_output_size may leave a remainder).
  const Dims pad_r{(g.ho - 1) * g.p.stride[0] + (g.r - 1) * g.p.dilation[0] + 1 - g.h - g.p.padding[0],
                   (g.wo - 1) * g.p.stride[1] + (g.s - 1) * g.p.dilation[1] + 1 - g.w - g.p.padding[1]};

  auto p = std::make_unique<Primitives>();
  // Note [channels-last convolution]: with NHWC tensors the user's layout is the one oneDNN's AVX-512 and
  // AMX kernels (brgconv) pick for themselves, so src and dst are used in place: no reorder in or out (under
  // bf16, src and dy are still converted to bf16, element by element, in the same layout).
  const Tag act = g.channels_last ? Tag::nhwc : Tag::nchw;
  p->src = memory::desc(src_dims, x_type, act);
  p->dst = memory::desc(dst_dims, y_type, act);
  p->wei = memory::desc(wei_dims, f32, grouped ? Tag::goihw : Tag::oihw);
  p->bias = memory::desc(bias_dims, f32, Tag::x);
  // Channels-last activations are given to oneDNN as they are (as PyTorch does), NCHW ones leave it the
  // choice of its blocked layouts.
  const Tag act_choice = g.channels_last ? Tag::nhwc : Tag::any;
  const memory::desc src_any(src_dims, op_type, act_choice), dst_any(dst_dims, y_type, act_choice),
      wei_any(wei_dims, op_type, Tag::any), ddst_any(dst_dims, op_type, act_choice);
  const auto alg = dnnl::algorithm::convolution_direct;

  const auto fwd_desc = bias ? dnnl::convolution_forward::desc(dnnl::prop_kind::forward_training, alg, src_any, wei_any,
                                                               p->bias, dst_any, strides, dilates, pad_l, pad_r)
                             : dnnl::convolution_forward::desc(dnnl::prop_kind::forward_training, alg, src_any, wei_any,
                                                               dst_any, strides, dilates, pad_l, pad_r);
  // Note [onednn scratchpads]: each primitive's scratchpad comes from libdl's caching allocator for the
  // length of one call (run() below), rather than being held by the primitive for the process: cached
  // primitives then keep no memory of their own, and the bytes show in the allocator's statistics.
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  dnnl::primitive_attr fwd_attr;  // its own object: a copy of `attr` would share the handle
  fwd_attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  if (g.relu) {  // Note [fused conv relu]: max(0, .) in the kernel's own output pass
    dnnl::post_ops relu;
    relu.append_eltwise(1.0f, dnnl::algorithm::eltwise_relu, 0.0f, 0.0f);
    fwd_attr.set_post_ops(relu);
  }
  p->fwd = dnnl::convolution_forward::primitive_desc(fwd_desc, fwd_attr, e.engine);
  p->bwd_data = dnnl::convolution_backward_data::primitive_desc(
      dnnl::convolution_backward_data::desc(alg, memory::desc(src_dims, x_type, act_choice), wei_any, ddst_any, strides,
                                            dilates, pad_l, pad_r),
      attr, e.engine, p->fwd);
  const auto bwd_w_desc =
      bias ? dnnl::convolution_backward_weights::desc(alg, src_any, memory::desc(wei_dims, f32, Tag::any), p->bias,
                                                      ddst_any, strides, dilates, pad_l, pad_r)
           : dnnl::convolution_backward_weights::desc(alg, src_any, memory::desc(wei_dims, f32, Tag::any), ddst_any,
                                                      strides, dilates, pad_l, pad_r);
  p->bwd_weights = dnnl::convolution_backward_weights::primitive_desc(bwd_w_desc, attr, e.engine, p->fwd);
  p->fwd_prim = dnnl::convolution_forward(p->fwd);
  p->bwd_data_prim = dnnl::convolution_backward_data(p->bwd_data);
  p->bwd_weights_prim = dnnl::convolution_backward_weights(p->bwd_weights);
  return *e.cache.emplace(key, std::move(p)).first->second;
}

// A oneDNN memory in the layout `want`: the user's buffer itself when the layouts agree, else a
// buffer from the caching allocator (filled from the user's buffer when `load`).
class Staged {
 public:
  Staged(const memory::desc& user, const memory::desc& want, void* data, bool load, Engine& e)
      : user_(user, e.engine, data) {
    if (user == want) {
      mem_ = user_;
      return;
    }
    buffer_.ensure(want.get_size());
    mem_ = memory(want, e.engine, buffer_.data());
    if (load) dnnl::reorder(user_, mem_).execute(e.stream, user_, mem_);
  }
  // Copies the result back into the user's buffer when it was staged.
  void store(Engine& e) {
    if (mem_ != user_) dnnl::reorder(mem_, user_).execute(e.stream, mem_, user_);
  }
  const memory& mem() const { return mem_; }

 private:
  memory user_, mem_;
  Scratch<uint8_t> buffer_;
};

// Executes `prim` with a scratchpad of the size its descriptor asks for (Note [onednn scratchpads]) and
// waits for it, before the scratchpad and any staged buffer go back to the allocator.
void run(const dnnl::primitive& prim, const dnnl::primitive_desc_base& pd, std::unordered_map<int, memory> args,
         Engine& e) {
  Scratch<uint8_t> scratch;
  const memory::desc sd = pd.scratchpad_desc();
  if (sd.get_size() > 0) args.emplace(DNNL_ARG_SCRATCHPAD, memory(sd, e.engine, scratch.ensure(sd.get_size())));
  prim.execute(e.stream, args);
  e.stream.wait();
}

// Runs `body` with the engine's lock held and turns oneDNN's errors into dl::Error.
template <typename F>
void guarded(const char* what, F&& body) {
  try {
    std::lock_guard<std::mutex> lock(engine().mu);
    body(engine());
  } catch (const dnnl::error& err) {
    DL_THROW("oneDNN ", what, " failed: ", err.what(), " (status ", static_cast<int>(err.status), ")");
  }
}

}  // namespace

bool onednn_available() { return true; }

bool onednn_bf16_available() {
  const auto isa = dnnl::get_effective_cpu_isa();
  return isa == dnnl::cpu_isa::avx512_core_bf16 || isa == dnnl::cpu_isa::avx512_core_amx;
}

bool onednn_conv2d_forward(const Conv2dGeometry& g, const void* x, const float* w, const float* b, void* y) {
  guarded("convolution forward", [&](Engine& e) {
    Primitives& p = primitives_for(g, b != nullptr);
    Staged src(p.src, p.fwd.src_desc(), const_cast<void*>(x), true, e);
    Staged wei(p.wei, p.fwd.weights_desc(), const_cast<float*>(w), true, e);
    Staged dst(p.dst, p.fwd.dst_desc(), y, false, e);
    std::unordered_map<int, memory> args{
        {DNNL_ARG_SRC, src.mem()}, {DNNL_ARG_WEIGHTS, wei.mem()}, {DNNL_ARG_DST, dst.mem()}};
    if (b) args.emplace(DNNL_ARG_BIAS, memory(p.bias, e.engine, const_cast<float*>(b)));
    run(p.fwd_prim, p.fwd, std::move(args), e);
    dst.store(e);
    e.stream.wait();
  });
  return true;
}

bool onednn_conv2d_backward(const Conv2dGeometry& g_in, const void* x, const float* w, const void* dy, void* dx,
                            float* dw, float* db) {
  // The backward gets dy already masked by a fused ReLU: the primitives of the plain convolution serve it.
  Conv2dGeometry g = g_in;
  g.relu = false;
  guarded("convolution backward", [&](Engine& e) {
    Primitives& p = primitives_for(g, db != nullptr);
    // dy is reordered once when both backward primitives want the same layout (the usual case).
    std::optional<Staged> ddst_data, ddst_weights;
    if (dx) ddst_data.emplace(p.dst, p.bwd_data.diff_dst_desc(), const_cast<void*>(dy), true, e);
    if (dw || db) {
      if (!dx || p.bwd_weights.diff_dst_desc() != p.bwd_data.diff_dst_desc())
        ddst_weights.emplace(p.dst, p.bwd_weights.diff_dst_desc(), const_cast<void*>(dy), true, e);
    }
    if (dx) {
      Staged wei(p.wei, p.bwd_data.weights_desc(), const_cast<float*>(w), true, e);
      Staged dsrc(p.src, p.bwd_data.diff_src_desc(), dx, false, e);
      run(p.bwd_data_prim, p.bwd_data,
          {{DNNL_ARG_DIFF_DST, ddst_data->mem()}, {DNNL_ARG_WEIGHTS, wei.mem()}, {DNNL_ARG_DIFF_SRC, dsrc.mem()}}, e);
      dsrc.store(e);
      e.stream.wait();  // before the staged buffers go back to the allocator
    }
    if (dw || db) {
      // Without a wanted dw, oneDNN still computes it: into a throw-away buffer.
      Scratch<float> dw_sink;
      float* dw_out = dw ? dw : dw_sink.ensure(static_cast<size_t>(p.wei.get_size() / sizeof(float)));
      Staged src(p.src, p.bwd_weights.src_desc(), const_cast<void*>(x), true, e);
      const memory& ddst = ddst_weights ? ddst_weights->mem() : ddst_data->mem();
      Staged dwei(p.wei, p.bwd_weights.diff_weights_desc(), dw_out, false, e);
      std::unordered_map<int, memory> args{
          {DNNL_ARG_SRC, src.mem()}, {DNNL_ARG_DIFF_DST, ddst}, {DNNL_ARG_DIFF_WEIGHTS, dwei.mem()}};
      if (db) args.emplace(DNNL_ARG_DIFF_BIAS, memory(p.bias, e.engine, db));
      run(p.bwd_weights_prim, p.bwd_weights, std::move(args), e);
      dwei.store(e);
      e.stream.wait();
    }
  });
  return true;
}

#endif  // DL_WITH_ONEDNN

}  // namespace dl::cpu
