// fusegrad/io/checkpoint.hpp — Checkpoint: named tensors (parameters, optimizer state) plus
// metadata, saved atomically with a checksum and loaded all-or-nothing.
//
// File layout, version 1, every integer little-endian:
//   offset 0   8 bytes  magic 46 47 43 4B 50 54 00 01 ("FGCKPT\0\1")
//          8   u32      format version (1)
//         12   u32      metadata count M
//         16   u32      tensor count T
//         20   u32      reserved, 0
//         24            M metadata entries, in key order:
//                         u32 key length k, k bytes of key (UTF-8)
//                         u8 kind: 1 int64, 2 float64 (IEEE bits), 3 string
//                         kinds 1, 2: 8 bytes of value; kind 3: u64 length n, n bytes
//                       T tensor entries, in the order they were put:
//                         u32 name length k, k bytes of name
//                         u8 dtype-name length d, d bytes ("float32", "int64", ...)
//                         u8 rank r (0..6), r x i64 extents
//                         u64 data length n (= product of extents x element size), n bytes of
//                         elements, C order
//   size - 16  u64      file size
//   size - 8   u32      CRC-32 (io/crc32.hpp) of every byte before it
//   size - 4   4 bytes  end marker "FGCK"
// The 16-byte trailer keeps this layout in every version. Saving writes a temporary file beside
// the target, fsyncs it, renames it over the target and fsyncs the directory: a crash or error
// mid-save leaves the previous checkpoint intact, and a torn file fails the trailer or the CRC.
//
// Whole models (nn/module.hpp) and their optimizers: optim/checkpoint.hpp
// (`io::save_checkpoint(path, model, opt)`, `io::load_checkpoint(path, model, opt)`).
#pragma once

#include <concepts>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <map>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "fusegrad/io/crc32.hpp"
#include "fusegrad/io/file.hpp"
#include "fusegrad/memory/tensor.hpp"

