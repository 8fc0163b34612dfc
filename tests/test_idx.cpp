// IDX reader/writer (plain and gzip) and the MNIST loader, on small files written to a temp folder.
#include <gtest/gtest.h>
#include <unistd.h>
#include <zlib.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <initializer_list>
#include <string>
#include <vector>

#include "dl/core/error.h"
#include "dl/core/tensor.h"
#include "dl/data/idx.h"
#include "dl/data/mnist.h"
#include "dl/data/mnist_synth.h"

namespace fs = std::filesystem;
using dl::data::IdxArray;
using dl::data::IdxType;
using dl::data::read_idx;
using dl::data::write_idx_u8;
using Bytes = std::vector<uint8_t>;

namespace {

class IdxTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "dl_test_idx_XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  std::string path(const std::string& name) const { return (fs::path(dir_) / name).string(); }

  std::string dir_;
};

Bytes header(uint8_t type, std::initializer_list<uint32_t> dims) {
  Bytes h = {0, 0, type, static_cast<uint8_t>(dims.size())};
  for (uint32_t d : dims) h.insert(h.end(), {uint8_t(d >> 24), uint8_t(d >> 16), uint8_t(d >> 8), uint8_t(d)});
  return h;
}

Bytes concat(Bytes a, const Bytes& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

Bytes iota_bytes(size_t n, uint8_t start = 0) {
  Bytes b(n);
  for (size_t i = 0; i < n; ++i) b[i] = static_cast<uint8_t>(start + i * 7);
  return b;
}

void write_raw(const std::string& path, const Bytes& bytes) {
  std::ofstream f(path, std::ios::binary);
  f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(f.good()) << path;
}

Bytes read_raw(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return Bytes(std::istreambuf_iterator<char>(f), {});
}

// Writes `bytes` gzip-compressed with zlib's gzopen.
void write_gz(const std::string& path, const Bytes& bytes) {
  gzFile f = gzopen(path.c_str(), "wb9");
  ASSERT_NE(f, nullptr) << path;
  ASSERT_EQ(gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size())), static_cast<int>(bytes.size()));
  ASSERT_EQ(gzclose(f), Z_OK);
}

// Runs fn, expects a dl::Error whose message contains every one of `parts`.
void expect_error(const std::function<void()>& fn, std::initializer_list<std::string> parts) {
  try {
    fn();
  } catch (const dl::Error& e) {
    const std::string msg = e.what();
    for (const auto& p : parts) EXPECT_NE(msg.find(p), std::string::npos) << "'" << p << "' not in: " << msg;
    return;
  } catch (const std::exception& e) {
    ADD_FAILURE() << "expected dl::Error, got another exception: " << e.what();
    return;
  }
  ADD_FAILURE() << "expected dl::Error, nothing was thrown";
}

// ---------------------------------------------------------------- reading and writing

TEST_F(IdxTest, WriteThenReadPlain) {
  const Bytes data = iota_bytes(3 * 4 * 5);
  write_idx_u8(path("a-idx3-ubyte"), {3, 4, 5}, data);
  EXPECT_EQ(read_raw(path("a-idx3-ubyte")), concat(header(0x08, {3, 4, 5}), data));

  const IdxArray a = read_idx(path("a-idx3-ubyte"));
  EXPECT_EQ(a.type, IdxType::kUInt8);
  EXPECT_EQ(a.dims, (std::vector<int64_t>{3, 4, 5}));
  EXPECT_EQ(a.numel(), 60);
  EXPECT_EQ(a.dims_str(), "[3, 4, 5]");
  EXPECT_EQ(Bytes(a.bytes.begin(), a.bytes.end()), data);
  const dl::Tensor t = a.to_tensor();
  EXPECT_EQ(t.shape(), (dl::Shape{3, 4, 5}));
  EXPECT_EQ(t.dtype(), dl::DType::kUInt8);
  EXPECT_EQ(std::memcmp(t.data<uint8_t>(), data.data(), data.size()), 0);
  expect_error([&] { (void)a.as<float>(); }, {"a-idx3-ubyte", "ubyte", "float"});
}

