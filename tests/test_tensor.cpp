// Unit tests of the core: Tensor (factories, views, copies, conversions, errors), Shape, the CPU
// caching allocator and the random generator.
#include <dl/dl.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <sstream>
#include <string>
#include <vector>

namespace {

using dl::CpuAllocator;
using dl::DType;
using dl::Generator;
using dl::Shape;
using dl::Tensor;

template <typename T>
std::vector<T> values(const Tensor& t) {
  const T* p = t.data<T>();
  return std::vector<T>(p, p + t.numel());
}

// Expects `stmt` to throw dl::Error whose message contains `needle`.
#define EXPECT_DL_ERROR(stmt, needle)                                                              \
  do {                                                                                             \
    try {                                                                                          \
      stmt;                                                                                        \
      ADD_FAILURE() << "expected dl::Error from " #stmt;                                           \
    } catch (const dl::Error& e) {                                                                 \
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << "message: " << e.what(); \
    }                                                                                              \
  } while (0)

// ---- Shape ----

TEST(Shape, BasicsAndErrors) {
  const Shape s{2, 3, 4};
  EXPECT_EQ(s.ndim(), 3);
  EXPECT_EQ(s.numel(), 24);
  EXPECT_EQ(s.str(), "[2, 3, 4]");
  EXPECT_EQ(s, (Shape{2, 3, 4}));
  EXPECT_NE(s, (Shape{2, 3}));
  EXPECT_NE(s, (Shape{2, 3, 5}));
  EXPECT_EQ(Shape{}.numel(), 1);
  EXPECT_EQ((Shape{3, 0}).numel(), 0);
  EXPECT_DL_ERROR((Shape{2, -1}), "non-negative");
  EXPECT_DL_ERROR((Shape{1, 1, 1, 1, 1, 1, 1, 1, 1}), "at most 8");
}

// ---- factories ----

TEST(Tensor, Factories) {
  const Tensor z = Tensor::zeros({2, 3});
  EXPECT_EQ(z.shape(), (Shape{2, 3}));
  EXPECT_EQ(z.dtype(), DType::kFloat32);
  EXPECT_TRUE(z.device().is_cpu());
  EXPECT_EQ(z.numel(), 6);
  EXPECT_EQ(z.nbytes(), 24u);
  EXPECT_EQ(values<float>(z), std::vector<float>(6, 0.f));
  EXPECT_EQ(values<double>(Tensor::ones({4}, DType::kFloat64)), std::vector<double>(4, 1.0));
  EXPECT_EQ(values<int32_t>(Tensor::full({3}, 7.0, DType::kInt32)), std::vector<int32_t>(3, 7));
  EXPECT_EQ(values<uint8_t>(Tensor::full({2}, 200.0, DType::kUInt8)), std::vector<uint8_t>(2, 200));
  const Tensor e = Tensor::empty({5, 0, 2});
  EXPECT_EQ(e.numel(), 0);
  EXPECT_EQ(e.dim(), 3);
  const Tensor v = Tensor::from_vector<float>({2, 2}, {1, 2, 3, 4});
  EXPECT_EQ(values<float>(v), (std::vector<float>{1, 2, 3, 4}));
  EXPECT_EQ(Tensor::from_vector<int32_t>({3}, {1, -2, 3}).dtype(), DType::kInt32);
}

TEST(Tensor, FactoryErrors) {
  EXPECT_DL_ERROR(Tensor::from_vector<float>({2, 3}, {1, 2, 3}), "needs 6 values, got 3");
  Generator gen(1);
  EXPECT_DL_ERROR(Tensor::randn({2}, gen, DType::kInt32), "floating");
  EXPECT_DL_ERROR(Tensor::uniform({2}, 0, 1, gen, DType::kUInt8), "floating");
  if (!dl::cuda_available()) {
    EXPECT_THROW(Tensor::zeros({2}, DType::kFloat32, dl::Device::cuda()), dl::Error);
  }
}

TEST(Tensor, RandomFactoriesAreSeeded) {
  Generator a(5), b(5), c(6);
  const Tensor x = Tensor::randn({3, 4}, a), y = Tensor::randn({3, 4}, b), z = Tensor::randn({3, 4}, c);
  EXPECT_EQ(values<float>(x), values<float>(y));
  EXPECT_NE(values<float>(x), values<float>(z));
  const Tensor u = Tensor::uniform({1000}, -2.0, 3.0, a, DType::kFloat64);
  for (double v : values<double>(u)) {
    EXPECT_GE(v, -2.0);
    EXPECT_LT(v, 3.0);
  }
}

TEST(Tensor, SizesAndAccess) {
  Tensor t = Tensor::zeros({2, 3, 4});
  EXPECT_EQ(t.size(0), 2);
  EXPECT_EQ(t.size(-1), 4);
  EXPECT_EQ(t.size(-3), 2);
  EXPECT_DL_ERROR(t.size(3), "3 dimensions");
  EXPECT_DL_ERROR(t.size(-4), "3 dimensions");
  EXPECT_DL_ERROR(t.data<double>(), "expected dtype float64, got float32");
  EXPECT_DL_ERROR(t.data<int32_t>(), "int32");
  EXPECT_DL_ERROR(t.item<float>(), "one element");
  EXPECT_EQ(Tensor::full({1}, 2.5).item<double>(), 2.5);
  EXPECT_EQ(Tensor::full({1, 1}, -3.0, DType::kInt32).item<int64_t>(), -3);
  const Tensor undefined;
  EXPECT_FALSE(undefined.defined());
  EXPECT_DL_ERROR(undefined.shape(), "undefined");
  EXPECT_DL_ERROR(undefined.data<float>(), "undefined");
}

// ---- views and copies ----

TEST(Tensor, SliceSharesStorage) {
  Tensor t = Tensor::from_vector<float>({4, 2}, {0, 1, 2, 3, 4, 5, 6, 7});
  Tensor s = t.slice(1, 3);
  EXPECT_EQ(s.shape(), (Shape{2, 2}));
  EXPECT_TRUE(s.shares_storage_with(t));
  EXPECT_EQ(values<float>(s), (std::vector<float>{2, 3, 4, 5}));
  s.data<float>()[0] = 42;  // writes through to the base
  EXPECT_EQ(t.data<float>()[2], 42);
  s.fill_(-1);
  EXPECT_EQ(values<float>(t), (std::vector<float>{0, 1, -1, -1, -1, -1, 6, 7}));
  // A slice of a slice keeps the offset.
  Tensor ss = s.slice(1, 2);
  EXPECT_EQ(ss.raw_data(), static_cast<void*>(t.data<float>() + 4));  // row 2 of t
  EXPECT_EQ(t.slice(2, 2).numel(), 0);
  EXPECT_DL_ERROR(t.slice(3, 5), "end <= 4");
  EXPECT_DL_ERROR(t.slice(2, 1), "begin <= end");
  EXPECT_DL_ERROR(t.slice(-1, 1), "0 <= begin");
}

TEST(Tensor, ViewSharesStorage) {
  Tensor t = Tensor::from_vector<float>({2, 3}, {0, 1, 2, 3, 4, 5});
  Tensor v = t.view({3, 2});
  EXPECT_TRUE(v.shares_storage_with(t));
  EXPECT_EQ(v.raw_data(), t.raw_data());
  v.data<float>()[5] = 9;
  EXPECT_EQ(t.data<float>()[5], 9);
  Tensor vs = t.slice(1, 2).view({3});
  EXPECT_EQ(values<float>(vs), (std::vector<float>{3, 4, 9}));
  EXPECT_DL_ERROR(t.view({4, 2}), "cannot view [2, 3] (6 elements) as [4, 2] (8 elements)");
}

TEST(Tensor, CloneCopiesDetachShares) {
  Tensor t = Tensor::from_vector<double>({3}, {1, 2, 3});
  Tensor c = t.clone();
  EXPECT_FALSE(c.shares_storage_with(t));
  EXPECT_EQ(values<double>(c), values<double>(t));
  c.data<double>()[0] = 10;
  EXPECT_EQ(t.data<double>()[0], 1);
  // clone of a slice copies only the slice.
  Tensor m = Tensor::from_vector<float>({3, 2}, {0, 1, 2, 3, 4, 5});
  EXPECT_EQ(values<float>(m.slice(1, 2).clone()), (std::vector<float>{2, 3}));

  t.set_requires_grad(true);
  Tensor d = t.detach();
  EXPECT_TRUE(d.shares_storage_with(t));
  EXPECT_FALSE(d.requires_grad());
  EXPECT_EQ(d.grad_fn(), nullptr);

  Tensor dst = Tensor::zeros({3}, DType::kFloat64);
  dst.copy_(c);
  EXPECT_EQ(values<double>(dst), (std::vector<double>{10, 2, 3}));
  EXPECT_DL_ERROR(dst.copy_(Tensor::zeros({4}, DType::kFloat64)), "copy_");
  EXPECT_DL_ERROR(dst.copy_(Tensor::zeros({3}, DType::kFloat32)), "float32");
  dst.zero_();
  EXPECT_EQ(values<double>(dst), std::vector<double>(3, 0.0));
}

TEST(Tensor, ToDtypeConverts) {
  Tensor f = Tensor::from_vector<float>({4}, {1.5f, -2.7f, 3.0f, 0.25f});
  Tensor d = f.to(DType::kFloat64);
  EXPECT_EQ(d.dtype(), DType::kFloat64);
  EXPECT_FALSE(d.shares_storage_with(f));
  EXPECT_EQ(values<double>(d), (std::vector<double>{1.5, static_cast<double>(-2.7f), 3.0, 0.25}));
  EXPECT_EQ(values<int32_t>(f.to(DType::kInt32)), (std::vector<int32_t>{1, -2, 3, 0}));  // truncation
  EXPECT_EQ(values<float>(Tensor::from_vector<uint8_t>({2}, {7, 255}).to(DType::kFloat32)),
            (std::vector<float>{7, 255}));
  // Same dtype or device: the same tensor, no copy.
  EXPECT_TRUE(f.to(DType::kFloat32).shares_storage_with(f));
  EXPECT_TRUE(f.to(dl::Device::cpu()).shares_storage_with(f));
}

// int64 tensors: made, converted, copied by permute, and written and read by both file formats as int64.
TEST(Tensor, Int64ElementsRoundTrip) {
  const std::vector<int64_t> v = {-(int64_t{1} << 40), -1, 0, 7, int64_t{1} << 50, 3};
  const Tensor t = Tensor::from_vector<int64_t>({2, 3}, v);
  EXPECT_EQ(t.dtype(), DType::kInt64);
  EXPECT_EQ(dl::dtype_name(t.dtype()), std::string("int64"));
  EXPECT_EQ(values<int64_t>(t), v);
  EXPECT_EQ(values<int32_t>(t.slice(1, 2).to(DType::kInt32)), (std::vector<int32_t>{7, 0, 3}));
  EXPECT_EQ(values<int64_t>(dl::ops::transpose(t, 0, 1)), (std::vector<int64_t>{v[0], v[3], v[1], v[4], v[2], v[5]}));
  EXPECT_EQ(t.view({6}).slice(3, 4).item<int64_t>(), 7);
  const std::string dir = ::testing::TempDir();
  dl::save_safetensors(dir + "/i64.safetensors", {{"t", t}});
  const dl::SafeTensors st = dl::load_safetensors(dir + "/i64.safetensors");
  ASSERT_EQ(st.tensors.size(), 1u);
  EXPECT_EQ(st.tensors[0].second.dtype(), DType::kInt64);
  EXPECT_EQ(values<int64_t>(st.tensors[0].second), v);
  dl::TensorFile f;
  f.tensors.emplace_back("t", t);
  dl::save_tensor_file(dir + "/i64.dlt", f);
  const dl::TensorFile back = dl::load_tensor_file(dir + "/i64.dlt");
  ASSERT_NE(back.find("t"), nullptr);
  EXPECT_EQ(values<int64_t>(*back.find("t")), v);
}

TEST(Tensor, RequiresGradNeedsFloat) {
  Tensor i = Tensor::zeros({2}, DType::kInt32);
  EXPECT_DL_ERROR(i.set_requires_grad(true), "floating dtype, got int32");
  EXPECT_NO_THROW(i.set_requires_grad(false));
  Tensor f = Tensor::zeros({2});
  EXPECT_FALSE(f.requires_grad());
  f.set_requires_grad(true);
  EXPECT_TRUE(f.requires_grad());
  EXPECT_FALSE(f.grad().defined());
}

TEST(Tensor, Printing) {
  std::ostringstream os;
  os << Tensor::from_vector<float>({2}, {1, 2});
  EXPECT_NE(os.str().find("[2]"), std::string::npos);
  EXPECT_NE(os.str().find("float32"), std::string::npos);
  std::ostringstream un;
  un << Tensor();
  EXPECT_EQ(un.str(), "Tensor(undefined)");
}

TEST(Device, Parse) {
  EXPECT_TRUE(dl::Device::parse("cpu").is_cpu());
  EXPECT_EQ(dl::Device::parse("cuda:1"), dl::Device::cuda(1));
  EXPECT_THROW(dl::Device::parse("tpu"), dl::Error);
}

// ---- allocator ----

TEST(Allocator, SizeClasses) {
  EXPECT_EQ(dl::allocation_size_class(0), 64u);
  EXPECT_EQ(dl::allocation_size_class(1), 64u);
  EXPECT_EQ(dl::allocation_size_class(64), 64u);
  EXPECT_EQ(dl::allocation_size_class(65), 128u);
  EXPECT_EQ(dl::allocation_size_class(4096), 4096u);
  for (size_t b : {4097u, 5000u, 8192u, 10000u, 123457u, 1u << 20, (1u << 20) + 1}) {
    const size_t c = dl::allocation_size_class(b);
    EXPECT_GE(c, b);
    EXPECT_LE(c - b, b / 4) << b;  // at most 25 % slack
    EXPECT_EQ(c % 64, 0u) << b;
    EXPECT_EQ(dl::allocation_size_class(c), c) << b;  // a class is its own class
  }
}

TEST(Allocator, Alignment) {
  CpuAllocator& a = CpuAllocator::instance();
  for (size_t bytes : {1u, 3u, 64u, 100u, 4097u, 1000000u}) {
    void* p = a.allocate(bytes);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % CpuAllocator::kAlignment, 0u) << bytes;
    a.release(p, bytes);
  }
  static_assert(CpuAllocator::kAlignment == 64);
  for (int64_t n : {1, 7, 17, 1000}) {
    const Tensor t = Tensor::empty({n}, DType::kUInt8);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(t.raw_data()) % 64, 0u) << n;
  }
}

