// fusegrad/io/file.hpp — whole-file reads (gunzipping .gz content when built with zlib), atomic
// whole-file writes, and the bounds-checked little-endian cursor the readers share.
//
// POSIX (open/read/write/fsync/rename). The binary formats are little-endian and their payloads
// are copied as they lie in memory, so the host must be little-endian (every CUDA host is).
#pragma once

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cerrno>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#if defined(FG_HAVE_ZLIB)
#include <zlib.h>
#endif

#include "fusegrad/core/config.hpp"
#include "fusegrad/io/error.hpp"

static_assert(std::endian::native == std::endian::little,
              "fusegrad/io: the file formats are little-endian and need a little-endian host");

namespace fusegrad::inline FG_BACKEND_NS {
namespace io {

namespace detail {
namespace fs = std::filesystem;

inline std::string errno_text(int err) {
  return std::system_category().message(err);
}

// Why open() failed, in words: a missing directory is told apart from a missing file.
inline std::string open_failure(const fs::path& path, int err) {
  if (err == ENOENT) {
    const fs::path parent = path.parent_path();
    std::error_code ec;
    if (!parent.empty() && !fs::exists(parent, ec)) {
      return "cannot open: the directory " + parent.string() + " does not exist";
    }
    return "cannot open: no such file";
  }
  if (err == ENOTDIR) {
    return "cannot open: a component of the path is a file, not a directory";
  }
  return "cannot open: " + errno_text(err);
}

inline std::string byte_count(std::uint64_t n) {
  return std::to_string(n) + (n == 1 ? " byte" : " bytes");
}

#if defined(FG_HAVE_ZLIB)
// Inflates every gzip member of `in`; truncated or corrupt streams are errors.
inline std::vector<std::byte> gunzip(std::string_view who, const fs::path& path,
                                     std::span<const std::byte> in) {
  std::vector<std::byte> out;
  // The last 4 bytes hold the uncompressed size mod 2^32: a size hint, trusted only up to 64x the
  // input (a corrupt trailer must not make us allocate gigabytes; past that, the buffer doubles).
  if (in.size() >= 18) {
    const auto* e = in.data() + in.size() - 4;
    const std::uint64_t isize =
        std::to_integer<std::uint32_t>(e[0]) | std::to_integer<std::uint32_t>(e[1]) << 8 |
        std::to_integer<std::uint32_t>(e[2]) << 16 | std::to_integer<std::uint32_t>(e[3]) << 24;
    out.resize(static_cast<std::size_t>(std::min<std::uint64_t>(isize + 1, in.size() * 64ull)));
  }
  z_stream zs{};
  if (inflateInit2(&zs, 15 + 16) != Z_OK) {  // 15 + 16: gzip wrapper, 32 KiB window
    throw io_error(who, path, "zlib could not start inflating (out of memory?)");
  }
  struct End {
    z_stream* zs;
    ~End() { inflateEnd(zs); }
  } end{&zs};
  std::size_t pos = 0;
  std::size_t produced = 0;
  for (;;) {
    if (produced == out.size()) {
      out.resize(std::max<std::size_t>(out.size() * 2, 1 << 16));
    }
    zs.next_in = reinterpret_cast<Bytef*>(const_cast<std::byte*>(in.data() + pos));
    zs.avail_in = static_cast<uInt>(std::min<std::size_t>(in.size() - pos, UINT_MAX));
    zs.next_out = reinterpret_cast<Bytef*>(out.data() + produced);
    zs.avail_out = static_cast<uInt>(std::min<std::size_t>(out.size() - produced, UINT_MAX));
    const uInt in_before = zs.avail_in;
    const uInt out_before = zs.avail_out;
    const int rc = inflate(&zs, Z_NO_FLUSH);
    pos += in_before - zs.avail_in;
    produced += out_before - zs.avail_out;
    if (rc == Z_STREAM_END) {
      if (pos == in.size()) {
        break;
      }
      if (in.size() - pos >= 2 && in[pos] == std::byte{0x1f} && in[pos + 1] == std::byte{0x8b}) {
        inflateReset(&zs);  // another gzip member follows (as `cat a.gz b.gz` makes)
        continue;
      }
      throw io_error(who, path,
                     "corrupt gzip file: " + byte_count(in.size() - pos) +
                         " of trailing data after the compressed stream");
    }
    if (rc == Z_DATA_ERROR || rc == Z_NEED_DICT || rc == Z_STREAM_ERROR) {
      throw io_error(who, path,
                     std::string("corrupt gzip data (zlib: ") +
                         (zs.msg ? zs.msg : "invalid stream") + ") after " + byte_count(produced) +
                         " of output");
    }
    if (rc == Z_MEM_ERROR) {
      throw io_error(who, path, "zlib ran out of memory while decompressing");
    }
    if (pos == in.size() && zs.avail_out > 0) {  // Z_OK or Z_BUF_ERROR, wanting input that is gone
      throw io_error(who, path,
                     "truncated gzip file: the compressed stream ends early (after " +
                         byte_count(in.size()) + " of input, " + byte_count(produced) +
                         " of output); the file was probably cut short");
    }
  }
  out.resize(produced);
  return out;
}
#endif
}  // namespace detail

/// Reads the whole file at `path`. With `gunzip` set, content starting with the gzip magic
/// (1f 8b) is decompressed (needs zlib: FG_HAVE_ZLIB) and `*gunzipped`, when given, says whether
/// it was; `who` starts every error message.
/// Throws io_error for a missing directory or file, a directory, a read error, a truncated or
/// corrupt gzip stream, or gzip content in a build without zlib.
/// Example: `std::vector<std::byte> raw = io::read_file("t10k-labels-idx1-ubyte.gz", true);`
inline std::vector<std::byte> read_file(const std::filesystem::path& path, bool gunzip = false,
                                        std::string_view who = "read_file",
                                        bool* gunzipped = nullptr) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    throw io_error(who, path, detail::open_failure(path, errno));
  }
  struct Close {
    int fd;
    ~Close() { ::close(fd); }
  } close_guard{fd};
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    throw io_error(who, path, "cannot stat: " + detail::errno_text(errno));
  }
  if (S_ISDIR(st.st_mode)) {
    throw io_error(who, path, "is a directory, not a file");
  }
  std::vector<std::byte> bytes(S_ISREG(st.st_mode) ? static_cast<std::size_t>(st.st_size) : 0);
  std::size_t got = 0;
  for (;;) {
    if (got == bytes.size()) {
      bytes.resize(std::max<std::size_t>(bytes.size() * 2, 1 << 16));  // grown, or not regular
    }
    const ssize_t n = ::read(fd, bytes.data() + got, bytes.size() - got);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0) {
      throw io_error(
          who, path,
          "read error after " + detail::byte_count(got) + ": " + detail::errno_text(errno));
    }
    if (n == 0) {
      break;
    }
    got += static_cast<std::size_t>(n);
  }
  bytes.resize(got);
  const bool gzipped = got >= 2 && bytes[0] == std::byte{0x1f} && bytes[1] == std::byte{0x8b};
  if (gunzipped != nullptr) {
    *gunzipped = gunzip && gzipped;
  }
  if (!gunzip || !gzipped) {
    return bytes;
  }
