// fusegrad/io/npy.hpp — NumPy's .npy format: save a tensor that np.load reads, load what np.save
// wrote.
//
// Layout: the 6 bytes "\x93NUMPY", a major and a minor version byte, the header length (uint16
// little-endian in version 1.0, uint32 in 2.0 and 3.0), the header — an ASCII (3.0: UTF-8)
// Python dict literal such as `{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }`,
// padded with spaces and ended by '\n' so the data starts at a multiple of 64 — then the
// elements, C order, nothing after them.
//
// dtypes: '<f4' float, '<f8' double, '<i4' int32, '<i8' int64, '|u1' uint8, '|b1' bool. Reading
// also accepts big-endian ('>f4', ...) and native ('=f4') forms and byte-swaps big-endian data.
// Fortran-ordered arrays, structured dtypes and other element types are rejected with a message.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "fusegrad/io/file.hpp"
#include "fusegrad/memory/tensor.hpp"

namespace fusegrad::inline FG_BACKEND_NS {
namespace io {

/// The contents of a .npy file: its dtype (`descr` as written in the file, `dtype` as fusegrad
/// names it: "float32", "int64", ...), its shape, and its elements in C order and host byte order.
struct NpyArray {
  std::string descr;
  std::string dtype;
  std::vector<index_t> shape;
  std::vector<std::byte> data;
};

namespace detail {
struct NpyType {
  const char* code;  // descr without the byte-order character
  const char* dtype;
  int size;
};
inline constexpr NpyType npy_types[] = {{"f4", "float32", 4}, {"f8", "float64", 8},
                                        {"i4", "int32", 4},   {"i8", "int64", 8},
                                        {"u1", "uint8", 1},   {"b1", "bool", 1}};

template <class T>
constexpr const char* npy_descr() {
  if constexpr (std::is_same_v<T, float>) {
    return "<f4";
  } else if constexpr (std::is_same_v<T, double>) {
    return "<f8";
  } else if constexpr (std::is_same_v<T, std::int32_t>) {
    return "<i4";
  } else if constexpr (std::is_same_v<T, std::int64_t>) {
    return "<i8";
  } else if constexpr (std::is_same_v<T, std::uint8_t>) {
    return "|u1";
  } else if constexpr (std::is_same_v<T, bool>) {
    return "|b1";
  } else {
    static_assert(sizeof(T) == 0,
                  "npy: no .npy dtype for this element type; cast the tensor to "
                  "float first (half and bfloat16 are not saved)");
    return "";
  }
}

inline std::string npy_shape_text(const std::vector<index_t>& shape) {  // "(2, 3)", "(5,)", "()"
  std::string s = "(";
  for (std::size_t i = 0; i < shape.size(); ++i) {
    s += (i ? ", " : "") + std::to_string(shape[i]);
  }
  return s + (shape.size() == 1 ? ",)" : ")");
}

// Parses the header's Python dict literal: keys in any order, any spacing, trailing commas.
class NpyHeaderParser {
 public:
  NpyHeaderParser(std::string_view text, std::string_view who, const std::filesystem::path& path)
      : text_(text), who_(who), path_(path) {}