TEST(Allocator, CurrentAndPeakGoUpAndDown) {
  CpuAllocator& a = CpuAllocator::instance();
  const int64_t base = a.stats().current_bytes;
  a.reset_peak();
  EXPECT_EQ(a.stats().peak_bytes, base);
  const int64_t big = static_cast<int64_t>(dl::allocation_size_class(1 << 20));
  {
    Tensor t = Tensor::empty({1 << 18});  // 1 MiB of float32
    EXPECT_EQ(a.stats().current_bytes, base + big);
    {
      Tensor u = Tensor::empty({1 << 18});
      EXPECT_EQ(a.stats().current_bytes, base + 2 * big);
      Tensor view = u.view({1 << 9, 1 << 9});  // views allocate nothing
      EXPECT_EQ(a.stats().current_bytes, base + 2 * big);
    }
    EXPECT_EQ(a.stats().current_bytes, base + big);
  }
  EXPECT_EQ(a.stats().current_bytes, base);
  EXPECT_EQ(a.stats().peak_bytes, base + 2 * big);
  a.reset_peak();
  EXPECT_EQ(a.stats().peak_bytes, base);
}

TEST(Allocator, CachesReleasedBlocks) {
  CpuAllocator& a = CpuAllocator::instance();
  const size_t bytes = 3 * 1000 * 1000 + 17;  // a size no other test uses
  void* p = a.allocate(bytes);
  a.release(p, bytes);
  const dl::AllocatorStats before = a.stats();
  void* q = a.allocate(bytes - 5);  // same size class: the cached block comes back
  const dl::AllocatorStats after = a.stats();
  EXPECT_EQ(q, p);
  EXPECT_EQ(after.cache_hits, before.cache_hits + 1);
  EXPECT_EQ(after.alloc_count, before.alloc_count + 1);
  EXPECT_EQ(after.reserved_bytes, before.reserved_bytes);
  a.release(q, bytes - 5);

  a.empty_cache();
  EXPECT_EQ(a.stats().reserved_bytes, a.stats().current_bytes);

  a.set_caching(false);
  void* r = a.allocate(bytes);
  EXPECT_EQ(a.stats().reserved_bytes, a.stats().current_bytes);
  a.release(r, bytes);
  EXPECT_EQ(a.stats().reserved_bytes, a.stats().current_bytes);  // returned to the system at once
  a.set_caching(true);
}

