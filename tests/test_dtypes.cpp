// The dtypes beyond float32 (issue 13, item 3): bool masks, bfloat16 and float16 storage, int64, and
// what each can do: factories, conversions with their rounding, shape ops by element size, files of
// both formats (bits kept, hostile bytes refused), loading weights across floating dtypes, and the
// errors of ops that compute in float32 / float64 only. The MPI reductions of the 16-bit types are in
// test_dist (Collectives.AllReduceOfSixteenBitFloatsAndBools), their CUDA casts in test_kernels.
#include <dl/dl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

namespace {

using dl::BFloat16;
using dl::DType;
using dl::Float16;
using dl::Shape;
using dl::Tensor;
namespace ops = dl::ops;
namespace fs = std::filesystem;

// Element types name their dtype at compile time; anything else is not a TensorElement, so
// data<T>(), from_vector<T> and item<T> do not compile for it.
static_assert(dl::DTypeOf<bool>::value == DType::kBool);
static_assert(dl::DTypeOf<BFloat16>::value == DType::kBFloat16);
static_assert(dl::DTypeOf<Float16>::value == DType::kFloat16);
static_assert(dl::DTypeOf<int64_t>::value == DType::kInt64);
static_assert(dl::TensorElement<bool> && dl::TensorElement<BFloat16> && dl::TensorElement<Float16>);
static_assert(!dl::TensorElement<char> && !dl::TensorElement<int16_t> && !dl::TensorElement<long double>);

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const dl::Error& e) {
    return e.what();
  }
  return "(no error)";
}
#define EXPECT_CONTAINS(text, needle) EXPECT_NE(std::string(text).find(needle), std::string::npos) << (text)

std::vector<uint16_t> bits(const Tensor& t) {
  const auto* p = static_cast<const uint16_t*>(t.raw_data());
  return std::vector<uint16_t>(p, p + t.numel());
}

fs::path temp_dir(const std::string& tag) {
  const fs::path d = fs::temp_directory_path() / ("dl_dtypes_" + tag + "_" + std::to_string(::getpid()));
  fs::create_directories(d);
  return d;
}

TEST(DTypes, SizesAndNames) {
  EXPECT_EQ(dl::dtype_size(DType::kBool), 1u);
  EXPECT_EQ(dl::dtype_size(DType::kBFloat16), 2u);
  EXPECT_EQ(dl::dtype_size(DType::kFloat16), 2u);
  EXPECT_STREQ(dl::dtype_name(DType::kBool), "bool");
  EXPECT_STREQ(dl::dtype_name(DType::kBFloat16), "bfloat16");
  EXPECT_STREQ(dl::dtype_name(DType::kFloat16), "float16");
  EXPECT_TRUE(dl::is_floating_point(DType::kBFloat16));
  EXPECT_FALSE(dl::is_floating(DType::kFloat16));  // not a dtype the ops compute in
  EXPECT_EQ(Tensor::zeros({3, 5}, DType::kBFloat16).nbytes(), 30u);
}

// Conversions from float round to nearest even on the bits; to float they are exact.
TEST(DTypes, SixteenBitRoundingByHand) {
  EXPECT_EQ(BFloat16(1.0f).bits, 0x3F80);
  EXPECT_EQ(float(BFloat16(0.1f)), 0.10009765625f);          // 0x3DCCCCCD -> 0x3DCD
  EXPECT_EQ(BFloat16(1.0f + 0.0078125f).bits, 0x3F81);       // 1 + 2^-7: exact
  EXPECT_EQ(BFloat16(1.0f + 0.00390625f).bits, 0x3F80);      // half way to 0x3F81: to even
  EXPECT_EQ(BFloat16(1.0f + 3 * 0.00390625f).bits, 0x3F82);  // half way from 0x3F81: to even
  EXPECT_EQ(Float16(1.0f).bits, 0x3C00);
  EXPECT_EQ(Float16(-2.0f).bits, 0xC000);
  EXPECT_EQ(Float16(65504.0f).bits, 0x7BFF);                                  // the largest finite half
  EXPECT_TRUE(std::isinf(float(Float16(70000.0f))));                          // beyond it: infinity
  EXPECT_EQ(float(Float16(5.960464477539063e-08f)), 5.960464477539063e-08f);  // 2^-24, the smallest subnormal
  EXPECT_TRUE(std::isnan(float(BFloat16(std::numeric_limits<float>::quiet_NaN()))));
  EXPECT_TRUE(std::isnan(float(Float16(-std::numeric_limits<float>::quiet_NaN()))));
  EXPECT_TRUE(std::signbit(float(Float16(-std::numeric_limits<float>::quiet_NaN()))));
}

