// Files from strangers and faults of the machine: every reader refuses what its format does not
// allow with a message naming the file and what came (never a crash, hang or silent wrong answer);
// every writer checks its writes, replaces only regular files, leaves no partial output on a full
// disk and no temporaries after a killed writer.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <jpeglib.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>

#include "dl/dl.h"

namespace {

namespace fs = std::filesystem;
using Bytes = std::string;

fs::path temp_dir(const std::string& name) {
  fs::path p = fs::temp_directory_path() / ("libdl_hostile_" + std::to_string(::getpid()) + "_" + name);
  fs::remove_all(p);
  fs::create_directories(p);
  return p;
}

void put(const fs::path& p, const Bytes& b) {
  std::ofstream f(p, std::ios::binary | std::ios::trunc);
  f.write(b.data(), static_cast<std::streamsize>(b.size()));
}

Bytes get(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return Bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

// Runs f, expects a dl::Error whose message holds every one of `parts`.
void expect_error(const std::function<void()>& f, const std::vector<std::string>& parts) {
  try {
    f();
    ADD_FAILURE() << "no error; expected one mentioning '" << parts.front() << "'";
  } catch (const dl::Error& e) {
    const std::string msg = e.what();
    if (std::getenv("DL_SHOW_ERRORS")) std::printf("  error: %s\n", msg.c_str());  // to read them all
    for (const auto& p : parts) EXPECT_NE(msg.find(p), std::string::npos) << "'" << p << "' not in: " << msg;
  }
}

// ---- a small PNG writer, so that every bit depth, colour type and corruption can be made ----
void be32(Bytes& out, uint32_t v) {
  for (int s = 24; s >= 0; s -= 8) out += static_cast<char>(v >> s & 0xff);
}
void chunk(Bytes& out, const char* type, const Bytes& data) {
  be32(out, static_cast<uint32_t>(data.size()));
  const Bytes body = std::string(type, 4) + data;
  out += body;
  be32(out,
       static_cast<uint32_t>(crc32(0, reinterpret_cast<const Bytef*>(body.data()), static_cast<uInt>(body.size()))));
}
Bytes zlib_compress(const Bytes& raw) {
  uLongf n = compressBound(static_cast<uLong>(raw.size()));
  Bytes out(n, '\0');
  compress(reinterpret_cast<Bytef*>(out.data()), &n, reinterpret_cast<const Bytef*>(raw.data()),
           static_cast<uLong>(raw.size()));
  out.resize(n);
  return out;
}
// rows: packed scanlines without filter bytes.
Bytes make_png(uint32_t w, uint32_t h, int depth, int color, const std::vector<Bytes>& rows, const Bytes& plte = "") {
  Bytes png = "\x89PNG\r\n\x1a\n";
  Bytes ihdr;
  be32(ihdr, w);
  be32(ihdr, h);
  ihdr += {static_cast<char>(depth), static_cast<char>(color), 0, 0, 0};
  chunk(png, "IHDR", ihdr);
  if (!plte.empty()) chunk(png, "PLTE", plte);
  Bytes raw;
  for (const auto& r : rows) raw += '\0' + r;
  chunk(png, "IDAT", zlib_compress(raw));
  chunk(png, "IEND", "");
  return png;
}

// A JPEG of w x h RGB pixels through libjpeg's encoder.
Bytes make_jpeg(int w, int h) {
  jpeg_compress_struct c{};
  jpeg_error_mgr err{};
  c.err = jpeg_std_error(&err);
  jpeg_create_compress(&c);
  unsigned char* buf = nullptr;
  unsigned long size = 0;
  jpeg_mem_dest(&c, &buf, &size);
  c.image_width = w;
  c.image_height = h;
  c.input_components = 3;
  c.in_color_space = JCS_RGB;
  jpeg_set_defaults(&c);
  jpeg_set_quality(&c, 95, TRUE);
  jpeg_start_compress(&c, TRUE);
  std::vector<unsigned char> row(static_cast<size_t>(w) * 3);
  while (c.next_scanline < c.image_height) {
    for (int x = 0; x < w; ++x) row[x * 3] = 200, row[x * 3 + 1] = 50, row[x * 3 + 2] = 10;
    JSAMPROW r = row.data();
    jpeg_write_scanlines(&c, &r, 1);
  }
  jpeg_finish_compress(&c);
  Bytes out(reinterpret_cast<char*>(buf), size);
  jpeg_destroy_compress(&c);
  std::free(buf);
  return out;
}

// ---------------------------------------------------------------------------------------------
TEST(FileIo, NonRegularInputsAreRefusedWithoutBlocking) {
  const fs::path d = temp_dir("fifo");
  const std::string fifo = (d / "model.fifo").string();
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  const auto t0 = std::chrono::steady_clock::now();
  expect_error([&] { dl::load_safetensors(fifo); }, {fifo, "expected a regular file, got a FIFO"});
  expect_error([&] { dl::load_tensor_file(fifo); }, {"FIFO"});
  expect_error([&] { dl::data::read_idx(fifo); }, {"FIFO"});
  expect_error([&] { dl::data::read_label_png(fifo); }, {"FIFO"});
  expect_error([&] { dl::load_tensor_file(d.string()); }, {"a folder"});
  expect_error([&] { dl::data::read_rgb_image("/dev/zero"); }, {"character device"});
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 5.0);
  fs::remove_all(d);
}

TEST(FileIo, AtomicWritesReplaceOnlyRegularFiles) {
  const fs::path d = temp_dir("targets");
  const std::string fifo = (d / "out.fifo").string();
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  expect_error([&] { dl::write_file_atomically(fifo, "x"); }, {fifo, "FIFO"});
  EXPECT_TRUE(fs::is_fifo(fifo));
  expect_error([&] { dl::write_file_atomically(d.string(), "x"); }, {"folder"});
  expect_error([&] { dl::write_file_atomically("/dev/null", "x"); }, {"/dev/null", "character device"});
  EXPECT_TRUE(fs::is_character_file("/dev/null"));
  // A link to a regular file: the file is replaced, the link kept.
  put(d / "real", "old");
  fs::create_symlink(d / "real", d / "link");
  dl::write_file_atomically((d / "link").string(), "new");
  EXPECT_TRUE(fs::is_symlink(d / "link"));
  EXPECT_EQ(get(d / "real"), "new");
  fs::remove_all(d);
}

TEST(FileIo, TemporariesOfKilledWritersAreRemoved) {
  const fs::path d = temp_dir("stale");
  const pid_t child = ::fork();
  if (child == 0) _exit(0);
  ASSERT_GT(child, 0);
  ::waitpid(child, nullptr, 0);  // a pid that no longer runs
  const fs::path stale = d / ("ck.dlck.dltmp." + std::to_string(child) + ".0");
  const fs::path live = d / ("ck.dlck.dltmp." + std::to_string(::getppid()) + ".0");
  put(stale, "half a checkpoint");
  put(live, "a writer still running");
  put(d / "notes.dltmp.txt", "not ours");
  dl::write_file_atomically((d / "ck.dlck").string(), "whole");
  EXPECT_FALSE(fs::exists(stale));
  EXPECT_TRUE(fs::exists(live));
  EXPECT_TRUE(fs::exists(d / "notes.dltmp.txt"));
  EXPECT_EQ(get(d / "ck.dlck"), "whole");
  fs::remove_all(d);
}

// A full disk, as the file-size limit makes it: write() fails (EFBIG) the way ENOSPC does.
class FullDisk {
 public:
  explicit FullDisk(rlim_t bytes) {
    ::getrlimit(RLIMIT_FSIZE, &old_);
    old_handler_ = ::signal(SIGXFSZ, SIG_IGN);
    rlimit r = old_;
    r.rlim_cur = bytes;
    ::setrlimit(RLIMIT_FSIZE, &r);
  }
  ~FullDisk() {
    ::setrlimit(RLIMIT_FSIZE, &old_);
    ::signal(SIGXFSZ, old_handler_);
  }