TEST(Allocator, LargeBlocksSplitAndMerge) {
  // Note [caching allocator]: a large request takes the best-fitting free piece of a cached segment,
  // splitting off the rest; released pieces merge with free neighbours, so the segment serves a request
  // of its whole size again, and only a whole free segment goes back to the system.
  CpuAllocator& a = CpuAllocator::instance();
  a.empty_cache();
  const size_t mib = size_t{1} << 20;
  const size_t big = 9 * mib + 333;  // sizes no other test uses
  const size_t page = 4096;          // large pieces are whole pages
  const int64_t held = a.stats().reserved_bytes;
  void* p = a.allocate(big);
  const int64_t segment = a.stats().reserved_bytes - held;  // a new segment of big's size class
  EXPECT_GE(segment, static_cast<int64_t>(big));
  a.release(p, big);
  const dl::AllocatorStats before = a.stats();
  void* q = a.allocate(3 * mib);      // the front of the segment
  void* r = a.allocate(2 * mib + 5);  // the next piece
  void* s = a.allocate(3 * mib);
  EXPECT_EQ(q, p);
  EXPECT_EQ(static_cast<char*>(r), static_cast<char*>(p) + 3 * mib);
  EXPECT_EQ(static_cast<char*>(s), static_cast<char*>(r) + 2 * mib + page);
  EXPECT_EQ(a.stats().reserved_bytes, before.reserved_bytes);  // no new memory from the system
  EXPECT_EQ(a.stats().cache_hits, before.cache_hits + 3);
  EXPECT_EQ(a.stats().current_bytes, before.current_bytes + static_cast<int64_t>(8 * mib + page));
  // Pieces in use stay. The free rest of the segment (1 MiB) returns its pages where the segment lies in
  // the host arena (Note [host arena]); a segment from the C library (under AddressSanitizer) keeps it.
  a.empty_cache();
  const int64_t reserved = a.stats().reserved_bytes;
  EXPECT_TRUE(reserved == a.stats().current_bytes || reserved == before.reserved_bytes) << reserved;
  a.release(q, 3 * mib);
  a.release(s, 3 * mib);
  a.release(r, 2 * mib + 5);  // merges with both neighbours
  EXPECT_EQ(a.stats().current_bytes, before.current_bytes);
  void* t = a.allocate(big);  // the whole segment again (in the arena: the merged 8 MiB grown in place at its end)
  EXPECT_EQ(t, p);
  EXPECT_EQ(a.stats().reserved_bytes, before.reserved_bytes);
  a.release(t, big);
  a.empty_cache();
  EXPECT_EQ(a.stats().reserved_bytes, held);
  EXPECT_EQ(a.stats().reserved_bytes, a.stats().current_bytes);
}