TEST_F(IdxTest, WriteIsAtomicAndOverwrites) {
  write_idx_u8(path("b"), {2}, {1, 2});
  write_idx_u8(path("b"), {3}, {4, 5, 6});
  {
    const auto b = read_idx(path("b")).bytes;
    EXPECT_EQ(Bytes(b.begin(), b.end()), (Bytes{4, 5, 6}));
  }
  int files = 0;
  for (const auto& e : fs::directory_iterator(dir_)) {
    ++files;
    EXPECT_EQ(e.path().filename(), "b") << "left behind: " << e.path();
  }
  EXPECT_EQ(files, 1);
  expect_error([&] { write_idx_u8(path("c"), {2, 3}, {1, 2, 3}); }, {"'" + path("c") + "'", "need 6 bytes, got 3"});
  EXPECT_FALSE(fs::exists(path("c")));
  expect_error([&] { write_idx_u8(path("no-such-dir/c"), {1}, {1}); }, {"no-such-dir/c"});
}

TEST_F(IdxTest, ReadsGzipDetectedByMagicNotName) {
  const Bytes data = iota_bytes(10 * 28 * 28, 3);
  const Bytes file = concat(header(0x08, {10, 28, 28}), data);
  write_gz(path("imgs.gz"), file);
  write_gz(path("imgs-no-suffix"), file);  // gzip content without .gz
  write_raw(path("plain.gz"), file);       // plain content named .gz
  for (const char* name : {"imgs.gz", "imgs-no-suffix", "plain.gz"}) {
    const IdxArray a = read_idx(path(name));
    EXPECT_EQ(a.dims, (std::vector<int64_t>{10, 28, 28})) << name;
    EXPECT_EQ(Bytes(a.bytes.begin(), a.bytes.end()), data) << name;
  }
  // gzip allows several concatenated members; they decompress to one stream.
  const Bytes half1(file.begin(), file.begin() + 1000), half2(file.begin() + 1000, file.end());
  write_gz(path("m1.gz"), half1);
  write_gz(path("m2.gz"), half2);
  write_raw(path("multi.gz"), concat(read_raw(path("m1.gz")), read_raw(path("m2.gz"))));
  {
    const auto b = read_idx(path("multi.gz")).bytes;
    EXPECT_EQ(Bytes(b.begin(), b.end()), data);
  }
}

TEST_F(IdxTest, OtherElementTypesAreConvertedFromBigEndian) {
  // int: 1, -2, 0x01020304
  write_raw(path("i32"), concat(header(0x0C, {3}), {0, 0, 0, 1, 0xff, 0xff, 0xff, 0xfe, 1, 2, 3, 4}));
  const IdxArray i = read_idx(path("i32"));
  EXPECT_EQ(i.type, IdxType::kInt32);
  EXPECT_EQ(i.as<int32_t>()[0], 1);
  EXPECT_EQ(i.as<int32_t>()[1], -2);
  EXPECT_EQ(i.as<int32_t>()[2], 0x01020304);
  EXPECT_EQ(i.to_tensor().dtype(), dl::DType::kInt32);

  // short: -3, 258
  write_raw(path("i16"), concat(header(0x0B, {2}), {0xff, 0xfd, 0x01, 0x02}));
  const dl::Tensor s = read_idx(path("i16")).to_tensor();
  EXPECT_EQ(s.dtype(), dl::DType::kInt32);
  EXPECT_EQ(s.data<int32_t>()[0], -3);
  EXPECT_EQ(s.data<int32_t>()[1], 258);

  // sbyte: -1, 5
  write_raw(path("i8"), concat(header(0x09, {2}), {0xff, 0x05}));
  const dl::Tensor b = read_idx(path("i8")).to_tensor();
  EXPECT_EQ(b.data<int32_t>()[0], -1);
  EXPECT_EQ(b.data<int32_t>()[1], 5);

  // float: 1.5f = 0x3fc00000, -2.0f = 0xc0000000
  write_raw(path("f32"), concat(header(0x0D, {1, 2}), {0x3f, 0xc0, 0, 0, 0xc0, 0, 0, 0}));
  const dl::Tensor f = read_idx(path("f32")).to_tensor();
  EXPECT_EQ(f.dtype(), dl::DType::kFloat32);
  EXPECT_EQ(f.shape(), (dl::Shape{1, 2}));
  EXPECT_EQ(f.data<float>()[0], 1.5f);
  EXPECT_EQ(f.data<float>()[1], -2.0f);

  // double: 0.25 = 0x3fd0000000000000
  write_raw(path("f64"), concat(header(0x0E, {1}), {0x3f, 0xd0, 0, 0, 0, 0, 0, 0}));
  const dl::Tensor d = read_idx(path("f64")).to_tensor();
  EXPECT_EQ(d.dtype(), dl::DType::kFloat64);
  EXPECT_EQ(d.data<double>()[0], 0.25);

  // Wrong size for a multi-byte type counts bytes, not elements.
  write_raw(path("f32-short"), concat(header(0x0D, {3}), {0, 0, 0, 0}));
  expect_error([&] { read_idx(path("f32-short")); },
               {"f32-short", "expected 12 bytes of data for dims [3]", "found 4"});
}