 private:
  rlimit old_{};
  sighandler_t old_handler_;
};

TEST(FileIo, AFullDiskLeavesTheOldFileAndNoDebris) {
  const fs::path d = temp_dir("full");
  const std::string path = (d / "report.json").string();
  dl::write_file_atomically(path, "{\"complete\": true}");
  {
    FullDisk full(4096);
    expect_error([&] { dl::write_file_atomically(path, std::string(100000, 'x')); }, {path, "write failed"});
    dl::CheckedAppendFile log((d / "log.csv").string(), true);
    log.write("header\n");
    expect_error([&] { log.write(std::string(100000, 'y')); }, {"log.csv", "write failed"});
  }
  EXPECT_EQ(get(d / "log.csv"), "header\n");  // the record that did not fit is gone, not half there
  EXPECT_EQ(get(path), "{\"complete\": true}");
  int files = 0;
  for (const auto& e : fs::directory_iterator(d))
    files += e.path().filename().string().find(".dltmp.") == std::string::npos;
  EXPECT_EQ(files, 2);  // report.json and log.csv, no temporary
  for (const auto& e : fs::directory_iterator(d))
    EXPECT_EQ(e.path().filename().string().find(".dltmp."), std::string::npos) << e.path();
  fs::remove_all(d);
}

TEST(FileIo, SignaturesAreNamed) {
  EXPECT_EQ(dl::describe_file_signature("GIF89a....", 10), "a GIF image");
  EXPECT_EQ(dl::describe_file_signature("BM......", 8), "a BMP image");
  EXPECT_EQ(dl::describe_file_signature("\x89PNG\r\n\x1a\n", 8), "a PNG image");
  EXPECT_EQ(dl::describe_file_signature("DLTENSR1", 8), "a libdl tensor file");
  EXPECT_EQ(dl::describe_file_signature("\x1f\x8b\x08", 3), "a gzip stream");
  EXPECT_EQ(dl::describe_file_signature("zzzz", 4), "data starting with 7a 7a 7a 7a");
}

// ---------------------------------------------------------------------------------------------
TEST(Images, LabelPngsAreReadByBitDepthAndColourType) {
  const fs::path d = temp_dir("labels");
  // 1-bit grey: classes 0 and 1 (not 0 and 255).
  put(d / "a.png", make_png(8, 1, 1, 0, {Bytes(1, '\xa5')}));
  dl::data::LabelPngFormat f{};
  dl::Tensor l = dl::data::read_label_png((d / "a.png").string(), &f);
  EXPECT_EQ(f, dl::data::LabelPngFormat::kIndex);
  const uint8_t want1[8] = {1, 0, 1, 0, 0, 1, 0, 1};
  EXPECT_EQ(0, std::memcmp(l.data<uint8_t>(), want1, 8));
  // 4-bit grey: two pixels a byte.
  put(d / "b.png", make_png(3, 1, 4, 0, {Bytes("\x3a\x70", 2)}));
  l = dl::data::read_label_png((d / "b.png").string());
  EXPECT_EQ(l.data<uint8_t>()[0], 3);
  EXPECT_EQ(l.data<uint8_t>()[1], 10);
  EXPECT_EQ(l.data<uint8_t>()[2], 7);
  // 16-bit grey with values that fit 8 bits; one that does not is an error.
  put(d / "c.png", make_png(2, 1, 16, 0, {Bytes("\x00\x05\x00\xff", 4)}));
  l = dl::data::read_label_png((d / "c.png").string());
  EXPECT_EQ(l.data<uint8_t>()[0], 5);
  EXPECT_EQ(l.data<uint8_t>()[1], 255);
  put(d / "c2.png", make_png(1, 1, 16, 0, {Bytes("\x01\x05", 2)}));
  expect_error([&] { dl::data::read_label_png((d / "c2.png").string()); }, {"c2.png", "261"});
  // Palette: each index stands for its colour (CamVid Sky = 128,128,128 is class 0).
  const dl::data::Rgb sky = dl::data::camvid_colour_of(0), road = dl::data::camvid_colour_of(3);
  const Bytes plte = {static_cast<char>(sky.r),  static_cast<char>(sky.g),  static_cast<char>(sky.b),
                      static_cast<char>(road.r), static_cast<char>(road.g), static_cast<char>(road.b)};
  put(d / "p.png", make_png(2, 1, 8, 3, {Bytes("\x01\x00", 2)}, plte));
  l = dl::data::read_label_png((d / "p.png").string(), &f);
  EXPECT_EQ(f, dl::data::LabelPngFormat::kCamVidRgb);
  EXPECT_EQ(l.data<uint8_t>()[0], 3);
  EXPECT_EQ(l.data<uint8_t>()[1], 0);
  // A palette index past the palette is refused, never read from beyond it.
  put(d / "p2.png", make_png(2, 1, 8, 3, {Bytes("\x01\x07", 2)}, plte));
  expect_error([&] { dl::data::read_label_png((d / "p2.png").string()); }, {"p2.png", "palette"});
  fs::remove_all(d);
}

TEST(Images, CorruptPngsAreRefused) {
  const fs::path d = temp_dir("corrupt");
  const Bytes good = make_png(4, 2, 8, 0, {Bytes(4, '\x01'), Bytes(4, '\x02')});
  put(d / "good.png", good);
  EXPECT_EQ(dl::data::read_label_png((d / "good.png").string()).data<uint8_t>()[4], 2);

  Bytes crc = good;  // a pixel changed inside IDAT: its CRC fails
  const size_t idat = crc.find("IDAT");
  crc[idat + 6] ^= 0x10;
  put(d / "crc.png", crc);
  expect_error([&] { dl::data::read_label_png((d / "crc.png").string()); }, {"crc.png", "CRC"});

  // The zlib stream changed and the chunk CRC recomputed: the Adler-32 catches it.
  Bytes adler = make_png(4, 2, 8, 0, {Bytes(4, '\x01'), Bytes(4, '\x02')});
  {
    const size_t at = adler.find("IDAT");
    const uint32_t len = (uint8_t(adler[at - 4]) << 24) | (uint8_t(adler[at - 3]) << 16) |
                         (uint8_t(adler[at - 2]) << 8) | uint8_t(adler[at - 1]);
    adler[at + 4 + len - 1] ^= 0x01;  // the last byte of the Adler-32
    const uint32_t c = static_cast<uint32_t>(crc32(0, reinterpret_cast<const Bytef*>(adler.data() + at), len + 4));
    for (int k = 0; k < 4; ++k) adler[at + 4 + len + k] = static_cast<char>(c >> (24 - 8 * k));
  }
  put(d / "adler.png", adler);
  expect_error([&] { dl::data::read_label_png((d / "adler.png").string()); }, {"adler.png"});

  put(d / "trail.png", good + "junk");
  expect_error([&] { dl::data::read_label_png((d / "trail.png").string()); }, {"after the IEND"});
  put(d / "trunc.png", good.substr(0, good.size() - 12));
  expect_error([&] { dl::data::read_label_png((d / "trunc.png").string()); }, {"trunc.png", "IEND"});

  // Another format under a .png name: refused by its signature.
  put(d / "gif.png", "GIF89a\x01\x00\x01\x00" + Bytes(102, '\0'));
  expect_error([&] { dl::data::read_label_png((d / "gif.png").string()); }, {"gif.png", "a GIF image"});
  expect_error([&] { dl::data::read_rgb_image((d / "gif.png").string()); }, {"expected a PNG or JPEG", "GIF"});
  put(d / "bmp.png", "BM" + Bytes(110, '\0'));
  expect_error([&] { dl::data::read_label_png((d / "bmp.png").string()); }, {"a BMP image"});

  // Dimensions over the limit: refused from the header, before any pixel is allocated.
  const int64_t before = dl::CpuAllocator::instance().stats().peak_bytes;
  put(d / "huge.png", make_png(100000, 100000, 8, 0, {Bytes(1, '\0')}));
  expect_error([&] { dl::data::read_label_png((d / "huge.png").string()); }, {"huge.png", "100000 x 100000"});
  put(d / "big.png", make_png(16000, 8000, 8, 2, {Bytes(3, '\0')}));  // within limits, but 1 byte of data
  expect_error([&] { dl::data::read_rgb_image((d / "big.png").string()); }, {"big.png", "cannot hold"});
  EXPECT_LT(dl::CpuAllocator::instance().stats().peak_bytes - before, 1 << 20);
  fs::remove_all(d);
}

TEST(Images, JpegAndPngDecodeToRgb) {
  const fs::path d = temp_dir("rgb");
  put(d / "a.jpg", make_jpeg(16, 8));
  const dl::data::Image j = dl::data::read_rgb_image((d / "a.jpg").string());
  ASSERT_EQ(j.height, 8);
  ASSERT_EQ(j.width, 16);
  EXPECT_NEAR(j.pixels[0], 200, 6);
  EXPECT_NEAR(j.pixels[1], 50, 6);
  EXPECT_EQ(dl::data::read_image_info((d / "a.jpg").string()).format, "JPEG");
  Bytes jpeg = make_jpeg(16, 8);
  put(d / "cut.jpg", jpeg.substr(0, jpeg.size() / 2));
  expect_error([&] { dl::data::read_rgb_image((d / "cut.jpg").string()); }, {"cut.jpg", "JPEG"});
  put(d / "hdr.jpg", jpeg.substr(0, 20));
  expect_error([&] { dl::data::read_image_info((d / "hdr.jpg").string()); }, {"hdr.jpg"});

  const uint8_t rgb[6] = {1, 2, 3, 4, 5, 6};
  dl::data::write_png((d / "x.png").string(), rgb, 1, 2, 3);
  const dl::data::Image p = dl::data::read_rgb_image((d / "x.png").string());
  ASSERT_EQ(p.pixels.size(), 6u);
  EXPECT_EQ(0, std::memcmp(p.pixels.data(), rgb, 6));
  fs::remove_all(d);
}

// ---------------------------------------------------------------------------------------------
Bytes safetensors(const std::string& header, const Bytes& data) {
  Bytes out(8, '\0');
  const uint64_t n = header.size();
  std::memcpy(out.data(), &n, 8);
  return out + header + data;
}

TEST(SafeTensorsHostile, EveryRuleOfTheFormat) {
  const fs::path d = temp_dir("st");
  const std::string p = (d / "m.safetensors").string();
  const Bytes f8(8, '\0');
  put(p, safetensors(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", f8));
  EXPECT_EQ(dl::load_safetensors(p).tensors.size(), 1u);

  // A header length off by one shifts every byte: refused (trailing byte or bad JSON), never loaded.
  Bytes shifted = safetensors(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", f8);
  shifted[0] = static_cast<char>(shifted[0] - 1);
  put(p, shifted);
  expect_error([&] { dl::load_safetensors(p); }, {p});
  shifted[0] = static_cast<char>(shifted[0] + 2);
  put(p, shifted);
  expect_error([&] { dl::load_safetensors(p); }, {p});

  put(p, safetensors(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", f8 + "x"));
  expect_error([&] { dl::load_safetensors(p); }, {"1 bytes after the last tensor"});
  put(p, safetensors(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", f8));
  expect_error([&] { dl::load_safetensors(p); }, {"hole of 4 bytes"});
  put(p,
      safetensors(
          R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"w":{"dtype":"F32","shape":[0],"data_offsets":[8,8]}})",
          f8));
  expect_error([&] { dl::load_safetensors(p); }, {"duplicate name"});
  put(p, safetensors(R"({"w\uZZZZ":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", f8));
  expect_error([&] { dl::load_safetensors(p); }, {"bad \\u escape"});
  put(p, safetensors(R"({"w":{"dtype":"F32","shape":[2.0],"data_offsets":[0,8]}})", f8));
  expect_error([&] { dl::load_safetensors(p); }, {"'w'", "non-negative integer"});
  put(p, safetensors(R"({"w":{"dtype":"F32","shape":[4294967296,4294967296,4294967296],"data_offsets":[0,8]}})", f8));
  expect_error([&] { dl::load_safetensors(p); }, {"'w'", "2^56"});
  put(p, safetensors(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8],"extra":1}})", f8));
  expect_error([&] { dl::load_safetensors(p); }, {"exactly dtype"});
  put(p, safetensors("[1]", ""));
  expect_error([&] { dl::load_safetensors(p); }, {"JSON object"});
  put(p, safetensors("{\"a\":\"\xff\"}", ""));
  expect_error([&] { dl::load_safetensors(p); }, {"UTF-8"});
  {  // a header length over 100 MB is refused from the length alone
    Bytes big(8, '\0');
    const uint64_t n = 200'000'000;
    std::memcpy(big.data(), &n, 8);
    put(p, big + "{}");
    expect_error([&] { dl::load_safetensors(p); }, {"over the format's limit"});
  }
  // Non-finite values are refused by name unless allowed.
  const float bad[2] = {1.0f, std::numeric_limits<float>::quiet_NaN()};
  put(p, safetensors(R"({"bn.running_var":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})",
                     Bytes(reinterpret_cast<const char*>(bad), 8)));
  expect_error([&] { dl::load_safetensors(p); }, {"'bn.running_var'", "nan"});
  EXPECT_TRUE(std::isnan(dl::load_safetensors(p, {.allow_non_finite = true}).tensors[0].second.data<float>()[1]));
  // BF16 and F16 load as bfloat16 and float16, their bits as they were.
  const uint16_t half[2] = {0x3c00, 0xc000}, bf[2] = {0x3f80, 0x4040};  // 1, -2 and 1, 3
  put(p,
      safetensors(
          R"({"h":{"dtype":"F16","shape":[2],"data_offsets":[0,4]},"b":{"dtype":"BF16","shape":[2],"data_offsets":[4,8]}})",
          Bytes(reinterpret_cast<const char*>(half), 4) + Bytes(reinterpret_cast<const char*>(bf), 4)));
  const dl::SafeTensors st = dl::load_safetensors(p);
  EXPECT_EQ(st.tensors[0].second.dtype(), dl::DType::kFloat16);
  EXPECT_EQ(st.tensors[1].second.dtype(), dl::DType::kBFloat16);
  EXPECT_EQ(st.tensors[0].second.to_vector_f32(), (std::vector<float>{1.0f, -2.0f}));
  EXPECT_EQ(st.tensors[1].second.to_vector_f32(), (std::vector<float>{1.0f, 3.0f}));
  // A BOOL byte other than 0 or 1 is refused by name (reading it as a bool is undefined behaviour).
  put(p, safetensors(R"({"m":{"dtype":"BOOL","shape":[3],"data_offsets":[0,3]}})", Bytes("\x01\x00\x02", 3)));
  expect_error([&] { dl::load_safetensors(p); }, {"'m'", "byte 2", "element 2"});
  // A float16 infinity is refused like a float32 one.
  const uint16_t inf16[1] = {0x7c00};
  put(p, safetensors(R"({"h":{"dtype":"F16","shape":[1],"data_offsets":[0,2]}})",
                     Bytes(reinterpret_cast<const char*>(inf16), 2)));
  expect_error([&] { dl::load_safetensors(p); }, {"'h'", "inf"});
  // And the writer refuses to write them.
  dl::Tensor nan_t = dl::Tensor::from_vector<float>({2}, {1.0f, std::numeric_limits<float>::infinity()});
  expect_error([&] { dl::save_safetensors(p, {{"x", nan_t}}); }, {"'x'", "inf", "not written"});
  fs::remove_all(d);
}

TEST(TensorFileHostile, CorruptionAndNonFiniteValues) {
  const fs::path d = temp_dir("tf");
  const std::string p = (d / "w.dlw").string();
  dl::TensorFile tf;
  tf.metadata["kind"] = "weights";
  tf.tensors.emplace_back("a", dl::Tensor::from_vector<float>({3}, {1, 2, 3}));
  dl::save_tensor_file(p, tf);
  EXPECT_EQ(dl::load_tensor_file(p).tensors.size(), 1u);
  const Bytes good = get(p);
  for (size_t at : {size_t{9}, size_t{20}, good.size() - 9, good.size() - 1}) {
    Bytes flipped = good;
    flipped[at] ^= 0x40;
    put(p, flipped);
    expect_error([&] { dl::load_tensor_file(p); }, {p});
  }
  put(p, good.substr(0, good.size() - 5));
  expect_error([&] { dl::load_tensor_file(p); }, {p});
  put(p, make_png(1, 1, 8, 0, {Bytes(1, '\0')}));
  expect_error([&] { dl::load_tensor_file(p); }, {"expected a libdl tensor file", "a PNG image"});
  tf.tensors[0].second.data<float>()[1] = std::numeric_limits<float>::quiet_NaN();
  expect_error([&] { dl::save_tensor_file(p, tf); }, {"'a'", "not written"});
  dl::save_tensor_file(p, tf, {.allow_non_finite = true});
  expect_error([&] { dl::load_tensor_file(p); }, {"'a'", "nan"});
  fs::remove_all(d);
}

// ---------------------------------------------------------------------------------------------
Bytes gzip(const Bytes& raw) {
  z_stream zs{};
  deflateInit2(&zs, 9, Z_DEFLATED, 16 + MAX_WBITS, 9, Z_DEFAULT_STRATEGY);
  Bytes out(deflateBound(&zs, static_cast<uLong>(raw.size())) + 64, '\0');
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(raw.data()));
  zs.avail_in = static_cast<uInt>(raw.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  deflate(&zs, Z_FINISH);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  return out;
}

Bytes idx_header(const std::vector<uint32_t>& dims) {
  Bytes h = {0, 0, 8, static_cast<char>(dims.size())};
  for (uint32_t d : dims) be32(h, d);
  return h;
}

TEST(IdxHostile, GzipBombsAndAbsurdHeadersAreBounded) {
  const fs::path d = temp_dir("idx");
  auto& alloc = dl::CpuAllocator::instance();
  // A header that no gzip file of this size can fill: refused before anything is allocated.
  put(d / "claims.gz", gzip(idx_header({60000, 10000, 10000}) + Bytes(1000, '\0')));
  alloc.reset_peak();
  const int64_t base = alloc.stats().current_bytes;
  expect_error([&] { dl::data::read_idx((d / "claims.gz").string()); }, {"claims.gz", "gzip file can hold"});
  EXPECT_LT(alloc.stats().peak_bytes - base, 1 << 20);
  // A bomb: 16 MB declared, 64 MB of zeros inside. Memory stays at the declared size; the rest is an error.
  put(d / "bomb.gz", gzip(idx_header({16, 1024, 1024}) + Bytes(64 << 20, '\0')));
  alloc.reset_peak();
  expect_error([&] { dl::data::read_idx((d / "bomb.gz").string()); }, {"bomb.gz", "trailing bytes"});
  EXPECT_LT(alloc.stats().peak_bytes - base, (16 << 20) + (1 << 20));
  // The memory limit covers readers too.
  put(d / "plain", idx_header({4, 1024, 1024}) + Bytes(4 << 20, '\0'));
  alloc.set_limit(alloc.stats().current_bytes + (1 << 20));
  expect_error([&] { dl::data::read_idx((d / "plain").string()); }, {"out of memory", "limit"});
  alloc.set_limit(0);
  fs::remove_all(d);
}

// ---------------------------------------------------------------------------------------------
TEST(Sizes, AbsurdRequestsFailAtOnce) {
  const auto t0 = std::chrono::steady_clock::now();
  expect_error([] { dl::CpuAllocator::instance().allocate(size_t{1} << 63); },
               {"out of host memory", "9223372036854775808"});
  EXPECT_EQ(dl::allocation_size_class(std::numeric_limits<size_t>::max()), std::numeric_limits<size_t>::max());
  EXPECT_EQ(dl::allocation_size_class(5000), 5120u);
  expect_error([] { dl::Tensor::empty({int64_t{1} << 40, int64_t{1} << 40}, dl::DType::kFloat32); }, {"2^56"});
  expect_error([] { dl::data::parse_image_size("9223372036854775807x48"); }, {"height", "9223372036854775807"});
  expect_error([] { dl::data::parse_image_size("100000x48"); }, {"100000"});
  EXPECT_EQ(dl::data::parse_image_size("360x480").width, 480);
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 2.0);
}

TEST(Sizes, StrictNumbers) {
  EXPECT_EQ(dl::parse_int("42", 0, 100, "n"), 42);
  expect_error([] { dl::parse_int("4294967307", 1, 254, "num_classes"); }, {"num_classes", "4294967307"});
  expect_error([] { dl::parse_int("12abc", 0, 100, "n"); }, {"12abc"});
  expect_error([] { dl::parse_uint("-1", 100, "seed"); }, {"seed", "-1"});
  expect_error([] { dl::parse_double("nan", 0, 1, "x"); }, {"nan"});
  EXPECT_TRUE(std::isinf(dl::parse_double("inf", 0, INFINITY, "t", true)));
}

// ---------------------------------------------------------------------------------------------
std::shared_ptr<dl::data::TensorDataset> tiny_set(int n) {
  dl::Generator gen(5);
  dl::Tensor x = dl::Tensor::uniform({n, 1, 8, 8}, 0.0, 1.0, gen);
  std::vector<int32_t> y(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) y[i] = i % 4;
  return std::make_shared<dl::data::TensorDataset>(x, dl::Tensor::from_vector<int32_t>({n}, y));
}

dl::train::TrainingOptions tiny_options(const fs::path& dir) {
  dl::train::TrainingOptions o;
  o.solver = dl::train::Solver::kSgdm;
  o.max_epochs = 3;
  o.mini_batch_size = 16;
  o.verbose = false;
  o.checkpoint_path = dir.string();
  return o;
}

TEST(Divergence, NonFiniteStatisticsStopTrainingBeforeAnyCheckpoint) {
  const fs::path d = temp_dir("diverge");
  dl::nn::MnistCnn model({.filters = {4}, .in_channels = 1, .height = 8, .width = 8, .num_classes = 4});
  dl::train::Trainer t(model, tiny_options(d));
  // Training-mode batch norm does not read its running variance: only the state check can see this.
  t.set_gradient_hook([&](const std::vector<dl::nn::ParamRef>&) {
    for (auto& [name, b] : model.state())
      if (name.find("running_var") != std::string::npos) b.data<float>()[0] = INFINITY;
  });
  expect_error([&] { t.fit(tiny_set(64)); }, {"training diverged", "running_var", "inf"});
  EXPECT_TRUE(fs::is_empty(d));
  fs::remove_all(d);
}

TEST(Divergence, AnExplodingLossStopsTraining) {
  const fs::path d = temp_dir("explode");
  dl::nn::MnistCnn model({.filters = {4}, .in_channels = 1, .height = 8, .width = 8, .num_classes = 4});
  dl::train::TrainingOptions o = tiny_options(d);
  o.divergence_loss_factor = 2;  // the first loss times 2: an ordinary run goes below it
  dl::train::Trainer t(model, o);
  t.set_gradient_hook([&](const std::vector<dl::nn::ParamRef>& params) {
    for (auto p : params) {  // weights grown without bound: logits and loss explode
      float* w = p.tensor.data<float>();
      for (int64_t i = 0; i < p.tensor.numel(); ++i) w[i] *= 50.0f;
    }
  });
  expect_error([&] { t.fit(tiny_set(64)); }, {"training diverged", "times the first mini-batch loss"});
  fs::remove_all(d);
}

TEST(Checkpoints, KeepOnlyTheNewest) {
  const fs::path d = temp_dir("keep");
  dl::nn::MnistCnn model({.filters = {4}, .in_channels = 1, .height = 8, .width = 8, .num_classes = 4});
  dl::train::TrainingOptions o = tiny_options(d);
  o.max_epochs = 4;
  o.keep_checkpoints = 2;
  dl::train::Trainer t(model, o);
  t.fit(tiny_set(32));
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(d)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"checkpoint_epoch3.dlck", "checkpoint_epoch4.dlck"}));
  fs::remove_all(d);
}

}  // namespace