namespace fusegrad::inline FG_BACKEND_NS {
namespace io {

/// One tensor of a checkpoint, on the host: dtype name ("float32"), extents, raw C-order bytes.
struct CheckpointTensor {
  std::string name;
  std::string dtype;
  std::vector<index_t> shape;
  std::vector<std::byte> data;
};

/// A metadata value: an integer, a floating-point number or a string.
using MetaValue = std::variant<std::int64_t, double, std::string>;

/// What Checkpoint::put_meta takes: an integer (stored as int64), a floating-point number
/// (stored as double) or anything string-like.
template <class V>
concept meta_value =
    std::integral<V> || std::floating_point<V> || std::convertible_to<V, std::string_view>;

/// A tensor and the name it has in a checkpoint: `io::named("W1", W1)`.
template <class TensorT>
struct Named {
  std::string_view name;
  TensorT& tensor;
};
template <class TensorT>
Named<TensorT> named(std::string_view name, TensorT& tensor) {
  return {name, tensor};
}

namespace detail {
inline std::size_t dtype_size(std::string_view dtype) {  // 0: unknown
  static constexpr std::pair<std::string_view, std::size_t> sizes[] = {
      {"float32", 4}, {"float64", 8}, {"int32", 4},   {"int64", 8},
      {"uint8", 1},   {"bool", 1},    {"float16", 2}, {"bfloat16", 2}};
  for (const auto& [name, size] : sizes) {
    if (name == dtype) {
      return size;
    }
  }
  return 0;
}
inline std::string shape_text(const std::vector<index_t>& shape) {  // "[784, 128]"
  std::string s = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) {
    s += (i ? ", " : "") + std::to_string(shape[i]);
  }
  return s + "]";
}
inline constexpr char checkpoint_magic[8] = {'F', 'G', 'C', 'K', 'P', 'T', '\0', '\1'};
inline constexpr char checkpoint_end[4] = {'F', 'G', 'C', 'K'};
inline constexpr std::uint32_t checkpoint_version = 1;
inline constexpr std::size_t checkpoint_min_size = 24 + 16;
}  // namespace detail

class Checkpoint;
inline Checkpoint load_checkpoint(const std::filesystem::path& path);

/// Named tensors plus metadata, held on the host. Fill one with put/put_meta and save it with
/// save_checkpoint; read one with load_checkpoint and copy tensors out with get/get_all.
/// Example:
///   io::Checkpoint c;
///   c.put_all(io::named("W1", W1), io::named("adam.m.W1", m1));
///   c.put_meta("epoch", 3);
///   io::save_checkpoint("run.fgc", c);
class Checkpoint {
 public:
  /// Stores a host copy of `t` under `name`, replacing a tensor of that name (in its place).
  template <dtype T, int R>
  void put(std::string name, const Tensor<T, R>& t) {
    CheckpointTensor e{std::move(name), dtype_traits<T>::name, {}, {}};
    for (int i = 0; i < R; ++i) {
      e.shape.push_back(t.shape(i));
    }
    e.data.resize(static_cast<std::size_t>(t.size()) * sizeof(T));
    backend::copy_to_host(e.data.data(), t.data(), e.data.size());
    if (auto* old = find(e.name)) {
      *old = std::move(e);
    } else {
      tensors_.push_back(std::move(e));
    }
  }
  /// Stores a host tensor as it is (e.g. one of another checkpoint's tensors()), replacing a
  /// tensor of that name (in its place); io_error when its dtype is not one fusegrad knows, its
  /// rank exceeds 6 or its data length is not its shape's. Example: `c.put(other.tensors()[0]);`
  void put(CheckpointTensor e) {
    std::size_t bytes = detail::dtype_size(e.dtype);
    if (bytes == 0 || e.shape.size() > std::size_t(max_rank)) {
      fail("put", "tensor '" + e.name + "' has dtype '" + e.dtype + "' and rank " +
                      std::to_string(e.shape.size()));
    }
    bool valid = true;
    for (const index_t extent : e.shape) {
      valid = valid && extent >= 0 &&
              !__builtin_mul_overflow(bytes, static_cast<std::size_t>(extent), &bytes);
    }
    if (!valid || bytes != e.data.size()) {
      fail("put", "tensor '" + e.name + "' of shape " + detail::shape_text(e.shape) + " holds " +
                      std::to_string(e.data.size()) + " bytes of data" +
                      (valid ? " instead of " + std::to_string(bytes) : std::string()));
    }
    if (auto* old = find(e.name)) {
      *old = std::move(e);
    } else {
      tensors_.push_back(std::move(e));
    }
  }
  /// put() for each `io::named(name, tensor)`.
  template <class... TensorTs>
  void put_all(const Named<TensorTs>&... entries) {
    (put(std::string(entries.name), entries.tensor), ...);
  }

  /// Stores metadata: integers as int64, floating point as double, anything string-like as text.
  template <meta_value V>
  void put_meta(std::string key, const V& value) {
    if constexpr (std::integral<V>) {
      meta_[std::move(key)] = static_cast<std::int64_t>(value);
    } else if constexpr (std::floating_point<V>) {
      meta_[std::move(key)] = static_cast<double>(value);
    } else {
      meta_[std::move(key)] = std::string(std::string_view(value));
    }
  }