// ---------------------------------------------------------------- malformed files

TEST_F(IdxTest, MissingFileNamesIt) {
  expect_error([&] { read_idx(path("nope-idx1-ubyte")); }, {"nope-idx1-ubyte", "No such file"});
}

TEST_F(IdxTest, TruncatedFile) {
  write_raw(path("train-images-idx3-ubyte"), concat(header(0x08, {60000, 28, 28}), iota_bytes(1000)));
  expect_error([&] { read_idx(path("train-images-idx3-ubyte")); },
               {"train-images-idx3-ubyte", "expected 47040000 bytes of data for dims [60000, 28, 28]", "found 1000",
                "truncated"});
  // Cut inside the header.
  write_raw(path("short-header"), {0, 0, 8, 3, 0, 0, 0, 10});
  expect_error([&] { read_idx(path("short-header")); }, {"short-header", "expected 16 bytes", "found 8"});
  write_raw(path("empty"), {});
  expect_error([&] { read_idx(path("empty")); }, {"empty", "magic", "found 0 bytes"});
}

TEST_F(IdxTest, BadMagic) {
  write_raw(path("bad-magic"), concat({0x01, 0x02, 0x08, 0x01, 0, 0, 0, 2}, {7, 7}));
  expect_error([&] { read_idx(path("bad-magic")); }, {"bad-magic", "00 00 <type> <ndims>", "found 01 02 08 01"});
  write_raw(path("bad-type"), concat(header(0x07, {2}), {7, 7}));
  expect_error([&] { read_idx(path("bad-type")); }, {"bad-type", "found 00 00 07 01"});
  write_raw(path("zero-dims"), {0, 0, 8, 0});
  expect_error([&] { read_idx(path("zero-dims")); }, {"zero-dims", "at least one dimension"});
}

TEST_F(IdxTest, WrongDims) {
  // The header claims 4 x 4 but 3 x 4 bytes follow.
  write_raw(path("wrong-dims"), concat(header(0x08, {4, 4}), iota_bytes(12)));
  expect_error([&] { read_idx(path("wrong-dims")); },
               {"wrong-dims", "expected 16 bytes of data for dims [4, 4]", "found 12"});
  // A dimension that does not fit a signed 32-bit integer.
  write_raw(path("huge-dim"), concat(header(0x08, {0x80000000u}), {1}));
  expect_error([&] { read_idx(path("huge-dim")); }, {"huge-dim", "dimension 0", "2147483648"});
}