TEST(DTypes, FactoriesItemAndConversions) {
  const Tensor x = Tensor::from_vector<float>({5}, {0.1f, -2.5f, 70000.0f, 0.0f, 3.99f});
  const Tensor b16 = x.to(DType::kBFloat16), f16 = x.to(DType::kFloat16);
  EXPECT_EQ(b16.dtype(), DType::kBFloat16);
  EXPECT_EQ(b16.to_vector_f32(), (std::vector<float>{0.10009765625f, -2.5f, 70144.0f, 0.0f, 3.984375f}));
  const std::vector<float> h = f16.to_vector_f32();
  EXPECT_EQ(h[0], 0.0999755859375f);
  EXPECT_EQ(h[1], -2.5f);
  EXPECT_TRUE(std::isinf(h[2]));
  EXPECT_EQ(h[4], 3.990234375f);
  // float -> bool is "not zero"; bool -> float is 0 or 1; float -> int truncates; bf16 -> fp16 through float.
  EXPECT_EQ(x.to(DType::kBool).to_vector_f32(), (std::vector<float>{1, 1, 1, 0, 1}));
  EXPECT_EQ(x.to(DType::kBool).to(DType::kFloat32).to_vector_f32(), (std::vector<float>{1, 1, 1, 0, 1}));
  EXPECT_EQ(b16.to(DType::kInt64).to_vector_f32(), (std::vector<float>{0, -2, 70144, 0, 3}));
  EXPECT_EQ(b16.to(DType::kFloat16).to_vector_f32()[1], -2.5f);
  EXPECT_EQ(b16.to(DType::kFloat64).to(DType::kBFloat16).to_vector_f32(), b16.to_vector_f32());

  const Tensor m = Tensor::from_vector<bool>({4}, {true, false, false, true});
  EXPECT_EQ(m.dtype(), DType::kBool);
  EXPECT_TRUE(m.data<bool>()[3]);
  EXPECT_FALSE(m.data<bool>()[2]);
  EXPECT_TRUE(m.slice(3, 4).item<bool>());
  EXPECT_EQ(Tensor::from_vector<BFloat16>({2}, {BFloat16(1.5f), BFloat16(-0.25f)}).to_vector_f32(),
            (std::vector<float>{1.5f, -0.25f}));
  EXPECT_EQ(Tensor::full({1}, 0.1, DType::kFloat16).item<float>(), 0.0999755859375f);
  EXPECT_EQ(Tensor::full({1}, 3.0, DType::kBFloat16).item<BFloat16>().bits, 0x4040);
  EXPECT_EQ(Tensor::full({1}, 2.0, DType::kBool).item<bool>(), true);
  EXPECT_EQ(Tensor::from_vector<int64_t>({1}, {int64_t{1} << 40}).item<int64_t>(), int64_t{1} << 40);
  EXPECT_EQ(Tensor::randn({64}, dl::default_generator(), DType::kBFloat16).dtype(), DType::kBFloat16);
  EXPECT_CONTAINS(error_of([] { Tensor::randn({2}, dl::default_generator(), DType::kBool); }), "floating");
  EXPECT_CONTAINS(error_of([&] { b16.data<float>(); }), "bfloat16");
  std::ostringstream os;
  os << m;
  EXPECT_CONTAINS(os.str(), "bool");
}

