// Checked reading of regular files and atomic, checked writing (see dl/core/file_io.h).
#include "dl/core/file_io.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <set>

#include "dl/core/error.h"

namespace dl {

namespace {

const char* file_type_name(mode_t mode) {
  if (S_ISREG(mode)) return "a regular file";
  if (S_ISDIR(mode)) return "a folder";
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISSOCK(mode)) return "a socket";
  if (S_ISLNK(mode)) return "a symbolic link";
  return "not a regular file";
}

std::string errno_text(int err) { return std::string(std::strerror(err)) + " (errno " + std::to_string(err) + ")"; }

// Temporaries are "<name>.dltmp.<pid>.<n>" beside the target.
constexpr const char* kTempTag = ".dltmp.";

std::string temp_name_for(const std::string& path) {
  static std::atomic<uint64_t> counter{0};
  return path + kTempTag + std::to_string(::getpid()) + "." + std::to_string(counter.fetch_add(1));
}

// The pid of a temporary's name, or -1 when the name is not one of ours.
long temp_owner(const std::string& name) {
  const size_t tag = name.rfind(kTempTag);
  if (tag == std::string::npos || tag == 0) return -1;
  const std::string rest = name.substr(tag + std::strlen(kTempTag));
  const size_t dot = rest.find('.');
  if (dot == std::string::npos || dot == 0 || dot > 9) return -1;
  long pid = 0;
  for (size_t i = 0; i < dot; ++i) {
    if (rest[i] < '0' || rest[i] > '9') return -1;
    pid = pid * 10 + (rest[i] - '0');
  }
  for (size_t i = dot + 1; i < rest.size(); ++i)
    if (rest[i] < '0' || rest[i] > '9') return -1;
  return dot + 1 < rest.size() ? pid : -1;
}

std::string folder_of(const std::string& path) {
  const std::filesystem::path p(path);
  return p.has_parent_path() ? p.parent_path().string() : std::string(".");
}

void fsync_folder(const std::string& folder) {
  const int fd = ::open(folder.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;  // the rename is done; a folder we cannot open for fsync is not an error
  ::fsync(fd);
  ::close(fd);
}

void write_all(int fd, const char* p, size_t n, const std::string& path, const std::string& shown) {
  size_t done = 0;
  while (done < n) {
    const ssize_t w = ::write(fd, p + done, n - done);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      const int err = w < 0 ? errno : ENOSPC;
      DL_THROW(path, ": write failed after ", done, " of ", n, " bytes", shown, ": ", errno_text(err));
    }
    done += static_cast<size_t>(w);
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------------
FileReader::FileReader(const std::string& path, std::string what, uint64_t max_bytes)
    : path_(path), what_(std::move(what)) {
  // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer forever.
  fd_ = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  DL_CHECK(fd_ >= 0, "cannot open ", what_, " '", path, "': ", errno_text(errno));
  struct stat st {};
  if (::fstat(fd_, &st) != 0) {
    const int err = errno;
    ::close(fd_);
    fd_ = -1;
    DL_THROW("cannot read ", what_, " '", path, "': ", errno_text(err));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd_);
    fd_ = -1;
    DL_THROW("cannot read ", what_, " '", path, "': expected a regular file, got ", file_type_name(st.st_mode));
  }
  ::fcntl(fd_, F_SETFL, ::fcntl(fd_, F_GETFL) & ~O_NONBLOCK);
  size_ = static_cast<uint64_t>(st.st_size);
  if (max_bytes && size_ > max_bytes) {
    ::close(fd_);
    fd_ = -1;
    DL_THROW(what_, " '", path, "' is ", size_, " bytes; at most ", max_bytes, " bytes are read as a ", what_);
  }
}

FileReader::~FileReader() {
  if (fd_ >= 0) ::close(fd_);
}

size_t FileReader::read_some(void* dst, size_t n) {
  size_t done = 0;
  while (done < n) {
    const ssize_t r = ::read(fd_, static_cast<char*>(dst) + done, n - done);
    if (r < 0 && errno == EINTR) continue;
    DL_CHECK(r >= 0, "error reading ", what_, " '", path_, "' at byte ", offset_ + done, ": ", errno_text(errno));
    if (r == 0) break;
    done += static_cast<size_t>(r);
  }
  offset_ += done;
  return done;
}

void FileReader::need(uint64_t n, const char* field) const {
  DL_CHECK(n <= remaining(), "truncated or corrupt ", what_, " '", path_, "': ", field, " needs ", n,
           " bytes at offset ", offset_, ", only ", remaining(), " remain of ", size_);
}

void FileReader::read_exact(void* dst, size_t n, const char* field) {
  need(n, field);
  const uint64_t at = offset_;
  const size_t got = read_some(dst, n);
  DL_CHECK(got == n, "truncated ", what_, " '", path_, "': ", field, " needs ", n, " bytes at offset ", at,
           ", the file ended after ", got, " (it changed while being read)");
}

std::string FileReader::read_rest() {
  std::string out(static_cast<size_t>(remaining()), '\0');
  read_exact(out.data(), out.size(), "the file's content");
  return out;
}

std::string read_file(const std::string& path, const std::string& what, uint64_t max_bytes) {
  FileReader r(path, what, max_bytes);
  return r.read_rest();
}

// ---------------------------------------------------------------------------------------------
void check_output_path(const std::string& path, const std::string& what) {
  DL_CHECK(!path.empty(), "an empty path was given for the ", what);
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    DL_CHECK(errno == ENOENT, "cannot write the ", what, " '", path, "': ", errno_text(errno));
    const std::string folder = folder_of(path);
    struct stat fs {};
    DL_CHECK(::stat(folder.c_str(), &fs) == 0 && S_ISDIR(fs.st_mode), "cannot write the ", what, " '", path,
             "': its folder '", folder, "' does not exist");
    return;
  }
  DL_CHECK(S_ISREG(st.st_mode), "refusing to write the ", what, " over '", path, "': expected a regular file, got ",
           file_type_name(st.st_mode));
}

void check_output_paths(std::initializer_list<std::pair<std::string, std::string>> outputs) {
  for (const auto& [path, what] : outputs)
    if (!path.empty()) {
      check_output_path(path, what);
      remove_stale_temporaries(folder_of(path));
    }
}

int remove_stale_temporaries(const std::string& folder) {
  DIR* d = ::opendir(folder.empty() ? "." : folder.c_str());
  if (!d) return 0;
  int removed = 0;
  while (const dirent* e = ::readdir(d)) {
    const std::string name = e->d_name;
    const long pid = temp_owner(name);
    if (pid <= 0) continue;
    const bool gone = ::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH;
    if (!gone) continue;
    const std::string full = (std::filesystem::path(folder.empty() ? "." : folder) / name).string();
    struct stat st {};
    if (::lstat(full.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::unlink(full.c_str()) == 0) ++removed;
  }
  ::closedir(d);
  return removed;
}

void write_file_atomically(const std::string& path, std::string_view bytes) {
  // A link is followed: the file it names is replaced, the link kept.
  std::string target = path;
  struct stat lst {};
  if (::lstat(path.c_str(), &lst) == 0 && S_ISLNK(lst.st_mode)) {
    std::error_code ec;
    const auto resolved = std::filesystem::canonical(path, ec);
    DL_CHECK(!ec, "cannot write '", path, "': it is a link that does not resolve: ", ec.message());
    target = resolved.string();
  }
  check_output_path(target, "output");
  const std::string folder = folder_of(target);
  {  // once per folder and process: a writer of many files does not rescan the folder each time
    static std::mutex mu;
    static std::set<std::string> cleaned;
    std::lock_guard<std::mutex> lock(mu);
    if (cleaned.insert(folder).second) remove_stale_temporaries(folder);
  }

  const std::string tmp = temp_name_for(target);
  const std::string shown = " (to the temporary '" + tmp + "')";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
  DL_CHECK(fd >= 0, path, ": cannot create the temporary file '", tmp, "': ", errno_text(errno));
  try {
    write_all(fd, bytes.data(), bytes.size(), path, shown);
    DL_CHECK(::fsync(fd) == 0, path, ": fsync failed", shown, ": ", errno_text(errno));
  } catch (...) {
    ::close(fd);
    ::unlink(tmp.c_str());
    throw;
  }
  if (::close(fd) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    DL_THROW(path, ": close failed", shown, ": ", errno_text(err));
  }
  if (::rename(tmp.c_str(), target.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    DL_THROW(path, ": cannot rename the temporary file '", tmp, "' over it: ", errno_text(err));
  }
  fsync_folder(folder);
}

// ---------------------------------------------------------------------------------------------
CheckedAppendFile::CheckedAppendFile(const std::string& path, bool truncate) : path_(path) {
  check_output_path(path, "log");
  fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC | (truncate ? O_TRUNC : O_APPEND), 0644);
  DL_CHECK(fd_ >= 0, path, ": cannot open for writing: ", errno_text(errno));
}

CheckedAppendFile::~CheckedAppendFile() {
  if (fd_ >= 0) ::close(fd_);
}

CheckedAppendFile::CheckedAppendFile(CheckedAppendFile&& o) noexcept : path_(std::move(o.path_)), fd_(o.fd_) {
  o.fd_ = -1;
}

CheckedAppendFile& CheckedAppendFile::operator=(CheckedAppendFile&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) ::close(fd_);
    path_ = std::move(o.path_);
    fd_ = o.fd_;
    o.fd_ = -1;
  }
  return *this;
}