TEST_F(IdxTest, TrailingBytes) {
  write_raw(path("trailing"), concat(header(0x08, {2, 3}), iota_bytes(6 + 3)));
  expect_error([&] { read_idx(path("trailing")); },
               {"trailing", "expected 6 bytes of data for dims [2, 3]", "found 9", "3 trailing bytes"});
  // The same inside a gzip file: sizes refer to the decompressed content.
  write_gz(path("trailing.gz"), concat(header(0x08, {2, 3}), iota_bytes(6 + 3)));
  expect_error([&] { read_idx(path("trailing.gz")); }, {"trailing.gz", "found 9", "decompression"});
}

TEST_F(IdxTest, CorruptGzip) {
  const Bytes file = concat(header(0x08, {50, 28, 28}), iota_bytes(50 * 28 * 28));
  write_gz(path("good.gz"), file);
  const Bytes gz = read_raw(path("good.gz"));
  ASSERT_GT(gz.size(), 100u);

  Bytes flipped = gz;  // damage the deflate data
  for (size_t i = 20; i < 40; ++i) flipped[i] ^= 0x5a;
  write_raw(path("flipped.gz"), flipped);
  expect_error([&] { read_idx(path("flipped.gz")); }, {"flipped.gz", "gzip"});

  Bytes crc = gz;  // damage only the CRC in the trailer
  crc[crc.size() - 6] ^= 0xff;
  write_raw(path("crc.gz"), crc);
  expect_error([&] { read_idx(path("crc.gz")); }, {"crc.gz", "gzip"});

  write_raw(path("cut.gz"), Bytes(gz.begin(), gz.begin() + static_cast<long>(gz.size() / 2)));
  expect_error([&] { read_idx(path("cut.gz")); }, {"cut.gz", "truncated gzip"});

  write_raw(path("only-magic.gz"), {0x1f, 0x8b});
  expect_error([&] { read_idx(path("only-magic.gz")); }, {"only-magic.gz", "gzip"});

  write_raw(path("junk-after.gz"), concat(gz, {'j', 'u', 'n', 'k'}));
  expect_error([&] { read_idx(path("junk-after.gz")); }, {"junk-after.gz", "found 4 more bytes"});
}

// ---------------------------------------------------------------- MNIST

// Writes a tiny MNIST split: pixel k (row-major over all images) = (k * 37) % 256; labels as given.
void write_split(const std::string& dir, const std::string& prefix, int64_t h, int64_t w, const Bytes& labels,
                 bool gz) {
  const int64_t n = static_cast<int64_t>(labels.size());
  Bytes px(static_cast<size_t>(n * h * w));
  for (size_t i = 0; i < px.size(); ++i) px[i] = static_cast<uint8_t>((i * 37) % 256);
  const std::string img = dir + "/" + prefix + "-images-idx3-ubyte";
  const std::string lab = dir + "/" + prefix + "-labels-idx1-ubyte";
  write_idx_u8(img, {n, h, w}, px);
  write_idx_u8(lab, {n}, labels);
  if (gz) {
    for (const auto& p : {img, lab}) {
      write_gz(p + ".gz", read_raw(p));
      fs::remove(p);
    }
  }
}

TEST_F(IdxTest, LoadMnistPlainAndGz) {
  write_split(dir_, "train", 28, 28, {0, 1, 2, 3, 9}, /*gz=*/false);
  write_split(dir_, "t10k", 28, 28, {7, 4, 5}, /*gz=*/true);

  const dl::data::MnistSplit tr = dl::data::load_mnist(dir_, true);
  EXPECT_EQ(tr.images.shape(), (dl::Shape{5, 1, 28, 28}));
  EXPECT_EQ(tr.images.dtype(), dl::DType::kFloat32);
  EXPECT_EQ(tr.labels.shape(), (dl::Shape{5}));
  EXPECT_EQ(tr.labels.dtype(), dl::DType::kInt32);
  const float* px = tr.images.data<float>();
  for (int64_t i = 0; i < 5 * 28 * 28; ++i) ASSERT_FLOAT_EQ(px[i], float((i * 37) % 256) / 255.0f) << i;
  const int32_t want[] = {0, 1, 2, 3, 9};
  for (int i = 0; i < 5; ++i) EXPECT_EQ(tr.labels.data<int32_t>()[i], want[i]);

  const dl::data::MnistSplit te = dl::data::load_mnist(dir_ + "/", false);
  EXPECT_EQ(te.images.shape(), (dl::Shape{3, 1, 28, 28}));
  EXPECT_EQ(te.labels.data<int32_t>()[0], 7);
  EXPECT_EQ(te.labels.data<int32_t>()[2], 5);
}