// Comparisons give bool masks; where takes them (and uint8, nonzero being true).
TEST(DTypes, ComparisonsGiveBoolMasks) {
  const Tensor a = Tensor::from_vector<float>({2, 2}, {1, 5, -3, 2});
  const Tensor m = ops::ge(a, 2.0);
  EXPECT_EQ(m.dtype(), DType::kBool);
  EXPECT_EQ(m.to_vector_f32(), (std::vector<float>{0, 1, 0, 1}));
  EXPECT_EQ(ops::where(m, a, Tensor::zeros({1})).to_vector_f32(), (std::vector<float>{0, 5, 0, 2}));
  const Tensor u = Tensor::from_vector<uint8_t>({2}, {7, 0});
  EXPECT_EQ(ops::where(u, Tensor::ones({2}), Tensor::zeros({2})).to_vector_f32(), (std::vector<float>{1, 0}));
  EXPECT_CONTAINS(error_of([&] { ops::where(a, a, a); }), "bool mask");
}

// int32 and int64 tensors compare with each other (as int64 when they differ) and with whole numbers:
// the accuracy of argmax's int32 classes against PyTorch's int64 labels, in ops.
TEST(DTypes, IntegerComparisons) {
  const Tensor logits = Tensor::from_vector<float>({4, 3}, {0, 2, 1, 5, 1, 0, 0, 0, 9, 1, 3, 2});
  const Tensor labels = Tensor::from_vector<int64_t>({4}, {1, 0, 1, int64_t{1} << 40});
  const Tensor hit = ops::eq(ops::argmax(logits, 1), labels);
  EXPECT_EQ(hit.dtype(), DType::kBool);
  EXPECT_EQ(hit.to_vector_f32(), (std::vector<float>{1, 1, 0, 0}));  // 2^40 is no int32 class: compared as int64
  EXPECT_EQ(ops::sum(hit.to(DType::kFloat32)).item<float>(), 2.0f);
  const Tensor i = Tensor::from_vector<int32_t>({2, 2}, {-3, 7, 0, 2147483647});
  EXPECT_EQ(ops::ge(i, 0.0).to_vector_f32(), (std::vector<float>{0, 1, 1, 1}));
  EXPECT_EQ(ops::lt(i, Tensor::from_vector<int32_t>({2}, {0, 8})).to_vector_f32(),  // broadcast over rows
            (std::vector<float>{1, 1, 0, 0}));
  EXPECT_EQ(ops::ne(i, 2147483647.0).to_vector_f32(), (std::vector<float>{1, 1, 1, 0}));
  EXPECT_CONTAINS(error_of([&] { ops::lt(i, 2.5); }), "whole number");
  EXPECT_CONTAINS(error_of([&] { ops::lt(i, 3e9); }), "whole number");
  EXPECT_CONTAINS(error_of([&] { ops::eq(i, Tensor::zeros({2})); }), "float32");
  EXPECT_CONTAINS(error_of([&] { ops::eq(Tensor::zeros({2}), i); }), "int32");
}