  /// Metadata `key` as V (an integer type, a floating-point type or std::string); io_error when
  /// the key is missing or holds another kind. Example: `int epoch = c.meta<int>("epoch");`
  template <class V>
  V meta(std::string_view key) const {
    const auto it = meta_.find(key);
    if (it == meta_.end()) {
      std::string keys;
      for (const auto& [k, v] : meta_) {
        keys += (keys.empty() ? "" : ", ") + k;
      }
      fail("meta", "no metadata '" + std::string(key) +
                       "' (it holds: " + (keys.empty() ? "none" : keys) + ")");
    }
    const MetaValue& v = it->second;
    const char* held = v.index() == 0 ? "an integer" : v.index() == 1 ? "a number" : "a string";
    if constexpr (std::integral<V>) {
      const auto* i = std::get_if<std::int64_t>(&v);
      if (i == nullptr || !std::in_range<V>(*i)) {
        fail("meta", "metadata '" + std::string(key) + "' is " + (i ? "out of range" : held) +
                         ", not the integer type asked for");
      }
      return static_cast<V>(*i);
    } else if constexpr (std::floating_point<V>) {
      if (v.index() == 2) {
        fail("meta", "metadata '" + std::string(key) + "' is a string, not a number");
      }
      return static_cast<V>(v.index() == 0 ? static_cast<double>(std::get<0>(v)) : std::get<1>(v));
    } else {
      static_assert(std::same_as<V, std::string>,
                    "Checkpoint::meta: V must be an integer type, a "
                    "floating-point type or std::string");
      if (v.index() != 2) {
        fail("meta", "metadata '" + std::string(key) + "' is " + held + ", not a string");
      }
      return std::get<2>(v);
    }
  }

  bool contains(std::string_view name) const { return find(name) != nullptr; }
  bool contains_meta(std::string_view key) const { return meta_.find(key) != meta_.end(); }
  const std::vector<CheckpointTensor>& tensors() const { return tensors_; }
  const std::map<std::string, MetaValue, std::less<>>& metadata() const { return meta_; }
  /// The file this checkpoint was loaded from (empty for one built in memory).
  const std::filesystem::path& source() const { return source_; }

  /// Checks that tensor `name` exists with `like`'s dtype and shape; io_error naming the file,
  /// the tensor and both dtypes and shapes otherwise. Changes nothing.
  template <dtype T, int R>
  void check(std::string_view name, const Tensor<T, R>& like) const {
    if (std::string problem = mismatch(name, like); !problem.empty()) {
      fail("get", problem);
    }
  }

  /// Copies tensor `name` into `into`, whose dtype and shape must match; on a mismatch `into` is
  /// left untouched. Example: `c.get("W1", W1);`
  template <dtype T, int R>
  void get(std::string_view name, Tensor<T, R>& into) const {
    check(name, into);
    const CheckpointTensor& e = *find(name);
    backend::copy_to_device(into.data(), e.data.data(), e.data.size());
  }

  /// Tensor `name` as a new tensor of its stored shape (the dtype and rank must be T and R).
  /// Example: `auto m = c.tensor<float, 2>("adam.m.W1");`
  template <dtype T, int R>
  Tensor<T, R> tensor(std::string_view name) const {
    Shape<R> shape;
    if (const CheckpointTensor* e = find(name)) {
      if (e->dtype != dtype_traits<T>::name || e->shape.size() != std::size_t(R)) {
        fail("tensor", "tensor '" + std::string(name) + "' is " + e->dtype + " " +
                           detail::shape_text(e->shape) + " in the checkpoint, but " +
                           dtype_traits<T>::name + " of rank " + std::to_string(R) +
                           " was asked for");
      }
      for (int i = 0; i < R; ++i) {
        shape[i] = e->shape[static_cast<std::size_t>(i)];
      }
    }
    Tensor<T, R> t(shape);  // when `name` is missing, get() says so
    get(name, t);
    return t;
  }

  /// All or nothing: checks every `io::named(name, tensor)` first and throws one io_error listing
  /// every missing or mismatching tensor before any is modified; then copies them all.
  /// Example: `c.get_all(io::named("W1", W1), io::named("b1", b1));`
  template <class... TensorTs>
  void get_all(const Named<TensorTs>&... entries) const {
    static_assert(!(std::is_const_v<TensorTs> || ...),
                  "Checkpoint::get_all: every io::named(...) must name a non-const tensor");
    std::vector<std::string> problems;
    (problems.push_back(mismatch(entries.name, entries.tensor)), ...);
    require_match("get_all", problems);
    (get(entries.name, entries.tensor), ...);
  }