TEST_F(IdxTest, LoadMnistAcceptsOtherImageSizes) {
  write_split(dir_, "train", 4, 6, {1, 2}, false);
  const dl::data::MnistSplit s = dl::data::load_mnist(dir_, true);
  EXPECT_EQ(s.images.shape(), (dl::Shape{2, 1, 4, 6}));
}

TEST_F(IdxTest, LoadMnistLabelOutOfRange) {
  write_split(dir_, "train", 28, 28, {0, 1, 2, 12, 4}, false);
  expect_error([&] { dl::data::load_mnist(dir_, true); }, {"train-labels-idx1-ubyte", "label 12", "index 3", "0..9"});
}

TEST_F(IdxTest, LoadMnistCountMismatchAndWrongRank) {
  write_split(dir_, "train", 28, 28, {0, 1, 2}, false);
  write_idx_u8(path("train-labels-idx1-ubyte"), {2}, {0, 1});
  expect_error([&] { dl::data::load_mnist(dir_, true); }, {"train-labels-idx1-ubyte", "2 labels", "expected 3"});

  write_idx_u8(path("train-images-idx3-ubyte"), {2, 784}, Bytes(2 * 784));
  expect_error([&] { dl::data::load_mnist(dir_, true); }, {"train-images-idx3-ubyte", "N x H x W", "[2, 784]"});
}

TEST_F(IdxTest, LoadMnistMissingFiles) {
  expect_error([&] { dl::data::load_mnist(dir_, false); },
               {path("t10k-images-idx3-ubyte"), "t10k-images-idx3-ubyte.gz", "fetch_mnist.sh"});
  write_split(dir_, "t10k", 28, 28, {1}, false);
  fs::remove(path("t10k-labels-idx1-ubyte"));
  expect_error([&] { dl::data::load_mnist(dir_, false); }, {"t10k-labels-idx1-ubyte"});
}

// The generated stand-in (dl/data/mnist_synth.h) loads like the real files: deterministic, balanced
// classes, ink on a dark background.
TEST(Mnist, GeneratedDigitsLoad) {
  const fs::path dir = fs::temp_directory_path() / ("dl_test_idx_synth_" + std::to_string(::getpid()));
  dl::data::write_synthetic_mnist(dir.string(), {.train = 50, .test = 20, .seed = 3});
  EXPECT_EQ(dl::data::render_synthetic_digit(7, 3, 4), dl::data::render_synthetic_digit(7, 3, 4));
  EXPECT_NE(dl::data::render_synthetic_digit(7, 3, 4), dl::data::render_synthetic_digit(7, 3, 5));
  for (bool train : {true, false}) {
    const dl::data::MnistSplit s = dl::data::load_mnist(dir.string(), train);
    const int64_t n = train ? 50 : 20;
    ASSERT_EQ(s.images.size(0), n);
    EXPECT_EQ(s.images.size(2), 28);
    std::vector<int> per_class(10, 0);
    for (int64_t i = 0; i < n; ++i) ++per_class[static_cast<size_t>(s.labels.data<int32_t>()[i])];
    for (int c : per_class) EXPECT_EQ(c, n / 10);
    double ink = 0;
    for (int64_t i = 0; i < s.images.numel(); ++i) ink += s.images.data<float>()[i];
    const double mean = ink / static_cast<double>(s.images.numel());
    EXPECT_GT(mean, 0.05);  // strokes drawn
    EXPECT_LT(mean, 0.4);   // on a dark background
  }
  fs::remove_all(dir);
}

}  // namespace
