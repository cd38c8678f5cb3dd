// fusegrad/io/idx.hpp — the IDX format of MNIST and Fashion-MNIST, raw or gzip-compressed.
//
// Layout (all big-endian): bytes 0-1 are 0x00 0x00; byte 2 the element type (0x08 uint8,
// 0x09 int8, 0x0B int16, 0x0C int32, 0x0D float32, 0x0E float64); byte 3 the number of
// dimensions n; then n uint32 extents; then the elements in C order, nothing after them.
// A file whose content starts with the gzip magic is decompressed first (needs FG_HAVE_ZLIB).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "fusegrad/io/file.hpp"
#include "fusegrad/memory/tensor.hpp"

namespace fusegrad::inline FG_BACKEND_NS {
namespace io {

/// An IDX file's contents: its extents, its element type code (0x08 ... 0x0E) and its elements in
/// C order, already converted from the file's big-endian to the host's byte order.
struct IdxData {
  std::vector<index_t> dims;
  int type_code = 0;
  std::vector<std::uint8_t> bytes;
};

namespace detail {
struct IdxType {
  int code;
  const char* name;
  int size;
};
inline const IdxType* idx_type(int code) {
  static constexpr IdxType types[] = {{0x08, "uint8", 1},   {0x09, "int8", 1},
                                      {0x0B, "int16", 2},   {0x0C, "int32", 4},
                                      {0x0D, "float32", 4}, {0x0E, "float64", 8}};
  for (const IdxType& t : types) {
    if (t.code == code) {
      return &t;
    }
  }
  return nullptr;
}
inline std::string hex_byte(int b) {
  const char digits[] = "0123456789abcdef";
  return std::string("0x") + digits[(b >> 4) & 15] + digits[b & 15];
}
inline std::string dims_text(const std::vector<index_t>& dims) {  // "60000 x 28 x 28"
  std::string s;
  for (std::size_t i = 0; i < dims.size(); ++i) {
    s += (i ? " x " : "") + std::to_string(dims[i]);
  }
  return s;
}

// A validated IDX file: the extents, the type, and the (still big-endian) data inside `file`.
struct IdxFile {
  std::vector<std::byte> file;
  std::vector<index_t> dims;
  const IdxType* type = nullptr;
  std::size_t data_offset = 0;
  std::span<const std::byte> data() const { return std::span(file).subspan(data_offset); }
  index_t count() const { return static_cast<index_t>(data().size()) / type->size; }
};

inline IdxFile open_idx(std::string_view who, const std::filesystem::path& path) {
  IdxFile f;
  bool gz = false;
  f.file = read_file(path, /*gunzip=*/true, who, &gz);
  const std::string holds = gz ? "the decompressed file holds " : "the file holds ";
  if (f.file.size() < 4) {
    throw io_error(
        who, path,
        "truncated: " + holds + byte_count(f.file.size()) + ", less than the 4-byte IDX magic");
  }
  const auto byte = [&](std::size_t i) { return std::to_integer<int>(f.file[i]); };
  if (byte(0) != 0 || byte(1) != 0) {
    throw io_error(who, path,
                   "not an IDX file (bad magic): it starts with " + hex_byte(byte(0)) + " " +
                       hex_byte(byte(1)) + ", an IDX file with 0x00 0x00");
  }
  f.type = idx_type(byte(2));
  if (f.type == nullptr) {
    throw io_error(who, path,
                   "unknown IDX element type " + hex_byte(byte(2)) +
                       " (known: 0x08 uint8, 0x09 int8, 0x0b int16, 0x0c int32, "
                       "0x0d float32, 0x0e float64)");
  }
  const int ndims = byte(3);
  if (ndims < 1 || ndims > max_rank) {
    throw io_error(who, path,
                   "the header declares " + std::to_string(ndims) +
                       " dimensions; fusegrad reads IDX files of 1 to 6");
  }
  f.data_offset = 4 + 4 * static_cast<std::size_t>(ndims);
  if (f.file.size() < f.data_offset) {
    throw io_error(who, path,
                   "truncated: the header declares " + std::to_string(ndims) + " dimensions (a " +
                       std::to_string(f.data_offset) + "-byte header), but " + holds +
                       byte_count(f.file.size()));
  }
  std::uint64_t bytes = static_cast<std::uint64_t>(f.type->size);
  bool overflow = false;
  for (int i = 0; i < ndims; ++i) {
    const std::size_t at = 4 + 4 * static_cast<std::size_t>(i);
    const std::uint32_t extent = static_cast<std::uint32_t>(byte(at)) << 24 |
                                 static_cast<std::uint32_t>(byte(at + 1)) << 16 |
                                 static_cast<std::uint32_t>(byte(at + 2)) << 8 |
                                 static_cast<std::uint32_t>(byte(at + 3));
    f.dims.push_back(static_cast<index_t>(extent));
    overflow = overflow || __builtin_mul_overflow(bytes, std::uint64_t{extent}, &bytes);
  }
  const std::string says =
      "header says " + dims_text(f.dims) +
      (f.type->size == 1 && f.type->code == 0x08
           ? " bytes of data"
           : " " + std::string(f.type->name) + " values of data (" +
                 (overflow ? std::string("more than 2^64 bytes") : byte_count(bytes)) + ")");
  const std::uint64_t held = f.file.size() - f.data_offset;
  if (overflow || held < bytes) {
    throw io_error(who, path,
                   "truncated: " + says + ", " + holds + std::to_string(held) + " after its " +
                       std::to_string(f.data_offset) + "-byte header");
  }
  if (held > bytes) {
    throw io_error(who, path,
                   "trailing garbage: " + says + ", " + holds + std::to_string(held) +
                       " after its " + std::to_string(f.data_offset) + "-byte header (" +
                       byte_count(held - bytes) + " too many)");
  }
  return f;
}

// Element i of a big-endian integer IDX array, widened.
inline std::int64_t idx_integer(const IdxFile& f, index_t i) {
  const std::byte* p = f.data().data() + i * f.type->size;
  std::uint64_t u = 0;
  for (int k = 0; k < f.type->size; ++k) {
    u = u << 8 | std::to_integer<std::uint64_t>(p[k]);
  }
  switch (f.type->code) {
    case 0x09:
      return static_cast<std::int8_t>(u);
    case 0x0B:
      return static_cast<std::int16_t>(u);
    case 0x0C:
      return static_cast<std::int32_t>(u);
    default:
      return static_cast<std::int64_t>(u);
  }
}
}  // namespace detail

/// Reads any IDX file (raw or .gz) into host memory, elements converted to the host byte order.
/// Throws io_error for a missing file, bad magic, an unknown type code, 0 or more than 6
/// dimensions, or data shorter or longer than the header's extents say.
/// Example: `io::IdxData d = io::read_idx("t10k-images-idx3-ubyte.gz");  // d.dims {10000, 28, 28}`
inline IdxData read_idx(const std::filesystem::path& path) {
  detail::IdxFile f = detail::open_idx("read_idx", path);
  IdxData out{f.dims, f.type->code, {}};
  const auto data = f.data();
  out.bytes.resize(data.size());
  const std::size_t size = static_cast<std::size_t>(f.type->size);
  for (std::size_t i = 0; i < data.size(); i += size) {  // big-endian to host order
    for (std::size_t k = 0; k < size; ++k) {
      out.bytes[i + k] = std::to_integer<std::uint8_t>(data[i + size - 1 - k]);
    }
  }
  return out;
}

/// Reads an IDX image file (3-D, uint8: count x rows x columns, as MNIST's) into a tensor of
/// shape [count, rows * columns], one flattened image per row, each pixel multiplied by `scale`
/// (by default 1/255, so pixels lie in [0, 1]; pass 1 to keep 0..255).
/// Example: `Tensor<float, 2> x = io::read_idx_images("train-images-idx3-ubyte.gz");`
///          gives x of shape (60000, 784) for MNIST's training set.
inline Tensor<float, 2> read_idx_images(const std::filesystem::path& path,
                                        float scale = 1.0f / 255.0f) {
  constexpr std::string_view who = "read_idx_images";
  const detail::IdxFile f = detail::open_idx(who, path);
  if (f.dims.size() != 3) {
    throw io_error(who, path,
                   "expected images, a 3-D IDX file (count x rows x columns), found a " +
                       std::to_string(f.dims.size()) + "-D file (" + detail::dims_text(f.dims) +
                       ")" + (f.dims.size() == 1 ? "; is this a labels file?" : ""));
  }
  if (f.type->code != 0x08) {
    throw io_error(who, path,
                   std::string("images must be unsigned bytes (IDX type 0x08), the file holds ") +
                       f.type->name + " (" + detail::hex_byte(f.type->code) +
                       "); use io::read_idx for other element types");
  }
  const auto data = f.data();
  std::vector<float> pixels(data.size());
  for (std::size_t i = 0; i < data.size(); ++i) {
    pixels[i] = static_cast<float>(std::to_integer<int>(data[i])) * scale;
  }
  return from_host<float>(Shape<2>({f.dims[0], f.dims[1] * f.dims[2]}),
                          std::span<const float>(pixels));  // (count, rows * columns)
}

/// Reads an IDX label file (1-D, any integer type; MNIST's is uint8) into an int32 tensor.
/// Check the values against the class count with io::check_labels.
/// Example: `Tensor<std::int32_t, 1> y = io::read_idx_labels("train-labels-idx1-ubyte.gz");`
inline Tensor<std::int32_t, 1> read_idx_labels(const std::filesystem::path& path) {
  constexpr std::string_view who = "read_idx_labels";
  const detail::IdxFile f = detail::open_idx(who, path);
  if (f.dims.size() != 1) {
    throw io_error(who, path,
                   "expected labels, a 1-D IDX file, found a " + std::to_string(f.dims.size()) +
                       "-D file (" + detail::dims_text(f.dims) + ")" +
                       (f.dims.size() == 3 ? "; is this an images file?" : ""));
  }
  if (f.type->code == 0x0D || f.type->code == 0x0E) {
    throw io_error(who, path,
                   std::string("labels must be integers, the file holds ") + f.type->name + " (" +
                       detail::hex_byte(f.type->code) + ")");
  }
  std::vector<std::int32_t> labels(static_cast<std::size_t>(f.count()));
  for (index_t i = 0; i < f.count(); ++i) {
    labels[static_cast<std::size_t>(i)] = static_cast<std::int32_t>(detail::idx_integer(f, i));
  }
  return from_host<std::int32_t>(Shape<1>({f.count()}), std::span<const std::int32_t>(labels));
}

/// Checks labels read from `labels_path` against the dataset: there must be `image_count` of
/// them, each in 0 .. num_classes - 1. Throws io_error naming the file, e.g. `label count 59999
/// != image count 60000` or `label 12 at index 3 is out of range for 10 classes (0..9)`.
/// Example: `io::check_labels("train-labels-idx1-ubyte.gz", y, x.shape(0), 10);`
inline void check_labels(const std::filesystem::path& labels_path,
                         const Tensor<std::int32_t, 1>& labels, index_t image_count,
                         int num_classes) {
  constexpr std::string_view who = "check_labels";
  if (labels.size() != image_count) {
    throw io_error(who, labels_path,
                   "label count " + std::to_string(labels.size()) + " != image count " +
                       std::to_string(image_count));
  }
  const std::vector<std::int32_t> values = labels.to_vector();
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (values[i] < 0 || values[i] >= num_classes) {
      throw io_error(who, labels_path,
                     "label " + std::to_string(values[i]) + " at index " + std::to_string(i) +
                         " is out of range for " + std::to_string(num_classes) + " classes (0.." +
                         std::to_string(num_classes - 1) + ")");
    }
  }
}

/// Images and their labels, checked against each other.
struct IdxDataset {
  Tensor<float, 2> images;         // (count, rows * columns), pixels scaled
  Tensor<std::int32_t, 1> labels;  // (count), each in 0 .. num_classes - 1
};

/// Reads an image file and its label file and checks them with check_labels.
/// Example: `auto train = io::read_idx_dataset(dir / "train-images-idx3-ubyte.gz",
///                                             dir / "train-labels-idx1-ubyte.gz", 10);`
inline IdxDataset read_idx_dataset(const std::filesystem::path& images_path,
                                   const std::filesystem::path& labels_path, int num_classes,
                                   float scale = 1.0f / 255.0f) {
  IdxDataset d{read_idx_images(images_path, scale), read_idx_labels(labels_path)};
  check_labels(labels_path, d.labels, d.images.shape(0), num_classes);
  return d;
}

}  // namespace io
}  // namespace fusegrad::inline FG_BACKEND_NS