  /// Why tensor `name` cannot be copied into `like`: it is missing, or has another dtype or shape
  /// (the sentence check() and get_all() report); empty when it can. Changes nothing.
  /// Example: `if (!c.mismatch("W1", W1).empty()) { ... }`
  template <dtype T, int R>
  std::string mismatch(std::string_view name, const Tensor<T, R>& like) const {
    std::vector<index_t> shape;
    for (int i = 0; i < R; ++i) {
      shape.push_back(like.shape(i));
    }
    const std::string wanted = std::string(dtype_traits<T>::name) + " " + detail::shape_text(shape);
    const CheckpointTensor* e = find(name);
    if (e == nullptr) {
      return "tensor '" + std::string(name) + "' (" + wanted + ") is not in the checkpoint" +
             holdings();
    }
    if (e->dtype != dtype_traits<T>::name || e->shape != shape) {
      return "tensor '" + std::string(name) + "' is " + e->dtype + " " +
             detail::shape_text(e->shape) + " in the checkpoint, but the target is " + wanted;
    }
    return {};
  }

  /// The all-or-nothing verdict of a load checked at run time: unless every entry of `problems`
  /// is empty, throws one io_error naming `who` and the file, "the checkpoint does not match the
  /// model, nothing was loaded: " and the non-empty problems joined by "; " (the first 16, then
  /// how many more; what the checkpoint holds is listed after the first missing tensor only).
  /// Example:
  ///   c.require_match("load_model", {c.mismatch("W1", W1), c.mismatch("b1", b1)});
  void require_match(std::string_view who, const std::vector<std::string>& problems) const {
    constexpr std::size_t shown = 16;
    const std::string holds = holdings();  // listed after the first missing tensor only
    bool listed = false;
    std::string joined;
    std::size_t count = 0;
    for (std::string problem : problems) {
      if (problem.empty() || count++ >= shown) {
        continue;
      }
      if (problem.ends_with(holds)) {
        problem.resize(problem.size() - (listed ? holds.size() : 0));
        listed = true;
      }
      joined += (joined.empty() ? "" : "; ") + problem;
    }
    if (count > shown) {
      joined += "; and " + std::to_string(count - shown) + " more";
    }
    if (count > 0) {
      fail(who, "the checkpoint does not match the model, nothing was loaded: " + joined);
    }
  }

 private:
  friend Checkpoint load_checkpoint(const std::filesystem::path& path);

  [[noreturn]] void fail(std::string_view who, const std::string& what) const {
    throw io_error(who, source_.empty() ? std::filesystem::path("(checkpoint in memory)") : source_,
                   what);
  }
  CheckpointTensor* find(std::string_view name) {
    for (auto& e : tensors_) {
      if (e.name == name) {
        return &e;
      }
    }
    return nullptr;
  }
  const CheckpointTensor* find(std::string_view name) const {
    return const_cast<Checkpoint*>(this)->find(name);
  }
  /// " (it holds: w1, b1, ...)": the first 12 tensor names, for a tensor that is missing.
  std::string holdings() const {
    std::string names;
    for (std::size_t i = 0; i < tensors_.size() && i < 12; ++i) {
      names += (i ? ", " : "") + tensors_[i].name;
    }
    return " (it holds: " + (names.empty() ? std::string("no tensors") : names) +
           (tensors_.size() > 12 ? ", ..." : "") + ")";
  }