// Shape ops copy by element size: any dtype, the 16-bit ones included, bits unchanged.
TEST(DTypes, ShapeOpsKeepTheBitsOfEveryDType) {
  const Tensor x = Tensor::from_vector<float>({2, 3}, {1, 2, 3, 4, 5, 6}).to(DType::kBFloat16);
  const Tensor t = ops::transpose(x, 0, 1);
  EXPECT_EQ(t.dtype(), DType::kBFloat16);
  EXPECT_EQ(t.to_vector_f32(), (std::vector<float>{1, 4, 2, 5, 3, 6}));
  const Tensor s = ops::slice(x, 1, 1, 3);
  EXPECT_EQ(s.to_vector_f32(), (std::vector<float>{2, 3, 5, 6}));
  const Tensor c = ops::concat({x, x}, 1);
  EXPECT_EQ(c.shape(), Shape({2, 6}));
  EXPECT_EQ(c.to_vector_f32(), (std::vector<float>{1, 2, 3, 1, 2, 3, 4, 5, 6, 4, 5, 6}));
  const Tensor h = Tensor::from_vector<float>({2}, {0.1f, -0.2f}).to(DType::kFloat16);
  const Tensor st = ops::stack({h, h}, 1);
  EXPECT_EQ(bits(st), (std::vector<uint16_t>{bits(h)[0], bits(h)[0], bits(h)[1], bits(h)[1]}));
  const Tensor m = ops::lt(Tensor::from_vector<float>({2, 2}, {1, 2, 3, 4}), 2.5);
  EXPECT_EQ(ops::permute(m, {1, 0}).dtype(), DType::kBool);
  EXPECT_EQ(ops::permute(m, {1, 0}).to_vector_f32(), (std::vector<float>{1, 0, 1, 0}));
}

// Ops compute in float32 / float64. bfloat16 is the CPU's storage of activations (Note [bf16 activations] in
// ops/precision.cpp): ReLU keeps it, an element-wise op of bf16 operands computes in float32 and gives bf16
// back, one with a float32 operand gives float32. float16 and bool are refused by dtype name, never read as
// something else.
TEST(DTypes, OpsTakeBf16ActivationsAndNameTheDTypeTheyRefuse) {
  const Tensor h = Tensor::from_vector<float>({2, 3}, {1, -2, 3, -4, 0.5f, 0}).to(DType::kBFloat16);
  const Tensor r = ops::relu(h);
  EXPECT_EQ(r.dtype(), DType::kBFloat16);
  EXPECT_EQ(r.to_vector_f32(), (std::vector<float>{1, 0, 3, 0, 0.5f, 0}));
  const Tensor a = ops::add(h, h);
  EXPECT_EQ(a.dtype(), DType::kBFloat16);
  EXPECT_EQ(a.to_vector_f32(), (std::vector<float>{2, -4, 6, -8, 1, 0}));
  EXPECT_EQ(ops::add(h, h.to(DType::kFloat32)).dtype(), DType::kFloat32);
  EXPECT_EQ(ops::sum(h).dtype(), DType::kFloat32);
  EXPECT_EQ(ops::sum(h).item<float>(), -1.5f);
  EXPECT_CONTAINS(error_of([&] { ops::sum(Tensor::ones({2}, DType::kFloat16)); }), "float16");
  EXPECT_CONTAINS(error_of([&] { ops::exp(Tensor::ones({2}, DType::kBool)); }), "bool");
  EXPECT_CONTAINS(error_of([&] { Tensor::ones({2}, DType::kBFloat16).set_requires_grad(true); }), "bfloat16");
}