// ---- random generator ----

TEST(Generator, KnownSequence) {
  // xoshiro256** seeded through splitmix64: the same numbers on every machine.
  Generator g(42);
  EXPECT_EQ(g.next_u64(), 0x15780b2e0c2ec716ULL);
  EXPECT_EQ(g.next_u64(), 0x6104d9866d113a7eULL);
  EXPECT_EQ(g.next_u64(), 0xae17533239e499a1ULL);
  Generator d;  // default seed 0x5eed
  EXPECT_EQ(d.next_u64(), 0xef33f17055244b74ULL);
}

TEST(Generator, SameSeedSameNumbers) {
  Generator a(9), b(9), c(10);
  for (int i = 0; i < 100; ++i) {
    EXPECT_EQ(a.normal(), b.normal());
    EXPECT_EQ(a.uniform(), b.uniform());
    EXPECT_EQ(a.below(17), b.below(17));
  }
  Generator a2(9);
  EXPECT_NE(a2.next_u64(), c.next_u64());
}

TEST(Generator, Ranges) {
  Generator g(3);
  EXPECT_EQ(g.below(0), 0u);
  EXPECT_EQ(g.below(1), 0u);
  std::vector<int> hist(5, 0);
  double sum = 0, sq = 0;
  const int n = 20000;
  for (int i = 0; i < n; ++i) {
    const double u = g.uniform();
    EXPECT_GE(u, 0.0);
    EXPECT_LT(u, 1.0);
    ++hist[g.below(5)];
    const double z = g.normal();
    sum += z;
    sq += z * z;
  }
  for (int h : hist) EXPECT_GT(h, n / 5 - 400);  // roughly uniform (fixed seed: deterministic)
  EXPECT_NEAR(sum / n, 0.0, 0.03);
  EXPECT_NEAR(sq / n, 1.0, 0.05);
}