  void parse(std::string& descr, bool& fortran_order, std::vector<index_t>& shape) {
    bool seen[3] = {false, false, false};
    expect('{');
    while (!eat('}')) {
      const std::string key = string_literal("a key");
      expect(':');
      if (key == "descr") {
        if (peek() == '[') {
          fail("'descr' is a list: structured dtypes are not supported");
        }
        descr = string_literal("the 'descr' value");
        seen[0] = true;
      } else if (key == "fortran_order") {
        fortran_order = boolean();
        seen[1] = true;
      } else if (key == "shape") {
        shape = tuple();
        seen[2] = true;
      } else {
        fail("unexpected key '" + key + "'");
      }
      if (!eat(',')) {
        expect('}');
        break;
      }
    }
    const char* names[3] = {"descr", "fortran_order", "shape"};
    for (int i = 0; i < 3; ++i) {
      if (!seen[i]) {
        fail(std::string("the key '") + names[i] + "' is missing");
      }
    }
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    std::string shown(text_.substr(0, 200));
    while (!shown.empty() && (shown.back() == ' ' || shown.back() == '\n')) {
      shown.pop_back();
    }
    throw io_error(who_, path_, "bad .npy header: " + what + " (header: " + shown + ")");
  }
  char peek() {
    while (pos_ < text_.size() && (text_[pos_] == ' ' || text_[pos_] == '\t' ||
                                   text_[pos_] == '\n' || text_[pos_] == '\r')) {
      ++pos_;
    }
    return pos_ < text_.size() ? text_[pos_] : '\0';
  }
  bool eat(char c) {
    if (peek() == c) {
      ++pos_;
      return true;
    }
    return false;
  }
  void expect(char c) {
    if (!eat(c)) {
      fail(std::string("expected '") + c + "' at offset " + std::to_string(pos_));
    }
  }
  std::string string_literal(const char* what) {
    const char quote = peek();
    if (quote != '\'' && quote != '"') {
      fail(std::string("expected a quoted string as ") + what + " at offset " +
           std::to_string(pos_));
    }
    const std::size_t end = text_.find(quote, ++pos_);
    if (end == std::string_view::npos) {
      fail("unterminated string");
    }
    std::string s(text_.substr(pos_, end - pos_));
    pos_ = end + 1;
    return s;
  }
  bool boolean() {
    peek();
    for (const auto& [word, value] : {std::pair{"True", true}, std::pair{"False", false}}) {
      if (text_.substr(pos_).starts_with(word)) {
        pos_ += std::string_view(word).size();
        return value;
      }
    }
    fail("'fortran_order' is neither True nor False");
  }
  std::vector<index_t> tuple() {
    std::vector<index_t> dims;
    expect('(');
    while (!eat(')')) {
      if (peek() < '0' || peek() > '9') {
        fail("'shape' holds something other than non-negative integers");
      }
      index_t v = 0;
      while (pos_ < text_.size() && text_[pos_] >= '0' && text_[pos_] <= '9') {
        if (__builtin_mul_overflow(v, index_t{10}, &v) ||
            __builtin_add_overflow(v, index_t{text_[pos_] - '0'}, &v)) {
          fail("an extent in 'shape' overflows int64");
        }
        ++pos_;
      }
      eat('L');  // Python 2 wrote long integers as 3L
      dims.push_back(v);
      if (!eat(',')) {
        expect(')');
        break;
      }
    }
    return dims;
  }