  std::vector<CheckpointTensor> tensors_;
  std::map<std::string, MetaValue, std::less<>> meta_;
  std::filesystem::path source_;
};

/// Saves `c` to `path` atomically (temporary file, fsync, rename, directory fsync) with a CRC-32:
/// on any failure the temporary file is removed, an existing `path` is left byte-for-byte as it
/// was, and io_error names `path` and the step that failed.
/// Example: `io::save_checkpoint(dir / "epoch-3.fgc", c);`
inline void save_checkpoint(const std::filesystem::path& path, const Checkpoint& c) {
  AtomicFile file("save_checkpoint", path);
  Crc32 crc;
  std::uint64_t size = 0;
  std::vector<std::byte> head;
  const auto emit = [&](std::span<const std::byte> bytes) {
    crc.update(bytes);
    file.write(bytes);
    size += bytes.size();
  };
  const auto emit_head = [&] {
    emit(head);
    head.clear();
  };
  detail::append_text(head, std::string_view(detail::checkpoint_magic, 8));
  detail::append_le(head, detail::checkpoint_version);
  detail::append_le(head, static_cast<std::uint32_t>(c.metadata().size()));
  detail::append_le(head, static_cast<std::uint32_t>(c.tensors().size()));
  detail::append_le(head, std::uint32_t{0});
  for (const auto& [key, value] : c.metadata()) {
    detail::append_le(head, static_cast<std::uint32_t>(key.size()));
    detail::append_text(head, key);
    head.push_back(static_cast<std::byte>(value.index() + 1));
    if (const auto* i = std::get_if<std::int64_t>(&value)) {
      detail::append_le(head, *i);
    } else if (const auto* d = std::get_if<double>(&value)) {
      detail::append_le(head, *d);
    } else {
      detail::append_le(head, static_cast<std::uint64_t>(std::get<2>(value).size()));
      detail::append_text(head, std::get<2>(value));
    }
  }
  for (const CheckpointTensor& e : c.tensors()) {
    detail::append_le(head, static_cast<std::uint32_t>(e.name.size()));
    detail::append_text(head, e.name);
    head.push_back(static_cast<std::byte>(e.dtype.size()));
    detail::append_text(head, e.dtype);
    head.push_back(static_cast<std::byte>(e.shape.size()));
    for (index_t extent : e.shape) {
      detail::append_le(head, static_cast<std::int64_t>(extent));
    }
    detail::append_le(head, static_cast<std::uint64_t>(e.data.size()));
    emit_head();
    emit(e.data);
  }
  emit_head();
  detail::append_le(head, size + 16);  // the file size, once this trailer is written
  emit_head();
  detail::append_le(head, crc.value());
  detail::append_text(head, std::string_view(detail::checkpoint_end, 4));
  file.write(head);
  file.commit();
}

/// Loads a checkpoint saved by save_checkpoint. Verifies the magic, the trailer (so a truncated
/// or half-written file is caught), the CRC-32, the version, and every length against the file's
/// size before allocating; any failure is an io_error naming `path` and what is wrong.
/// Example: `io::Checkpoint c = io::load_checkpoint("run.fgc"); c.get_all(io::named("W1", W1));`
inline Checkpoint load_checkpoint(const std::filesystem::path& path) {
  constexpr std::string_view who = "load_checkpoint";
  const std::vector<std::byte> file = read_file(path, /*gunzip=*/false, who);
  const auto text = [&](std::size_t at, std::size_t n) {
    return std::string_view(reinterpret_cast<const char*>(file.data()) + at, n);
  };
  const std::size_t head = std::min<std::size_t>(file.size(), 8);
  if (text(0, head) != std::string_view(detail::checkpoint_magic, head)) {
    throw io_error(who, path, "not a fusegrad checkpoint (bad magic)");
  }
  if (file.size() < detail::checkpoint_min_size) {
    throw io_error(who, path,
                   "truncated: the file holds " + detail::byte_count(file.size()) +
                       ", a checkpoint takes at least " +
                       detail::byte_count(detail::checkpoint_min_size));
  }
  detail::ByteReader trailer{std::span(file).last(16), who, path};
  const auto recorded_size = trailer.le<std::uint64_t>("the trailer");
  const auto stored_crc = trailer.le<std::uint32_t>("the trailer");
  if (text(file.size() - 4, 4) != std::string_view(detail::checkpoint_end, 4) ||
      recorded_size != file.size()) {
    throw io_error(
        who, path,
        "truncated or incomplete: the file holds " + detail::byte_count(file.size()) +
            " and does not end with a valid trailer (was the save interrupted, or the file cut?)");
  }
  const auto body = std::span(file).first(file.size() - 8);  // everything the CRC covers
  if (const std::uint32_t crc = crc32(body); crc != stored_crc) {
    char sums[64];
    std::snprintf(sums, sizeof sums, "stored CRC-32 %08x, computed %08x", unsigned{stored_crc},
                  unsigned{crc});
    throw io_error(who, path, std::string("checksum mismatch: the file is corrupt (") + sums + ")");
  }
  detail::ByteReader in{std::span(file).first(file.size() - 16), who, path};
  in.take(8, "the magic");
  if (const auto version = in.le<std::uint32_t>("the header"); version != 1) {
    throw io_error(who, path,
                   "unsupported checkpoint format version " + std::to_string(version) +
                       " (this fusegrad reads version 1; update fusegrad)");
  }
  const auto meta_count = in.le<std::uint32_t>("the header");
  const auto tensor_count = in.le<std::uint32_t>("the header");
  in.le<std::uint32_t>("the header");
  const auto corrupt = [&](const std::string& what) {
    return io_error(who, path, "corrupt (the checksum matched, the content did not): " + what);
  };
  Checkpoint c;
  for (std::uint32_t i = 0; i < meta_count; ++i) {
    const auto key_bytes = in.take(in.le<std::uint32_t>("a metadata key"), "a metadata key");
    std::string key(reinterpret_cast<const char*>(key_bytes.data()), key_bytes.size());
    const int kind = in.le<std::uint8_t>("a metadata entry");
    if (kind == 1) {
      c.meta_[key] = in.le<std::int64_t>("a metadata value");
    } else if (kind == 2) {
      c.meta_[key] = in.le<double>("a metadata value");
    } else if (kind == 3) {
      const auto s = in.take(in.le<std::uint64_t>("a metadata value"), "a metadata value");
      c.meta_[key] = std::string(reinterpret_cast<const char*>(s.data()), s.size());
    } else {
      throw corrupt("metadata '" + key + "' has unknown kind " + std::to_string(kind));
    }
  }
  for (std::uint32_t i = 0; i < tensor_count; ++i) {
    CheckpointTensor e;
    const auto name = in.take(in.le<std::uint32_t>("a tensor name"), "a tensor name");
    e.name.assign(reinterpret_cast<const char*>(name.data()), name.size());
    const auto dtype = in.take(in.le<std::uint8_t>("a tensor dtype"), "a tensor dtype");
    e.dtype.assign(reinterpret_cast<const char*>(dtype.data()), dtype.size());
    const std::size_t element = detail::dtype_size(e.dtype);
    const int rank = in.le<std::uint8_t>("a tensor rank");
    if (element == 0 || rank > max_rank) {
      throw corrupt("tensor '" + e.name + "' has dtype '" + e.dtype + "' and rank " +
                    std::to_string(rank));
    }
    std::uint64_t bytes = element;
    for (int d = 0; d < rank; ++d) {
      const auto extent = in.le<std::int64_t>("a tensor shape");
      if (extent < 0 || __builtin_mul_overflow(bytes, static_cast<std::uint64_t>(extent), &bytes)) {
        throw corrupt("tensor '" + e.name + "' has an invalid extent " + std::to_string(extent));
      }
      e.shape.push_back(extent);
    }
    if (const auto n = in.le<std::uint64_t>("a tensor length"); n != bytes) {
      throw corrupt("tensor '" + e.name + "' of shape " + detail::shape_text(e.shape) +
                    " records " + detail::byte_count(n) + " of data instead of " +
                    std::to_string(bytes));
    }
    const auto data = in.take(bytes, "the data of tensor '" + e.name + "'");
    e.data.assign(data.begin(), data.end());
    c.tensors_.push_back(std::move(e));
  }
  if (in.remaining() != 0) {
    throw corrupt(detail::byte_count(in.remaining()) + " of unexpected data after the last entry");
  }
  c.source_ = path;
  return c;
}

}  // namespace io
}  // namespace fusegrad::inline FG_BACKEND_NS