void CheckedAppendFile::write(std::string_view text) {
  DL_CHECK(fd_ >= 0, path_, ": write to a closed file");
  struct stat st {};
  const off_t before = ::fstat(fd_, &st) == 0 ? st.st_size : -1;
  try {
    write_all(fd_, text.data(), text.size(), path_, "");
  } catch (...) {
    if (before >= 0 && ::ftruncate(fd_, before) != 0) {  // no half record left behind
    }
    throw;
  }
}

void CheckedAppendFile::close() {
  if (fd_ < 0) return;
  const int fd = fd_;
  fd_ = -1;
  const bool synced = ::fsync(fd) == 0;
  const int sync_err = errno;
  const bool closed = ::close(fd) == 0;
  DL_CHECK(synced, path_, ": fsync failed: ", errno_text(sync_err));
  DL_CHECK(closed, path_, ": close failed: ", errno_text(errno));
}

// ---------------------------------------------------------------------------------------------
std::string describe_file_signature(const void* data, size_t n) {
  const auto* p = static_cast<const unsigned char*>(data);
  auto starts = [&](const char* sig, size_t len) { return n >= len && std::memcmp(p, sig, len) == 0; };
  if (n == 0) return "an empty file";
  if (starts("\x89PNG\r\n\x1a\n", 8)) return "a PNG image";
  if (starts("\xff\xd8\xff", 3)) return "a JPEG image";
  if (starts("GIF87a", 6) || starts("GIF89a", 6)) return "a GIF image";
  if (starts("BM", 2)) return "a BMP image";
  if (starts("8BPS", 4)) return "a Photoshop (PSD) image";
  if (starts("#?RADIANCE", 10) || starts("#?RGBE", 6)) return "a Radiance HDR image";
  if (starts("\x53\x80\xf6\x34", 4)) return "a Softimage PIC image";
  if (starts("II*\0", 4) || starts("MM\0*", 4)) return "a TIFF image";
  if (starts("RIFF", 4) && n >= 12 && std::memcmp(p + 8, "WEBP", 4) == 0) return "a WebP image";
  if (n >= 2 && p[0] == 'P' && p[1] >= '1' && p[1] <= '7') return "a PNM (PPM/PGM/PBM) image";
  if (starts("\x1f\x8b", 2)) return "a gzip stream";
  if (starts("DLTENSR1", 8)) return "a libdl tensor file";
  if (starts("PK\x03\x04", 4)) return "a zip archive (a PyTorch .pt file is one)";
  if (starts("\x80\x02", 2) || starts("\x80\x04", 2)) return "a Python pickle";
  if (n >= 4 && p[0] == 0 && p[1] == 0 && (p[2] == 0x08 || p[2] == 0x09 || (p[2] >= 0x0b && p[2] <= 0x0e)))
    return "an IDX file";
  if (n >= 9 && p[8] == '{') return "a safetensors file";
  // Truevision TGA has no magic: its header's image type byte is all there is.
  if (n >= 18 && p[1] <= 1 && (p[2] == 1 || p[2] == 2 || p[2] == 3 || p[2] == 9 || p[2] == 10 || p[2] == 11))
    return "possibly a TGA image";
  char buf[64];
  std::string hex;
  for (size_t i = 0; i < n && i < 8; ++i) {
    std::snprintf(buf, sizeof buf, "%s%02x", i ? " " : "", p[i]);
    hex += buf;
  }
  return "data starting with " + hex;
}

std::string describe_file(const std::string& path) {
  try {
    FileReader r(path, "file");
    unsigned char head[16];
    const size_t n = r.read_some(head, sizeof head);
    return describe_file_signature(head, n);
  } catch (const Error&) {
    return "an unreadable file";
  }
}

}  // namespace dl
