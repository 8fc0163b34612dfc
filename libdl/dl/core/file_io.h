// Files from strangers, read safely; files of ours, written atomically. Every reader and writer of
// libdl (tensor files, safetensors, IDX, images, reports, logs) goes through these, so that:
//   - only regular files are read: a FIFO, a device or a folder given as input is refused at once,
//     never blocked on or read forever;
//   - every read is bounded by the file's size (known before anything is allocated) and names the
//     file, the offset and what was being read when it falls short;
//   - every write is checked, close and fsync included, errors naming the file and errno;
//   - outputs replace only regular files, through a temporary in the same folder renamed over the
//     target (a crash never leaves a partial file under the final name), and temporaries left by a
//     killed writer are removed by the next write into that folder.
#pragma once
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>

namespace dl {

// A regular file open for reading. `what` ("IDX file", "safetensors file", ...) names the kind of
// file in every message.
class FileReader {
 public:
  // Throws dl::Error when the file is missing, unreadable or not a regular file, or larger than
  // max_bytes (0: no bound).
  FileReader(const std::string& path, std::string what, uint64_t max_bytes = 0);
  ~FileReader();
  FileReader(const FileReader&) = delete;
  FileReader& operator=(const FileReader&) = delete;

  const std::string& path() const { return path_; }
  uint64_t size() const { return size_; }
  uint64_t offset() const { return offset_; }
  uint64_t remaining() const { return size_ - offset_; }

  // Reads exactly n bytes at the current offset; throws naming `field` when the file ends first.
  void read_exact(void* dst, size_t n, const char* field);
  // Reads up to n bytes (fewer only at the end of the file); returns the count.
  size_t read_some(void* dst, size_t n);
  // Throws naming `field` unless n more bytes remain.
  void need(uint64_t n, const char* field) const;
  // The whole rest of the file.
  std::string read_rest();

 private:
  std::string path_, what_;
  int fd_ = -1;
  uint64_t size_ = 0, offset_ = 0;
};

// The whole of a regular file (at most max_bytes; 0: no bound).
std::string read_file(const std::string& path, const std::string& what, uint64_t max_bytes = 0);

// Writes `bytes` to `path` atomically (temporary + fsync + rename + fsync of the folder). Refuses a
// target that exists and is not a regular file (a device, FIFO or folder), naming what it is.
// Temporaries of writers that were killed (their process is gone) are removed from the folder first
// (once per folder and process).
void write_file_atomically(const std::string& path, std::string_view bytes);

// Throws unless `path` may be written as an output: it does not exist, or is a regular file (or a
// link to one). Programs call it for every output before the work that produces them.
void check_output_path(const std::string& path, const std::string& what);

// check_output_path for each (path, what) whose path is not empty; also removes the temporaries that
// killed writers left beside them (a new run leaves no debris of an old one).
void check_output_paths(std::initializer_list<std::pair<std::string, std::string>> outputs);

// Removes the temporaries of write_file_atomically left in `folder` by processes that no longer run.
// Returns how many were removed.
int remove_stale_temporaries(const std::string& folder);

// An output written as it goes (a training log): appended to record by record and fsynced on close;
// every write checked. A record that cannot be written whole (a full disk) is cut off again, so the
// file never ends in half a record. Throws dl::Error naming the file and errno on any failure.
class CheckedAppendFile {
 public:
  CheckedAppendFile() = default;
  // truncate: start the file afresh; else append to it.
  CheckedAppendFile(const std::string& path, bool truncate);
  ~CheckedAppendFile();
  CheckedAppendFile(CheckedAppendFile&& o) noexcept;
  CheckedAppendFile& operator=(CheckedAppendFile&& o) noexcept;

  bool is_open() const { return fd_ >= 0; }
  void write(std::string_view text);
  // fsync and close, checked. The destructor closes too, but cannot report.
  void close();

 private:
  std::string path_;
  int fd_ = -1;
};

// What a file's first bytes say it is: "a PNG image", "a JPEG image", "a gzip stream", "a libdl tensor
// file", "a safetensors file" (by its header's shape), "an IDX file", ... or "data starting with
// 12 34 56 78" when nothing is recognised. For messages that say what was expected and what came.
std::string describe_file_signature(const void* bytes, size_t n);
// The same for a file on disk (reads its first bytes; "an unreadable file" when it cannot).
std::string describe_file(const std::string& path);

}  // namespace dl