#if defined(FG_HAVE_ZLIB)
  return detail::gunzip(who, path, bytes);
#else
  throw io_error(who, path,
                 "the file is gzip-compressed, but fusegrad was built without zlib: install zlib "
                 "(Debian/Ubuntu: apt-get install zlib1g-dev) and reconfigure so that "
                 "FG_HAVE_ZLIB is defined and zlib is linked, or gunzip the file first");
#endif
}

/// Writes a file atomically: bytes go to a temporary file beside `target`; commit() flushes,
/// fsyncs, closes it and renames it over `target`, then fsyncs the directory. A failure at any
/// step, or destruction without commit(), removes the temporary file and leaves an existing
/// `target` byte-for-byte unchanged. Every failure throws io_error naming `target`. A crash
/// (kill -9, power loss) mid-write can leave the temporary `<target>.tmp.<pid>.<n>` behind, never
/// a partial `target`.
/// Example: `io::AtomicFile f("save_npy", "w.npy"); f.write(header); f.write(data); f.commit();`
class AtomicFile {
 public:
  AtomicFile(std::string_view who, std::filesystem::path target)
      : who_(who), target_(std::move(target)) {
    std::error_code ec;
    if (std::filesystem::is_directory(target_, ec)) {
      throw io_error(who_, target_, "cannot write: the path is a directory");
    }
    static std::atomic<unsigned> counter{0};
    for (int attempt = 0; fd_ < 0; ++attempt) {  // O_EXCL: a stale temp file is never reused
      temp_ = target_;
      temp_ += ".tmp." + std::to_string(::getpid()) + "." + std::to_string(counter++);
      fd_ = ::open(temp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
      if (fd_ < 0 && (errno != EEXIST || attempt == 100)) {
        throw io_error(who_, target_,
                       "cannot create the temporary file " + temp_.string() + ": " +
                           detail::open_failure(temp_, errno));
      }
    }
    buffer_.reserve(buffer_size);
  }
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;
  ~AtomicFile() {
    if (fd_ >= 0) {
      ::close(fd_);
    }
    if (!committed_) {
      ::unlink(temp_.c_str());
    }
  }

  /// Appends `bytes` (buffered).
  void write(std::span<const std::byte> bytes) {
    if (buffer_.size() + bytes.size() > buffer_size) {
      flush();
    }
    if (bytes.size() >= buffer_size) {
      write_through(bytes);
    } else {
      buffer_.insert(buffer_.end(), bytes.begin(), bytes.end());
    }
  }

  /// Makes the file durable and puts it in place of `target`.
  void commit() {
    flush();
    if (::fsync(fd_) != 0) {
      fail("fsync of the temporary file failed", errno);
    }
    const int fd = std::exchange(fd_, -1);
    if (::close(fd) != 0) {
      fail("closing the temporary file failed", errno);
    }
    if (std::rename(temp_.c_str(), target_.c_str()) != 0) {
      fail("renaming the temporary file over the target failed", errno);
    }
    committed_ = true;
    // Best effort: make the rename itself durable (some file systems refuse to fsync a directory).
    const std::filesystem::path dir = target_.has_parent_path() ? target_.parent_path() : ".";
    const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
      ::fsync(dfd);
      ::close(dfd);
    }
  }

