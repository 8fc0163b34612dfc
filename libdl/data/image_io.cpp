// PNG (libspng) and JPEG (libjpeg-turbo) reading with the checks of Note [image decoders], and PNG
// writing.
#include "dl/data/image_io.h"

#include <spng.h>
#include <zlib.h>

#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <memory>

// jpeglib.h needs FILE declared before it.
#include <jpeglib.h>

#include "dl/core/error.h"
#include "dl/core/file_io.h"

namespace dl::data {

namespace {

uint32_t be32(const uint8_t* p) {
  return uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | uint32_t(p[3]);
}

bool is_png(const std::string& b) { return b.size() >= 8 && std::memcmp(b.data(), "\x89PNG\r\n\x1a\n", 8) == 0; }
bool is_jpeg(const std::string& b) { return b.size() >= 3 && std::memcmp(b.data(), "\xff\xd8\xff", 3) == 0; }

std::string read_image_file(const std::string& path, const ImageLimits& limits) {
  return read_file(path, "image file", limits.max_file_bytes);
}

[[noreturn]] void not_an_image(const std::string& path, const std::string& bytes, const char* expected) {
  DL_THROW("cannot read image '", path, "': expected ", expected, ", got ",
           describe_file_signature(bytes.data(), bytes.size()), " (by its first bytes)");
}

void check_size(const std::string& path, int64_t h, int64_t w, const ImageLimits& limits) {
  DL_CHECK(h > 0 && w > 0, "image '", path, "' has size ", h, " x ", w, "; expected at least 1 x 1");
  DL_CHECK(h <= limits.max_side && w <= limits.max_side && h * w <= limits.max_pixels, "image '", path, "' is ", h,
           " x ", w, " pixels; at most ", limits.max_side, " per side and ", limits.max_pixels, " in all are read");
}

// ---------------------------------------------------------------------------------------------
// PNG

struct PngLayout {
  uint32_t width = 0, height = 0;
  uint8_t bit_depth = 0, color_type = 0, interlace = 0;
  uint64_t idat_bytes = 0;
};

int samples_per_pixel(int color_type) {
  switch (color_type) {
    case 0:
      return 1;
    case 2:
      return 3;
    case 3:
      return 1;
    case 4:
      return 2;
    case 6:
      return 4;
  }
  return 0;
}

// Walks the chunks: signature, lengths, CRCs, IHDR first, IDAT present and consecutive, IEND last and
// at the end of the file.
PngLayout check_png_structure(const std::string& path, const std::string& bytes) {
  const auto* p = reinterpret_cast<const uint8_t*>(bytes.data());
  const size_t n = bytes.size();
  PngLayout out;
  size_t pos = 8;
  int index = 0;
  bool seen_iend = false, in_idat = false, idat_done = false;
  while (pos < n) {
    DL_CHECK(n - pos >= 12, "corrupt PNG '", path, "': truncated chunk header at byte ", pos, " (", n - pos,
             " bytes left, a chunk needs at least 12)");
    const uint32_t len = be32(p + pos);
    DL_CHECK(len <= 0x7fffffffu && len <= n - pos - 12, "corrupt PNG '", path, "': chunk ", index, " at byte ", pos,
             " declares ", len, " bytes of data, only ", n - pos - 12, " remain");
    char type[5] = {};
    std::memcpy(type, p + pos + 4, 4);
    for (int i = 0; i < 4; ++i) {
      const char c = type[i];
      DL_CHECK((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'), "corrupt PNG '", path, "': chunk ", index, " at byte ",
               pos, " has an invalid type");
    }
    const uint32_t stored = be32(p + pos + 8 + len);
    const auto actual = static_cast<uint32_t>(crc32_z(crc32(0L, Z_NULL, 0), p + pos + 4, len + 4));
    DL_CHECK(stored == actual, "corrupt PNG '", path, "': chunk ", type, " at byte ", pos,
             " fails its CRC-32 check (stored ", stored, ", computed ", actual, ")");
    const std::string t = type;
    if (index == 0) {
      DL_CHECK(t == "IHDR" && len == 13, "corrupt PNG '", path, "': the first chunk must be a 13-byte IHDR, got ", t,
               " of ", len, " bytes");
      const uint8_t* d = p + pos + 8;
      out.width = be32(d);
      out.height = be32(d + 4);
      out.bit_depth = d[8];
      out.color_type = d[9];
      out.interlace = d[12];
    } else {
      DL_CHECK(t != "IHDR", "corrupt PNG '", path, "': a second IHDR chunk at byte ", pos);
    }
    if (t == "IDAT") {
      DL_CHECK(!idat_done, "corrupt PNG '", path, "': IDAT chunks are not consecutive (another at byte ", pos, ")");
      in_idat = true;
      out.idat_bytes += len;
    } else if (in_idat) {
      in_idat = false;
      idat_done = true;
    }
    pos += 12 + static_cast<size_t>(len);
    ++index;
    if (t == "IEND") {
      DL_CHECK(len == 0, "corrupt PNG '", path, "': IEND chunk with ", len, " bytes of data");
      seen_iend = true;
      DL_CHECK(pos == n, "corrupt PNG '", path, "': ", n - pos, " bytes after the IEND chunk");
      break;
    }
  }
  DL_CHECK(index > 0, "corrupt PNG '", path, "': no chunk after the signature");
  DL_CHECK(seen_iend, "corrupt PNG '", path, "': the file ends without an IEND chunk (truncated)");
  DL_CHECK(out.idat_bytes > 0, "corrupt PNG '", path, "': no image data (IDAT chunk)");
  return out;
}

struct SpngContext {
  spng_ctx* ctx = nullptr;
  explicit SpngContext(int flags) : ctx(spng_ctx_new(flags)) {
    DL_CHECK(ctx, "cannot create a libspng context (out of memory)");
  }
  ~SpngContext() { spng_ctx_free(ctx); }
};

void spng_ok(int err, const std::string& path, const char* what) {
  DL_CHECK(err == 0, "corrupt PNG '", path, "': ", spng_strerror(err), " (libspng, while ", what, ")");
}

// The structure checked, the dimensions bounded, and a decoder ready to decode.
struct OpenPng {
  std::string bytes;
  PngLayout layout;
  SpngContext spng{0};
};

void open_png(OpenPng& png, const std::string& path, const ImageLimits& limits) {
  png.bytes = read_image_file(path, limits);
  if (!is_png(png.bytes)) not_an_image(path, png.bytes, "a PNG image");
  png.layout = check_png_structure(path, png.bytes);
  const PngLayout& l = png.layout;
  check_size(path, l.height, l.width, limits);
  const int spp = samples_per_pixel(l.color_type);
  DL_CHECK(spp > 0, "corrupt PNG '", path, "': colour type ", int(l.color_type), " is not one of 0, 2, 3, 4, 6");
  // What the image data expands to, before filtering; deflate cannot expand by more than 1032:1.
  const uint64_t row = (static_cast<uint64_t>(l.width) * spp * l.bit_depth + 7) / 8 + 1;
  const uint64_t raw = row * l.height;
  DL_CHECK(raw <= l.idat_bytes * 1032 + 65536, "corrupt PNG '", path, "': ", l.idat_bytes,
           " bytes of compressed image data cannot hold a ", l.height, " x ", l.width, " image");
  spng_ctx* ctx = png.spng.ctx;
  spng_ok(spng_set_crc_action(ctx, SPNG_CRC_ERROR, SPNG_CRC_ERROR), path, "setting up");
  spng_ok(spng_set_image_limits(ctx, static_cast<uint32_t>(limits.max_side), static_cast<uint32_t>(limits.max_side)),
          path, "setting up");
  spng_ok(spng_set_chunk_limits(ctx, png.bytes.size(), png.bytes.size()), path, "setting up");
  spng_ok(spng_set_png_buffer(ctx, png.bytes.data(), png.bytes.size()), path, "setting up");
  spng_ihdr ihdr{};
  spng_ok(spng_get_ihdr(ctx, &ihdr), path, "reading the header");
}

// ---------------------------------------------------------------------------------------------
// JPEG (libjpeg-turbo). The setjmp frame holds no C++ object with a destructor.

struct JpegState {
  jpeg_decompress_struct cinfo;
  jpeg_error_mgr err;
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
};

void jpeg_fail(j_common_ptr c) {
  auto* s = static_cast<JpegState*>(c->client_data);
  (*c->err->format_message)(c, s->message);
  std::longjmp(s->jump, 1);
}

// Level -1 is a warning about corrupt data ("premature end of data", "extraneous bytes"): an error here.
void jpeg_message(j_common_ptr c, int level) {
  if (level < 0) jpeg_fail(c);
}

// Reads the header (out == nullptr) or decodes into out (height x width x 3). 0 on success, else 1
// with the message in s->message.
int jpeg_run(JpegState* s, const unsigned char* data, size_t n, unsigned char* out, int64_t* height, int64_t* width) {
  s->cinfo.err = jpeg_std_error(&s->err);
  s->err.error_exit = jpeg_fail;
  s->err.emit_message = jpeg_message;
  s->cinfo.client_data = s;
  s->message[0] = '\0';
  if (setjmp(s->jump)) {
    jpeg_destroy_decompress(&s->cinfo);
    return 1;
  }
  jpeg_create_decompress(&s->cinfo);
  jpeg_mem_src(&s->cinfo, data, static_cast<unsigned long>(n));
  jpeg_read_header(&s->cinfo, TRUE);
  if (!out) {
    *height = s->cinfo.image_height;
    *width = s->cinfo.image_width;
    jpeg_destroy_decompress(&s->cinfo);
    return 0;
  }
  if (static_cast<int64_t>(s->cinfo.image_height) != *height || static_cast<int64_t>(s->cinfo.image_width) != *width) {
    std::snprintf(s->message, sizeof s->message, "the header changed between two reads");
    jpeg_destroy_decompress(&s->cinfo);
    return 1;
  }
  // A progressive JPEG keeps every coefficient of the image (about 2 bytes a sample): allow that and
  // some, never more (without a backing store, libjpeg refuses past this with an error).
  s->cinfo.mem->max_memory_to_use = static_cast<long>(*height * *width * 3 * 4 + (64 << 20));
  s->cinfo.out_color_space = JCS_RGB;
  jpeg_start_decompress(&s->cinfo);
  if (s->cinfo.output_components != 3 || s->cinfo.output_width != s->cinfo.image_width ||
      s->cinfo.output_height != s->cinfo.image_height) {
    std::snprintf(s->message, sizeof s->message, "unexpected output layout");
    jpeg_destroy_decompress(&s->cinfo);
    return 1;
  }
  const size_t stride = static_cast<size_t>(*width) * 3;
  while (s->cinfo.output_scanline < s->cinfo.output_height) {
    JSAMPROW row = out + static_cast<size_t>(s->cinfo.output_scanline) * stride;
    jpeg_read_scanlines(&s->cinfo, &row, 1);
  }
  jpeg_finish_decompress(&s->cinfo);
  jpeg_destroy_decompress(&s->cinfo);
  return 0;
}

ImageInfo jpeg_info(const std::string& path, const std::string& bytes, const ImageLimits& limits) {
  auto state = std::make_unique<JpegState>();
  ImageInfo info;
  info.format = "JPEG";
  DL_CHECK(jpeg_run(state.get(), reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(), nullptr,
                    &info.height, &info.width) == 0,
           "corrupt JPEG '", path, "': ", state->message, " (libjpeg)");
  check_size(path, info.height, info.width, limits);
  return info;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
ImageInfo read_image_info(const std::string& path, const ImageLimits& limits) {
  const std::string bytes = read_image_file(path, limits);
  if (is_jpeg(bytes)) return jpeg_info(path, bytes, limits);
  if (!is_png(bytes)) not_an_image(path, bytes, "a PNG or JPEG image");
  const PngLayout l = check_png_structure(path, bytes);
  check_size(path, l.height, l.width, limits);
  return {static_cast<int64_t>(l.height), static_cast<int64_t>(l.width), "PNG"};
}

Image read_rgb_image(const std::string& path, const ImageLimits& limits) {
  Image img;
  img.channels = 3;
  {
    // JPEG first: its bytes are decoded straight from the file's buffer.
    const std::string bytes = read_image_file(path, limits);
    if (is_jpeg(bytes)) {
      const ImageInfo info = jpeg_info(path, bytes, limits);
      img.height = info.height;
      img.width = info.width;
      img.pixels.resize(static_cast<size_t>(img.height * img.width * 3));
      auto state = std::make_unique<JpegState>();
      DL_CHECK(jpeg_run(state.get(), reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(),
                        img.pixels.data(), &img.height, &img.width) == 0,
               "corrupt JPEG '", path, "': ", state->message, " (libjpeg)");
      return img;
    }
    if (!is_png(bytes)) not_an_image(path, bytes, "a PNG or JPEG image");
  }
  OpenPng png;
  open_png(png, path, limits);
  img.height = png.layout.height;
  img.width = png.layout.width;
  size_t size = 0;
  spng_ok(spng_decoded_image_size(png.spng.ctx, SPNG_FMT_RGB8, &size), path, "sizing the image");
  DL_CHECK(size == static_cast<size_t>(img.height * img.width * 3), "PNG '", path, "': unexpected decoded size ", size);
  img.pixels.resize(size);
  spng_ok(spng_decode_image(png.spng.ctx, img.pixels.data(), size, SPNG_FMT_RGB8, 0), path, "decoding the image");
  return img;
}

PngSamples read_png_samples(const std::string& path, const ImageLimits& limits) {
  OpenPng png;
  open_png(png, path, limits);
  const PngLayout& l = png.layout;
  PngSamples out;
  out.height = l.height;
  out.width = l.width;
  out.bit_depth = l.bit_depth;
  out.color_type = l.color_type;
  out.channels = samples_per_pixel(l.color_type);
  if (l.color_type == 3) {
    spng_plte plte{};
    spng_ok(spng_get_plte(png.spng.ctx, &plte), path, "reading the palette");
    for (uint32_t i = 0; i < plte.n_entries; ++i)
      out.palette.insert(out.palette.end(), {plte.entries[i].red, plte.entries[i].green, plte.entries[i].blue});
  }
  size_t size = 0;
  spng_ok(spng_decoded_image_size(png.spng.ctx, SPNG_FMT_RAW, &size), path, "sizing the image");
  const uint64_t bits_per_row = static_cast<uint64_t>(l.width) * out.channels * l.bit_depth;
  const size_t row_bytes = static_cast<size_t>((bits_per_row + 7) / 8);
  DL_CHECK(size == row_bytes * l.height, "PNG '", path, "': unexpected decoded size ", size);
  HostVector<uint8_t> raw(size);
  spng_ok(spng_decode_image(png.spng.ctx, raw.data(), size, SPNG_FMT_RAW, 0), path, "decoding the image");
  if (l.bit_depth >= 8) {
    out.samples = std::move(raw);
    return out;
  }
  // Unpack 1/2/4-bit samples, most significant bits first, without scaling.
  const int64_t per_row = static_cast<int64_t>(l.width) * out.channels;
  out.samples.resize(static_cast<size_t>(per_row * l.height));
  const int depth = l.bit_depth, per_byte = 8 / depth, mask = (1 << depth) - 1;
  for (int64_t y = 0; y < out.height; ++y) {
    const uint8_t* src = raw.data() + y * row_bytes;
    uint8_t* dst = out.samples.data() + y * per_row;
    for (int64_t i = 0; i < per_row; ++i)
      dst[i] = static_cast<uint8_t>(src[i / per_byte] >> (8 - depth * (1 + i % per_byte)) & mask);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
std::string encode_png(const uint8_t* pixels, int64_t height, int64_t width, int channels) {
  DL_CHECK(channels == 1 || channels == 3, "encode_png: expected 1 or 3 channels, got ", channels);
  DL_CHECK(height > 0 && width > 0 && height <= 0x7fffffff && width <= 0x7fffffff,
           "encode_png: expected a size from 1 x 1 to 2^31-1 per side, got ", height, " x ", width);
  SpngContext enc(SPNG_CTX_ENCODER);
  spng_ok(spng_set_option(enc.ctx, SPNG_ENCODE_TO_BUFFER, 1), "<encoder>", "setting up");
  spng_ihdr ihdr{};
  ihdr.width = static_cast<uint32_t>(width);
  ihdr.height = static_cast<uint32_t>(height);
  ihdr.bit_depth = 8;
  ihdr.color_type = channels == 1 ? SPNG_COLOR_TYPE_GRAYSCALE : SPNG_COLOR_TYPE_TRUECOLOR;
  spng_ok(spng_set_ihdr(enc.ctx, &ihdr), "<encoder>", "setting the header");
  const size_t size = static_cast<size_t>(height * width * channels);
  const int err = spng_encode_image(enc.ctx, pixels, size, SPNG_FMT_PNG, SPNG_ENCODE_FINALIZE);
  DL_CHECK(err == 0, "encode_png: ", spng_strerror(err));
  size_t len = 0;
  int get_err = 0;
  void* buf = spng_get_png_buffer(enc.ctx, &len, &get_err);
  DL_CHECK(buf && get_err == 0, "encode_png: ", spng_strerror(get_err));
  std::string out(static_cast<const char*>(buf), len);
  std::free(buf);
  return out;
}

void write_png(const std::string& path, const uint8_t* pixels, int64_t height, int64_t width, int channels) {
  write_file_atomically(path, encode_png(pixels, height, width, channels));
}

}  // namespace dl::data