// Both file formats keep every dtype's bits; load_weights converts floating dtypes into the model's.
TEST(DTypes, FilesKeepEveryDTypeAndWeightsConvertIntoTheModel) {
  const fs::path d = temp_dir("files");
  const Tensor b16 = Tensor::from_vector<float>({3}, {0.1f, -7.0f, 1e30f}).to(DType::kBFloat16);
  const Tensor f16 = Tensor::from_vector<float>({2}, {0.3f, -65504.0f}).to(DType::kFloat16);
  const Tensor m = Tensor::from_vector<bool>({3}, {false, true, true});
  const Tensor i64 = Tensor::from_vector<int64_t>({2}, {-(int64_t{1} << 50), 3});
  const std::vector<std::pair<std::string, Tensor>> all = {{"b", b16}, {"h", f16}, {"m", m}, {"i", i64}};

  const std::string st = (d / "t.safetensors").string();
  dl::save_safetensors(st, all);
  const dl::SafeTensors back = dl::load_safetensors(st);
  ASSERT_EQ(back.tensors.size(), 4u);
  for (size_t k = 0; k < all.size(); ++k) {
    EXPECT_EQ(back.tensors[k].first, all[k].first);
    EXPECT_EQ(back.tensors[k].second.dtype(), all[k].second.dtype()) << all[k].first;
    ASSERT_EQ(back.tensors[k].second.nbytes(), all[k].second.nbytes());
    EXPECT_EQ(0, std::memcmp(back.tensors[k].second.raw_data(), all[k].second.raw_data(), all[k].second.nbytes()))
        << all[k].first;
  }

  const std::string tf = (d / "t.dlt").string();
  dl::save_tensor_file(tf, dl::TensorFile{{}, all});
  const dl::TensorFile again = dl::load_tensor_file(tf);
  for (size_t k = 0; k < all.size(); ++k) {
    EXPECT_EQ(again.tensors[k].second.dtype(), all[k].second.dtype()) << all[k].first;
    EXPECT_EQ(0, std::memcmp(again.tensors[k].second.raw_data(), all[k].second.raw_data(), all[k].second.nbytes()))
        << all[k].first;
  }
  // A non-finite bfloat16 is refused by name like a float32 one.
  const Tensor inf16 = Tensor::from_vector<float>({1}, {std::numeric_limits<float>::infinity()}).to(DType::kBFloat16);
  EXPECT_CONTAINS(error_of([&] { dl::save_safetensors(st, {{"w", inf16}}); }), "'w'");

  // A bfloat16 copy of a model's weights loads into the float32 model, each value the bf16 rounding.
  dl::nn::Linear src(3, 2);
  std::vector<std::pair<std::string, Tensor>> half_weights;
  for (const auto& [name, t] : src.state()) half_weights.emplace_back(name, t.to(DType::kBFloat16));
  const std::string hw = (d / "half.safetensors").string();
  dl::save_safetensors(hw, half_weights);
  dl::nn::Linear dst(3, 2);
  dl::nn::load_weights(dst, hw);
  for (size_t k = 0; k < half_weights.size(); ++k) {
    EXPECT_EQ(dst.state()[k].second.dtype(), DType::kFloat32);
    EXPECT_EQ(dst.state()[k].second.to_vector_f32(), half_weights[k].second.to_vector_f32());
  }
  // An int tensor where the model has a float one stays an error.
  std::vector<std::pair<std::string, Tensor>> ints;
  for (const auto& [name, t] : src.state()) ints.emplace_back(name, t.to(DType::kInt32));
  dl::save_safetensors(hw, ints);
  EXPECT_CONTAINS(error_of([&] { dl::nn::load_weights(dst, hw); }), "int32 in the file, the model expects");
  fs::remove_all(d);
}

// A tensor file's dtype code beyond the known ones, and a bool byte other than 0 or 1, are refused.
TEST(DTypes, HostileDTypeCodesAndBoolBytes) {
  const fs::path d = temp_dir("hostile");
  const std::string p = (d / "m.dlt").string();
  dl::save_tensor_file(p, dl::TensorFile{{}, {{"m", Tensor::from_vector<bool>({2}, {true, false})}}});
  // Corrupting a byte also breaks the checksum, which is checked at the end: the bool check must come
  // first, since a byte of 2 read as a bool is undefined behaviour before any checksum could object.
  std::string bytes;
  {
    std::ifstream in(p, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), {});
  }
  const size_t at = bytes.size() - 4 - 2;  // the two data bytes sit before the 4-byte checksum
  ASSERT_EQ(bytes[at], 1);
  bytes[at] = 2;
  {
    std::ofstream out(p, std::ios::binary | std::ios::trunc);
    out << bytes;
  }
  EXPECT_CONTAINS(error_of([&] { dl::load_tensor_file(p); }), "byte 2");
  fs::remove_all(d);
}

}  // namespace