  const std::filesystem::path& temp_path() const { return temp_; }

 private:
  static constexpr std::size_t buffer_size = std::size_t(1) << 20;

  [[noreturn]] void fail(const std::string& what, int err) const {
    throw io_error(who_, target_,
                   what + " (" + temp_.string() + "): " + detail::errno_text(err) +
                       "; nothing was written to " + target_.string());
  }
  void flush() {
    write_through(buffer_);
    buffer_.clear();
  }
  void write_through(std::span<const std::byte> bytes) {
    while (!bytes.empty()) {
      const ssize_t n = ::write(fd_, bytes.data(), bytes.size());
      if (n < 0 && errno == EINTR) {
        continue;
      }
      if (n <= 0) {
        fail("writing the temporary file failed after " + detail::byte_count(written_), errno);
      }
      bytes = bytes.subspan(static_cast<std::size_t>(n));
      written_ += static_cast<std::uint64_t>(n);
    }
  }

  std::string who_;
  std::filesystem::path target_;
  std::filesystem::path temp_;
  int fd_ = -1;
  bool committed_ = false;
  std::uint64_t written_ = 0;
  std::vector<std::byte> buffer_;
};

namespace detail {
// Bounds-checked cursor over a file's bytes: every read says what it wanted when the file ends.
struct ByteReader {
  std::span<const std::byte> bytes;
  std::string_view who;
  const std::filesystem::path& path;
  std::size_t pos = 0;

  std::size_t remaining() const { return bytes.size() - pos; }
  std::span<const std::byte> take(std::uint64_t n, std::string_view what) {
    if (n > remaining()) {
      throw io_error(who, path,
                     "truncated: the file ends inside " + std::string(what) + " (at offset " +
                         std::to_string(pos) + ", " + byte_count(n) + " needed, " +
                         byte_count(remaining()) + " left)");
    }
    const auto out = bytes.subspan(pos, static_cast<std::size_t>(n));
    pos += static_cast<std::size_t>(n);
    return out;
  }
  template <class T>
  T le(std::string_view what) {  // a little-endian integer or IEEE value
    T v;
    std::memcpy(&v, take(sizeof(T), what).data(), sizeof(T));
    return v;
  }
};

template <class T>
void append_le(std::vector<std::byte>& out, T v) {
  const auto* p = reinterpret_cast<const std::byte*>(&v);
  out.insert(out.end(), p, p + sizeof(T));
}
inline void append_text(std::vector<std::byte>& out, std::string_view s) {
  const auto* p = reinterpret_cast<const std::byte*>(s.data());
  out.insert(out.end(), p, p + s.size());
}
}  // namespace detail

}  // namespace io
}  // namespace fusegrad::inline FG_BACKEND_NS