  std::string_view text_;
  std::string_view who_;
  const std::filesystem::path& path_;
  std::size_t pos_ = 0;
};

inline NpyArray read_npy(std::string_view who, const std::filesystem::path& path) {
  std::vector<std::byte> file = read_file(path, /*gunzip=*/false, who);
  ByteReader in{file, who, path};
  static constexpr unsigned char magic[6] = {0x93, 'N', 'U', 'M', 'P', 'Y'};
  const auto head = static_cast<std::ptrdiff_t>(std::min<std::size_t>(file.size(), 6));
  if (!std::equal(file.begin(), file.begin() + head, magic,
                  [](std::byte b, unsigned char m) { return std::to_integer<unsigned>(b) == m; })) {
    throw io_error(who, path, "not a .npy file (bad magic: it does not start with \\x93NUMPY)");
  }
  in.take(6, "the magic");  // a file that is a prefix of the magic: "truncated"
  const int major = in.le<std::uint8_t>("the version");
  const int minor = in.le<std::uint8_t>("the version");
  if (major < 1 || major > 3) {
    throw io_error(who, path,
                   "unsupported .npy format version " + std::to_string(major) + "." +
                       std::to_string(minor) + " (fusegrad reads 1.0, 2.0 and 3.0)");
  }
  const std::uint32_t header_size = major == 1 ? in.le<std::uint16_t>("the header length")
                                               : in.le<std::uint32_t>("the header length");
  const auto header_bytes = in.take(header_size, "the header");
  const std::string_view header(reinterpret_cast<const char*>(header_bytes.data()), header_size);
  NpyArray out;
  bool fortran_order = false;
  NpyHeaderParser(header, who, path).parse(out.descr, fortran_order, out.shape);
  if (fortran_order) {
    throw io_error(who, path,
                   "the array is in Fortran (column-major) order, fusegrad reads C order: save "
                   "np.ascontiguousarray(a) instead");
  }
  if (out.shape.size() > static_cast<std::size_t>(max_rank)) {
    throw io_error(who, path,
                   "the array has rank " + std::to_string(out.shape.size()) +
                       "; fusegrad tensors have rank 0 to 6");
  }
  const NpyType* type = nullptr;
  const char order = out.descr.empty() ? '?' : out.descr[0];
  const std::string_view code = std::string_view(out.descr).substr(out.descr.empty() ? 0 : 1);
  for (const NpyType& t : npy_types) {
    if (code == t.code && (order == '<' || order == '=' || order == '|' || order == '>')) {
      type = &t;
    }
  }
  if (type == nullptr) {
    throw io_error(who, path,
                   "unsupported dtype '" + out.descr +
                       "' (fusegrad reads '<f4' float32, '<f8' float64, '<i4' int32, '<i8' "
                       "int64, '|u1' uint8, '|b1' bool, and their big-endian forms)");
  }
  out.dtype = type->dtype;
  std::uint64_t bytes = static_cast<std::uint64_t>(type->size);
  for (index_t e : out.shape) {
    if (__builtin_mul_overflow(bytes, static_cast<std::uint64_t>(e), &bytes)) {
      throw io_error(who, path,
                     "the shape " + npy_shape_text(out.shape) + " holds more than 2^64 bytes");
    }
  }
  const std::string says = "the header says " + npy_shape_text(out.shape) + " " + out.dtype + " (" +
                           byte_count(bytes) + " of data), the file holds " +
                           byte_count(in.remaining()) + " after its header";
  if (in.remaining() < bytes) {
    throw io_error(who, path, "truncated: " + says);
  }
  if (in.remaining() > bytes) {
    throw io_error(who, path, "trailing garbage: " + says);
  }
  file.erase(file.begin(), file.begin() + static_cast<std::ptrdiff_t>(in.pos));  // no 2nd copy
  out.data = std::move(file);
  if (order == '>' && type->size > 1) {  // big-endian file: swap every element
    for (std::size_t i = 0; i < out.data.size(); i += static_cast<std::size_t>(type->size)) {
      std::reverse(out.data.begin() + static_cast<std::ptrdiff_t>(i),
                   out.data.begin() + static_cast<std::ptrdiff_t>(i) + type->size);
    }
  }
  if (out.dtype == "bool") {
    for (std::size_t i = 0; i < out.data.size(); ++i) {
      if (std::to_integer<int>(out.data[i]) > 1) {
        throw io_error(who, path,
                       "bool element " + std::to_string(i) + " holds the byte " +
                           std::to_string(std::to_integer<int>(out.data[i])) + ", not 0 or 1");
      }
    }
  }
  return out;
}
}  // namespace detail

/// Reads any supported .npy file (versions 1.0, 2.0, 3.0) without fixing its dtype or rank.
/// Throws io_error for a missing file, bad magic, a malformed header, Fortran order, an
/// unsupported dtype, or data shorter or longer than the shape says.
/// Example: `io::NpyArray a = io::read_npy("w.npy");  // a.dtype == "float32", a.shape {2, 3}`
inline NpyArray read_npy(const std::filesystem::path& path) {
  return detail::read_npy("read_npy", path);
}

/// Loads a .npy file into a tensor; its dtype and rank must be T's and R (the error names both).
/// Example: `Tensor<float, 2> w = io::load_npy<float, 2>("w.npy");`
template <dtype T, int R>
Tensor<T, R> load_npy(const std::filesystem::path& path) {
  constexpr std::string_view who = "load_npy";
  NpyArray a = detail::read_npy(who, path);
  const std::string asked = std::string(dtype_traits<T>::name) + " rank " + std::to_string(R);
  if (a.dtype != dtype_traits<T>::name || a.shape.size() != static_cast<std::size_t>(R)) {
    throw io_error(who, path,
                   "the file holds " + a.dtype + " ('" + a.descr + "') of shape " +
                       detail::npy_shape_text(a.shape) + " (rank " +
                       std::to_string(a.shape.size()) + "), but load_npy asked for " + asked);
  }
  Shape<R> shape;
  for (int i = 0; i < R; ++i) {
    shape[i] = a.shape[static_cast<std::size_t>(i)];
  }
  Tensor<T, R> t(shape);
  backend::copy_to_device(t.data(), a.data.data(), a.data.size());
  return t;
}

/// Saves a tensor as a version-1.0 .npy file (C order, little-endian) that np.load reads. The
/// write is atomic: a temporary file is renamed over `path`, so a failure leaves any existing
/// file unchanged. Element types: float, double, int32, int64, uint8, bool.
/// Example: `io::save_npy("w.npy", w);  // then in Python: np.load("w.npy")`
template <dtype T, int R>
void save_npy(const std::filesystem::path& path, const Tensor<T, R>& t) {
  std::vector<index_t> dims(static_cast<std::size_t>(R));
  for (int i = 0; i < R; ++i) {
    dims[static_cast<std::size_t>(i)] = t.shape(i);
  }
  std::string dict = std::string("{'descr': '") + detail::npy_descr<T>() +
                     "', 'fortran_order': False, 'shape': " + detail::npy_shape_text(dims) + ", }";
  const std::size_t unpadded = 10 + dict.size() + 1;  // magic, version, length, dict, '\n'
  dict.append((64 - unpadded % 64) % 64, ' ');
  dict += '\n';
  std::vector<std::byte> head;
  detail::append_text(head, "\x93NUMPY\x01");
  head.push_back(std::byte{0});  // version 1.0
  detail::append_le(head, static_cast<std::uint16_t>(dict.size()));
  detail::append_text(head, dict);
  std::vector<std::byte> data(static_cast<std::size_t>(t.size()) * sizeof(T));
  backend::copy_to_host(data.data(), t.data(), data.size());
  AtomicFile file("save_npy", path);
  file.write(head);
  file.write(data);
  file.commit();
}

}  // namespace io
}  // namespace fusegrad::inline FG_BACKEND_NS