TEST(Generator, StateSaveAndRestore) {
  Generator g(77);
  g.normal();  // leaves a cached normal in the state
  const Generator::State st = g.state();
  std::vector<double> first;
  for (int i = 0; i < 7; ++i) first.push_back(i % 2 ? g.normal() : g.uniform());
  g.set_state(st);
  for (int i = 0; i < 7; ++i) EXPECT_EQ(i % 2 ? g.normal() : g.uniform(), first[i]) << i;

  // The state carries over to another generator.
  Generator h(1);
  h.set_state(st);
  EXPECT_EQ(h.uniform(), first[0]);
  EXPECT_EQ(h.normal(), first[1]);  // the cached normal saved with the state
}

TEST(Generator, ManualSeedDropsTheCachedNormal) {
  Generator g(5);
  g.normal();  // caches the second of the pair
  g.manual_seed(5);
  Generator fresh(5);
  EXPECT_EQ(g.normal(), fresh.normal());
  EXPECT_EQ(g.normal(), fresh.normal());
}

TEST(Generator, DefaultGeneratorIsReseedable) {
  dl::manual_seed(123);
  const Tensor a = Tensor::randn({16});
  dl::manual_seed(123);
  const Tensor b = Tensor::randn({16});
  EXPECT_EQ(values<float>(a), values<float>(b));
}

}  // namespace
