// tests/test_io.cpp — fusegrad/io: IDX (raw and .gz), .npy save/load, checkpoints; and every bad
// input the readers must reject with a message naming the file: missing directory or file, wrong
// magic, truncated or over-long data, corrupt gzip, flipped or cut checkpoint bytes, another
// model's shapes (nothing loaded), a failed save (the old checkpoint untouched).
//
// The hidden test "[npy_numpy]" exchanges files with NumPy; tests/io/npy_check.py drives it.
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <fusegrad/fusegrad.hpp>
#include <fusegrad/io/checkpoint.hpp>
#include <fusegrad/io/idx.hpp>
#include <fusegrad/io/npy.hpp>
#include <initializer_list>
#include <iterator>
#include <random>
#include <string>
#include <vector>

#if defined(__linux__)
#include <sys/resource.h>

#include <csignal>
#endif
#if defined(FG_HAVE_ZLIB)
#include <zlib.h>
#endif

#include "support/catch.hpp"
#include "support/tempdir.hpp"
#include "support/reference.hpp"

namespace test_io {
namespace fg = fusegrad;
namespace io = fusegrad::io;
namespace fs = std::filesystem;
using fg::index_t;
using Bytes = std::vector<std::uint8_t>;

#if defined(FG_CATCH3)
inline auto contains(const std::string& s) {
  return Catch::Matchers::ContainsSubstring(s);
}
#else
inline auto contains(const std::string& s) {
  return Catch::Contains(s);
}
#endif

/// A fresh temporary directory for this file's tests.
struct TempDir : fgtest::TempDir {
  TempDir() : fgtest::TempDir("io") {}
};

inline void write_bytes(const fs::path& p, const Bytes& b) {
  std::ofstream f(p, std::ios::binary | std::ios::trunc);
  f.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
  REQUIRE(f.good());
}
inline Bytes read_bytes(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return Bytes(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

// Runs `f`, which must throw io_error whose message holds every one of `parts`.
inline void expect_io_error(const std::function<void()>& f,
                            std::initializer_list<std::string> parts) {
  try {
    f();
    FAIL("no exception; expected an io_error holding: " << *parts.begin());
  } catch (const fg::io_error& e) {
    const std::string message = e.what();
    for (const std::string& part : parts) {
      CHECK_THAT(message, contains(part));
    }
  }
}

// ---------------------------------------------------------------------------------------------
// IDX files built in the test: big-endian header, then the given (already big-endian) data.

inline Bytes idx_bytes(int type, const std::vector<std::uint32_t>& dims, const Bytes& data) {
  Bytes b = {0, 0, static_cast<std::uint8_t>(type), static_cast<std::uint8_t>(dims.size())};
  for (std::uint32_t d : dims) {
    for (int shift = 24; shift >= 0; shift -= 8) {
      b.push_back(static_cast<std::uint8_t>(d >> shift));
    }
  }
  b.insert(b.end(), data.begin(), data.end());
  return b;
}

// gzip of the IDX labels file {7, 2, 9} (Python: gzip.compress(..., mtime=0)), so the no-zlib
// build can check its message and the zlib build can check a stream it did not write itself.
inline const Bytes gz_labels_729 = {
    0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x03, 0x63, 0x60, 0xe0, 0x60, 0x64, 0x60,
    0x60, 0x60, 0x66, 0x67, 0xe2, 0x04, 0x00, 0x27, 0x70, 0xe5, 0x40, 0x0b, 0x00, 0x00, 0x00};

#if defined(FG_HAVE_ZLIB)
inline void write_gzip(const fs::path& p, const Bytes& b) {
  gzFile g = gzopen(p.c_str(), "wb");
  REQUIRE(g != nullptr);
  REQUIRE(gzwrite(g, b.data(), static_cast<unsigned>(b.size())) == static_cast<int>(b.size()));
  REQUIRE(gzclose(g) == Z_OK);
}
#endif

TEST_CASE("io: crc32 matches the reference values and zlib", "[io]") {
  const std::string check = "123456789";
  CHECK(io::crc32(std::as_bytes(std::span(check))) == 0xCBF43926u);
  CHECK(io::crc32({}) == 0u);
  std::mt19937 rng(71);
  for (std::size_t n : {1, 7, 8, 9, 15, 16, 17, 1000, 4097}) {
    const auto v = fgtest::random_values<std::uint8_t>(n, rng, 0, 255);
    io::Crc32 pieces;  // split at an odd point: the result must not depend on the split
    pieces.update(std::as_bytes(std::span(v)).first(n / 3));
    pieces.update(std::as_bytes(std::span(v)).subspan(n / 3));
    CHECK(pieces.value() == io::crc32(std::as_bytes(std::span(v))));
#if defined(FG_HAVE_ZLIB)
    CHECK(io::crc32(std::as_bytes(std::span(v))) == ::crc32(0, v.data(), static_cast<uInt>(n)));
#endif
  }
}

// ---------------------------------------------------------------------------------------------
// IDX

TEST_CASE("io: IDX images and labels, raw and gzip", "[io]") {
  TempDir dir;
  const Bytes pixels = {0, 51, 102, 255, 1, 2, 3, 4, 200, 100, 50, 25};  // 3 images of 2 x 2
  write_bytes(dir / "images", idx_bytes(0x08, {3, 2, 2}, pixels));
  write_bytes(dir / "labels", idx_bytes(0x08, {3}, {7, 2, 9}));
  const auto check_images = [&](const fg::Tensor<float, 2>& x, float scale) {
    REQUIRE(fgtest::dims_of(x.shape()) == fgtest::Dims{3, 4});
    const auto v = x.to_vector();
    for (std::size_t i = 0; i < pixels.size(); ++i) {
      CHECK(v[i] == static_cast<float>(pixels[i]) * scale);
    }
  };
  check_images(io::read_idx_images(dir / "images"), 1.0f / 255.0f);
  check_images(io::read_idx_images(dir / "images", 1.0f), 1.0f);
  CHECK(io::read_idx_labels(dir / "labels").to_vector() == std::vector<std::int32_t>{7, 2, 9});
  const auto both = io::read_idx_dataset(dir / "images", dir / "labels", 10);
  CHECK(both.images.shape(0) == 3);
  CHECK(both.labels.to_vector() == std::vector<std::int32_t>{7, 2, 9});

  // Other element types come back in host byte order.
  write_bytes(dir / "i16", idx_bytes(0x0B, {2}, {0xFF, 0xFE, 0x01, 0x02}));
  const io::IdxData i16 = io::read_idx(dir / "i16");
  CHECK(i16.type_code == 0x0B);
  CHECK(i16.dims == std::vector<index_t>{2});
  std::int16_t v16[2];
  std::memcpy(v16, i16.bytes.data(), 4);
  CHECK(v16[0] == -2);
  CHECK(v16[1] == 0x0102);
  CHECK(io::read_idx_labels(dir / "i16").to_vector() == std::vector<std::int32_t>{-2, 0x0102});
  write_bytes(dir / "f32", idx_bytes(0x0D, {1, 1}, {0x40, 0x49, 0x0F, 0xDB}));  // pi, big-endian
  const io::IdxData f32 = io::read_idx(dir / "f32");
  float pi = 0;
  std::memcpy(&pi, f32.bytes.data(), 4);
  CHECK(pi == 3.14159274f);
  CHECK(f32.dims == std::vector<index_t>{1, 1});

  // gzip: a stream Python wrote, and (with zlib) our own.
  write_bytes(dir / "labels-py.gz", gz_labels_729);
#if defined(FG_HAVE_ZLIB)
  CHECK(io::read_idx_labels(dir / "labels-py.gz").to_vector() ==
        std::vector<std::int32_t>{7, 2, 9});
  write_gzip(dir / "images.gz", idx_bytes(0x08, {3, 2, 2}, pixels));
  check_images(io::read_idx_images(dir / "images.gz"), 1.0f / 255.0f);
  // Two gzip members back to back (`cat a.gz b.gz`) decompress to their concatenation.
  const Bytes whole = idx_bytes(0x08, {3, 2, 2}, pixels);
  write_gzip(dir / "a.gz", Bytes(whole.begin(), whole.begin() + 9));
  write_gzip(dir / "b.gz", Bytes(whole.begin() + 9, whole.end()));
  Bytes two = read_bytes(dir / "a.gz");
  const Bytes second = read_bytes(dir / "b.gz");
  two.insert(two.end(), second.begin(), second.end());
  write_bytes(dir / "two.gz", two);
  check_images(io::read_idx_images(dir / "two.gz", 1.0f), 1.0f);
  // A bigger file: past the first output buffer and the size hint.
  std::mt19937 rng(5);
  const auto big = fgtest::random_values<std::uint8_t>(300 * 28 * 28, rng, 0, 255);
  write_gzip(dir / "big.gz", idx_bytes(0x08, {300, 28, 28}, Bytes(big.begin(), big.end())));
  const auto x = io::read_idx_images(dir / "big.gz", 1.0f);
  CHECK(fgtest::dims_of(x.shape()) == fgtest::Dims{300, 784});
  const auto xv = x.to_vector();
  CHECK(std::equal(xv.begin(), xv.end(), big.begin()));
#else
  expect_io_error([&] { io::read_idx_labels(dir / "labels-py.gz"); },
                  {"read_idx_labels: ", "labels-py.gz: ", "built without zlib", "zlib1g-dev",
                   "gunzip the file"});
#endif
}

TEST_CASE("io: IDX bad input names the file and what is wrong", "[io]") {
  TempDir dir;
  const fs::path missing_dir = dir / "no-such-dir" / "train-images-idx3-ubyte";
  expect_io_error([&] { io::read_idx_images(missing_dir); },
                  {"read_idx_images: " + missing_dir.string(), "directory",
                   (dir / "no-such-dir").string(), "does not exist"});
  expect_io_error([&] { io::read_idx(dir / "absent"); },
                  {"read_idx: " + (dir / "absent").string(), "no such file"});
  expect_io_error([&] { io::read_idx(dir.path); }, {"is a directory"});

  const auto bad = [&](const std::string& name, const Bytes& content,
                       std::initializer_list<std::string> parts) {
    write_bytes(dir / name, content);
    expect_io_error([&] { io::read_idx(dir / name); }, parts);
  };
  bad("empty", {}, {"truncated", "0 bytes"});
  bad("magic", {0x50, 0x4B, 0x03, 0x04, 0, 0, 0, 0}, {"not an IDX file (bad magic)", "0x50 0x4b"});
  bad("type", {0, 0, 0x0A, 1, 0, 0, 0, 1, 5}, {"unknown IDX element type 0x0a"});
  bad("rank0", {0, 0, 0x08, 0}, {"declares 0 dimensions"});
  bad("rank7", idx_bytes(0x08, {1, 1, 1, 1, 1, 1, 1}, {1}), {"declares 7 dimensions"});
  bad("header", {0, 0, 0x08, 3, 0, 0, 0, 2}, {"truncated", "16-byte header", "8 bytes"});
  bad("data", idx_bytes(0x08, {60000, 28, 28}, Bytes(1234, 7)),
      {"truncated: header says 60000 x 28 x 28 bytes of data", "the file holds 1234"});
  bad("data32", idx_bytes(0x0C, {3}, Bytes(11, 1)), {"truncated", "3 int32 values", "12 bytes"});
  bad("extra", idx_bytes(0x08, {2, 2}, Bytes(6, 1)), {"trailing garbage", "2 bytes too many"});
  bad("huge", idx_bytes(0x0E, {0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF}, {1}), {"truncated"});

  write_bytes(dir / "labels", idx_bytes(0x08, {4}, {1, 2, 3, 12}));
  write_bytes(dir / "images", idx_bytes(0x08, {4, 1, 2}, Bytes(8, 9)));
  expect_io_error([&] { io::read_idx_images(dir / "labels"); },
                  {"expected images", "found a 1-D file (4)", "is this a labels file?"});
  expect_io_error([&] { io::read_idx_labels(dir / "images"); },
                  {"expected labels", "3-D file (4 x 1 x 2)", "is this an images file?"});
  write_bytes(dir / "fimages", idx_bytes(0x0D, {1, 1, 1}, {0x3F, 0x80, 0, 0}));
  expect_io_error([&] { io::read_idx_images(dir / "fimages"); },
                  {"images must be unsigned bytes", "float32 (0x0d)"});
  write_bytes(dir / "flabels", idx_bytes(0x0E, {1}, Bytes(8, 0x3F)));
  expect_io_error([&] { io::read_idx_labels(dir / "flabels"); }, {"labels must be integers"});

  const auto labels = io::read_idx_labels(dir / "labels");
  REQUIRE_THROWS_WITH(io::check_labels(dir / "labels", labels, 5, 10),
                      contains("label count 4 != image count 5"));
  REQUIRE_THROWS_WITH(io::check_labels(dir / "labels", labels, 4, 10),
                      contains("check_labels: " + (dir / "labels").string() +
                               ": label 12 at index 3 is out of range for 10 classes (0..9)"));
  CHECK_NOTHROW(io::check_labels(dir / "labels", labels, 4, 13));
  expect_io_error([&] { io::read_idx_dataset(dir / "images", dir / "labels", 10); },
                  {"label 12 at index 3"});

#if defined(FG_HAVE_ZLIB)
  Bytes gz = gz_labels_729;
  write_bytes(dir / "cut.gz", Bytes(gz.begin(), gz.begin() + 20));
  expect_io_error([&] { io::read_idx(dir / "cut.gz"); },
                  {"cut.gz", "truncated gzip file", "cut short"});
  gz[gz.size() - 6] ^= 0x40;  // the stored CRC of the data
  write_bytes(dir / "crc.gz", gz);
  expect_io_error([&] { io::read_idx(dir / "crc.gz"); }, {"crc.gz", "corrupt gzip data"});
  gz = gz_labels_729;
  gz[3] = 0xE0;  // reserved flag bits
  write_bytes(dir / "flags.gz", gz);
  expect_io_error([&] { io::read_idx(dir / "flags.gz"); }, {"corrupt gzip data"});
  gz = gz_labels_729;
  gz.insert(gz.end(), {'j', 'u', 'n', 'k'});
  write_bytes(dir / "junk.gz", gz);
  expect_io_error([&] { io::read_idx(dir / "junk.gz"); }, {"4 bytes of trailing data"});
  write_gzip(dir / "short.gz", idx_bytes(0x08, {5}, {1, 2}));
  expect_io_error([&] { io::read_idx(dir / "short.gz"); },
                  {"truncated", "the decompressed file holds 2"});
#endif
}

TEST_CASE("io: Fashion-MNIST from /usr/share/datasets, when present", "[io]") {
  const fs::path root = "/usr/share/datasets/fashion-mnist";
  if (!fs::exists(root / "train-images-idx3-ubyte.gz")) {
    WARN("skipped: " << root.string() << " has no train-images-idx3-ubyte.gz");
    return;
  }
#if !defined(FG_HAVE_ZLIB)
  expect_io_error([&] { io::read_idx_images(root / "train-images-idx3-ubyte.gz"); },
                  {"built without zlib"});
  WARN("skipped: fusegrad was built without zlib, and the data set is gzip-compressed");
  return;
#endif
  const auto train = io::read_idx_dataset(root / "train-images-idx3-ubyte.gz",
                                          root / "train-labels-idx1-ubyte.gz", 10);
  CHECK(fgtest::dims_of(train.images.shape()) == fgtest::Dims{60000, 784});
  CHECK(train.labels.size() == 60000);
  const auto x = train.images.to_vector();
  CHECK(*std::min_element(x.begin(), x.end()) == 0.0f);
  CHECK(*std::max_element(x.begin(), x.end()) == 1.0f);
  const auto y = train.labels.to_vector();
  std::vector<int> counts(10, 0);
  for (std::int32_t label : y) {
    ++counts[static_cast<std::size_t>(label)];
  }
  CHECK(counts == std::vector<int>(10, 6000));  // Fashion-MNIST is balanced
}

// ---------------------------------------------------------------------------------------------
// .npy

template <class T, int R>
void npy_round_trip(const TempDir& dir, std::mt19937& rng, const fg::Shape<R>& shape) {
  const double lo = std::is_same_v<T, std::uint8_t> ? 1 : std::is_integral_v<T> ? -1e9 : -1;
  const double hi = std::is_same_v<T, std::uint8_t> ? 255 : std::is_integral_v<T> ? 1e9 : 1;
  const auto t = fgtest::random_tensor<T, R>(shape, rng, lo, hi);
  const std::string name = std::string(fg::dtype_traits<T>::name) + "_r" + std::to_string(R) + "_" +
                           std::to_string(shape.size()) + ".npy";
  io::save_npy(dir / name, t);
  const auto back = io::load_npy<T, R>(dir / name);
  CHECK(back.shape() == t.shape());
  CHECK(back.to_vector() == t.to_vector());
  // NumPy's layout: magic, version 1.0, header padded with spaces to a multiple of 64, '\n'.
  const Bytes b = read_bytes(dir / name);
  REQUIRE(b.size() >= 10);
  CHECK(std::string(b.begin() + 1, b.begin() + 6) == "NUMPY");
  CHECK((b[6] == 1 && b[7] == 0));
  const std::size_t header = b[8] | std::size_t(b[9]) << 8;
  CHECK((10 + header) % 64 == 0);
  CHECK(b[10 + header - 1] == '\n');
  CHECK(b.size() == 10 + header + static_cast<std::size_t>(t.size()) * sizeof(T));
  const io::NpyArray a = io::read_npy(dir / name);
  CHECK(a.dtype == fg::dtype_traits<T>::name);
  CHECK(a.shape == fgtest::dims_of(shape));
}

template <class T>
void npy_round_trip_ranks(const TempDir& dir, std::mt19937& rng) {
  npy_round_trip<T, 0>(dir, rng, fg::Shape<0>());
  npy_round_trip<T, 1>(dir, rng, fg::Shape<1>({17}));
  npy_round_trip<T, 2>(dir, rng, fg::Shape<2>({3, 5}));
  npy_round_trip<T, 2>(dir, rng, fg::Shape<2>({0, 4}));
  npy_round_trip<T, 3>(dir, rng, fg::Shape<3>({2, 1, 7}));
  npy_round_trip<T, 4>(dir, rng, fg::Shape<4>({2, 3, 2, 5}));
}

TEST_CASE("io: npy round trip, every dtype, ranks 0 to 4", "[io]") {
  TempDir dir;
  std::mt19937 rng(1234);
  npy_round_trip_ranks<float>(dir, rng);
  npy_round_trip_ranks<double>(dir, rng);
  npy_round_trip_ranks<std::int32_t>(dir, rng);
  npy_round_trip_ranks<std::int64_t>(dir, rng);
  npy_round_trip_ranks<std::uint8_t>(dir, rng);
  npy_round_trip_ranks<bool>(dir, rng);
  // Saving over an existing file replaces it and leaves no temporary file behind.
  const auto a = fgtest::random_tensor<float, 1>(fg::Shape<1>({3}), rng);
  io::save_npy(dir / "same.npy", a);
  io::save_npy(dir / "same.npy", fgtest::random_tensor<float, 1>(fg::Shape<1>({9}), rng));
  CHECK(io::load_npy<float, 1>(dir / "same.npy").size() == 9);
  for (const auto& entry : fs::directory_iterator(dir.path)) {
    CHECK_THAT(entry.path().string(), !contains(".tmp."));
  }
}

// A .npy file with the given version, header text and data (the header is used as is).
inline Bytes npy_bytes(const std::string& header, const Bytes& data, int major = 1) {
  Bytes b = {0x93, 'N', 'U', 'M', 'P', 'Y', static_cast<std::uint8_t>(major), 0};
  const std::size_t n = header.size();
  b.push_back(static_cast<std::uint8_t>(n));
  b.push_back(static_cast<std::uint8_t>(n >> 8));
  if (major >= 2) {
    b.push_back(static_cast<std::uint8_t>(n >> 16));
    b.push_back(static_cast<std::uint8_t>(n >> 24));
  }
  b.insert(b.end(), header.begin(), header.end());
  b.insert(b.end(), data.begin(), data.end());
  return b;
}

TEST_CASE("io: npy headers in other spellings", "[io]") {
  TempDir dir;
  const Bytes f4_12 = {0, 0, 0x80, 0x3F, 0, 0, 0, 0x40};  // 1.0f, 2.0f
  write_bytes(dir / "a.npy",
              npy_bytes("{ \"shape\" : (2L, 1,),'fortran_order':False ,'descr':'<f4'}\n", f4_12));
  CHECK(io::load_npy<float, 2>(dir / "a.npy").to_vector() == std::vector<float>{1.0f, 2.0f});
  write_bytes(dir / "v2.npy",
              npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }  \n", f4_12, 2));
  CHECK(io::load_npy<float, 1>(dir / "v2.npy").to_vector() == std::vector<float>{1.0f, 2.0f});
  write_bytes(dir / "be.npy", npy_bytes("{'descr': '>i4', 'fortran_order': False, 'shape': (2,)}",
                                        {0xFF, 0xFF, 0xFF, 0xFE, 0, 0, 1, 2}));
  CHECK(io::load_npy<std::int32_t, 1>(dir / "be.npy").to_vector() ==
        std::vector<std::int32_t>{-2, 258});
  write_bytes(dir / "scalar.npy",
              npy_bytes("{'descr': '<u1', 'fortran_order': False, 'shape': ()}", {42}));
  CHECK(io::load_npy<std::uint8_t, 0>(dir / "scalar.npy").item() == 42);
  const io::NpyArray s = io::read_npy(dir / "scalar.npy");
  CHECK(s.descr == "<u1");
  CHECK(s.dtype == "uint8");
  CHECK(s.shape.empty());
}

TEST_CASE("io: npy bad input names the file and what is wrong", "[io]") {
  TempDir dir;
  expect_io_error([&] { io::load_npy<float, 1>(dir / "nope" / "w.npy"); },
                  {"load_npy: ", "w.npy", "does not exist"});
  expect_io_error([&] { io::read_npy(dir / "w.npy"); }, {"read_npy: ", "no such file"});
  const std::string good = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }\n";
  const Bytes data(24, 0x3F);
  const auto bad = [&](const std::string& name, const Bytes& content,
                       std::initializer_list<std::string> parts) {
    write_bytes(dir / name, content);
    expect_io_error([&] { io::load_npy<float, 2>(dir / name); }, parts);
  };
  bad("magic.npy", {'P', 'K', 3, 4, 0, 0, 0, 0, 0, 0}, {"magic.npy", "not a .npy file"});
  bad("short.npy", {0x93, 'N', 'U'}, {"truncated", "the magic"});
  const Bytes whole = npy_bytes(good, data);
  bad("cut.npy", Bytes(whole.begin(), whole.end() - 5),
      {"cut.npy", "truncated", "(2, 3) float32 (24 bytes of data)", "holds 19 bytes"});
  Bytes longer = whole;
  longer.push_back(1);
  bad("long.npy", longer, {"trailing garbage"});
  bad("hdr.npy", Bytes(whole.begin(), whole.begin() + 30), {"truncated", "the header"});
  bad("ver.npy", npy_bytes(good, data, 4), {"unsupported .npy format version 4.0"});
  bad("fortran.npy",
      npy_bytes("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }\n", data),
      {"Fortran", "np.ascontiguousarray"});
  bad("f2.npy", npy_bytes("{'descr': '<f2', 'fortran_order': False, 'shape': (2, 3), }", data),
      {"unsupported dtype '<f2'"});
  bad("rec.npy",
      npy_bytes("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2,), }", data),
      {"structured dtypes"});
  bad("nokey.npy", npy_bytes("{'descr': '<f4', 'shape': (2, 3), }", data),
      {"bad .npy header", "'fortran_order' is missing"});
  bad("key.npy",
      npy_bytes("{'descr': '<f4', 'x': 1, 'fortran_order': False, 'shape': (2, 3)}", data),
      {"unexpected key 'x'"});
  bad("shape.npy", npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (2, -3)}", data),
      {"non-negative integers"});
  bad("syntax.npy", npy_bytes("{'descr': '<f4' 'fortran_order': False}", data), {"expected"});
  bad("dtype.npy", npy_bytes("{'descr': '<i4', 'fortran_order': False, 'shape': (2, 3)}", data),
      {"holds int32 ('<i4') of shape (2, 3)", "asked for float32 rank 2"});
  bad("rank.npy", npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (6,)}", data),
      {"of shape (6,) (rank 1)", "asked for float32 rank 2"});
  write_bytes(dir / "bool.npy",
              npy_bytes("{'descr': '|b1', 'fortran_order': False, 'shape': (2,)}", {1, 2}));
  expect_io_error([&] { io::load_npy<bool, 1>(dir / "bool.npy"); }, {"holds the byte 2"});
  // Saving into a missing directory fails with the directory's name and creates nothing.
  const auto t = fg::from_host<float>({2}, std::span<const float>(std::vector<float>{1, 2}));
  expect_io_error([&] { io::save_npy(dir / "nope" / "w.npy", t); },
                  {"save_npy: ", "temporary file", "does not exist"});
  CHECK_FALSE(fs::exists(dir / "nope"));
}

// ---------------------------------------------------------------------------------------------
// Checkpoints

struct Model {  // a small model's parameters and optimizer state
  fg::Tensor<float, 2> w1, m_w1;
  fg::Tensor<double, 1> b1;
  fg::Tensor<std::int64_t, 0> step;
  fg::Tensor<std::int32_t, 3> table;
  fg::Tensor<std::uint8_t, 1> mask;
  fg::Tensor<bool, 2> flags;
  fg::Tensor<float, 2> empty;

  explicit Model(std::mt19937& rng, index_t hidden = 5)
      : w1(fgtest::random_tensor<float, 2>(fg::Shape<2>({4, hidden}), rng)),
        m_w1(fgtest::random_tensor<float, 2>(fg::Shape<2>({4, hidden}), rng)),
        b1(fgtest::random_tensor<double, 1>(fg::Shape<1>({hidden}), rng)),
        step(fgtest::random_tensor<std::int64_t, 0>(fg::Shape<0>(), rng, 1, 1e12)),
        table(fgtest::random_tensor<std::int32_t, 3>(fg::Shape<3>({2, 3, 2}), rng, -1e9, 1e9)),
        mask(fgtest::random_tensor<std::uint8_t, 1>(fg::Shape<1>({6}), rng, 1, 255)),
        flags(fgtest::random_tensor<bool, 2>(fg::Shape<2>({3, 3}), rng)),
        empty(fg::Shape<2>({0, 3})) {}

  io::Checkpoint checkpoint() const {
    io::Checkpoint c;
    c.put_all(io::named("w1", w1), io::named("adam.m.w1", m_w1), io::named("b1", b1),
              io::named("step", step), io::named("table", table), io::named("mask", mask),
              io::named("flags", flags), io::named("empty", empty));
    c.put_meta("epoch", 3);
    c.put_meta("lr", 1e-3);
    c.put_meta("optimizer", "adam");
    c.put_meta("seed", std::int64_t{-1} << 40);
    return c;
  }
  void load(const io::Checkpoint& c) {
    c.get_all(io::named("w1", w1), io::named("adam.m.w1", m_w1), io::named("b1", b1),
              io::named("step", step), io::named("table", table), io::named("mask", mask),
              io::named("flags", flags), io::named("empty", empty));
  }
  bool same_as(const Model& o) const {
    return w1.to_vector() == o.w1.to_vector() && m_w1.to_vector() == o.m_w1.to_vector() &&
           b1.to_vector() == o.b1.to_vector() && step.item() == o.step.item() &&
           table.to_vector() == o.table.to_vector() && mask.to_vector() == o.mask.to_vector() &&
           flags.to_vector() == o.flags.to_vector() && empty.shape() == o.empty.shape();
  }
};

TEST_CASE("io: checkpoint round trip", "[io]") {
  TempDir dir;
  std::mt19937 rng(99);
  const Model saved(rng);
  io::save_checkpoint(dir / "run.fgc", saved.checkpoint());
  const io::Checkpoint c = io::load_checkpoint(dir / "run.fgc");
  CHECK(c.source() == dir / "run.fgc");
  CHECK(c.tensors().size() == 8);
  CHECK(c.tensors()[1].name == "adam.m.w1");
  CHECK(c.tensors()[2].dtype == "float64");
  CHECK(c.meta<int>("epoch") == 3);
  CHECK(c.meta<double>("lr") == 1e-3);
  CHECK(c.meta<double>("epoch") == 3.0);
  CHECK(c.meta<std::string>("optimizer") == "adam");
  CHECK(c.meta<std::int64_t>("seed") == std::int64_t{-1} << 40);
  Model loaded(rng);
  REQUIRE_FALSE(loaded.same_as(saved));
  loaded.load(c);
  CHECK(loaded.same_as(saved));
  const auto w1 = c.tensor<float, 2>("w1");
  CHECK(w1.to_vector() == saved.w1.to_vector());

  const std::string file = (dir / "run.fgc").string();
  expect_io_error([&] { c.meta<int>("epochs"); },
                  {"meta: " + file, "no metadata 'epochs'", "epoch, lr, optimizer, seed"});
  expect_io_error([&] { c.meta<int>("optimizer"); }, {"'optimizer' is a string"});
  expect_io_error([&] { c.meta<std::int8_t>("seed"); }, {"out of range"});
  expect_io_error([&] { c.meta<std::string>("lr"); }, {"'lr' is a number, not a string"});

  // put() replaces a tensor of the same name in place; a checkpoint in memory says so in errors.
  io::Checkpoint m = saved.checkpoint();
  m.put("w1", saved.b1);
  CHECK(m.tensors().size() == 8);
  CHECK(m.tensors()[0].dtype == "float64");
  fg::Tensor<float, 2> target({4, 5});
  expect_io_error([&] { m.get("w1", target); }, {"(checkpoint in memory)"});

  // An empty checkpoint round-trips too.
  io::save_checkpoint(dir / "empty.fgc", io::Checkpoint());
  CHECK(io::load_checkpoint(dir / "empty.fgc").tensors().empty());
}

TEST_CASE("io: loading another model's shapes changes nothing", "[io]") {
  TempDir dir;
  std::mt19937 rng(7);
  io::save_checkpoint(dir / "small.fgc", Model(rng, 5).checkpoint());
  const io::Checkpoint c = io::load_checkpoint(dir / "small.fgc");
  Model bigger(rng, 8);
  const Model before = bigger;
  expect_io_error([&] { bigger.load(c); },
                  {"get_all: " + (dir / "small.fgc").string(), "nothing was loaded",
                   "tensor 'w1' is float32 [4, 5] in the checkpoint, but the target is "
                   "float32 [4, 8]",
                   "tensor 'b1' is float64 [5] in the checkpoint, but the target is float64 [8]"});
  CHECK(bigger.same_as(before));
  // Only the last tensor differs, or is missing: the first, which matches, is not loaded either.
  fg::Tensor<float, 2> w1 = fgtest::random_tensor<float, 2>(fg::Shape<2>({4, 5}), rng);
  const std::vector<float> w1_before = w1.to_vector();
  fg::Tensor<double, 2> b1({1, 5});
  expect_io_error(
      [&] { c.get_all(io::named("w1", w1), io::named("b1", b1)); },
      {"tensor 'b1' is float64 [5] in the checkpoint, but the target is float64 [1, 5]"});
  CHECK(w1.to_vector() == w1_before);
  fg::Tensor<float, 2> w2({4, 5});
  expect_io_error([&] { c.get_all(io::named("w1", w1), io::named("w2", w2)); },
                  {"tensor 'w2' (float32 [4, 5]) is not in the checkpoint", "it holds: w1, "});
  CHECK(w1.to_vector() == w1_before);
  c.get_all(io::named("w1", w1));
  CHECK(w1.to_vector() != w1_before);
  fg::Tensor<double, 2> wrong_dtype({4, 5});
  expect_io_error([&] { c.get("w1", wrong_dtype); },
                  {"get: ",
                   "'w1' is float32 [4, 5] in the checkpoint, but the target is "
                   "float64 [4, 5]"});
  expect_io_error([&] { c.tensor<float, 1>("w1"); },
                  {"tensor: ", "'w1' is float32 [4, 5] in the checkpoint, but float32 of rank 1"});
  expect_io_error([&] { c.tensor<float, 1>("w9"); },
                  {"'w9' (float32 [0]) is not in the checkpoint"});
}

TEST_CASE("io: a corrupt or truncated checkpoint is detected", "[io]") {
  TempDir dir;
  std::mt19937 rng(3);
  io::Checkpoint c;
  c.put("w", fgtest::random_tensor<float, 2>(fg::Shape<2>({3, 4}), rng));
  c.put("n", fgtest::random_tensor<std::int64_t, 1>(fg::Shape<1>({2}), rng, -100, 100));
  c.put_meta("epoch", 12);
  c.put_meta("name", "mlp");
  io::save_checkpoint(dir / "good.fgc", c);
  const Bytes good = read_bytes(dir / "good.fgc");
  REQUIRE(good.size() > 100);
  const fs::path bad = dir / "bad.fgc";

  // Every flipped byte is detected: by the magic, the trailer or the checksum.
  int detected = 0;
  for (std::size_t i = 0; i < good.size(); ++i) {
    Bytes b = good;
    b[i] ^= static_cast<std::uint8_t>(1u << (i % 8));
    write_bytes(bad, b);
    try {
      io::load_checkpoint(bad);
      FAIL("a flipped byte at offset " << i << " was not detected");
    } catch (const fg::io_error& e) {
      const std::string m = e.what();
      const bool named = m.find("checksum mismatch") != std::string::npos ||
                         m.find("bad magic") != std::string::npos ||
                         m.find("valid trailer") != std::string::npos;
      CHECK(named);
      detected += named;
    }
  }
  CHECK(detected == static_cast<int>(good.size()));
  Bytes flipped = good;
  flipped[good.size() / 2] ^= 0x10;
  write_bytes(bad, flipped);
  REQUIRE_THROWS_WITH(
      io::load_checkpoint(bad),
      contains("load_checkpoint: " + bad.string() + ": checksum mismatch: the file is corrupt"));

  // Cut at many lengths: never loaded, always "truncated".
  for (std::size_t n : {std::size_t(0), std::size_t(1), std::size_t(7), std::size_t(8),
                        std::size_t(20), std::size_t(39), std::size_t(40), good.size() / 2,
                        good.size() - 16, good.size() - 5, good.size() - 1}) {
    write_bytes(bad, Bytes(good.begin(), good.begin() + static_cast<std::ptrdiff_t>(n)));
    INFO("cut to " << n << " bytes");
    expect_io_error([&] { io::load_checkpoint(bad); }, {"load_checkpoint: ", "truncated"});
  }
  Bytes longer = good;
  longer.push_back(0);
  write_bytes(bad, longer);
  expect_io_error([&] { io::load_checkpoint(bad); }, {"valid trailer"});

  // Not a checkpoint at all.
  io::save_npy(dir / "w.npy", fgtest::random_tensor<float, 1>(fg::Shape<1>({30}), rng));
  expect_io_error([&] { io::load_checkpoint(dir / "w.npy"); },
                  {"not a fusegrad checkpoint (bad magic)"});
  expect_io_error([&] { io::load_checkpoint(dir / "missing.fgc"); }, {"no such file"});

  // A valid checksum over bad content (a newer version, a huge length): clear errors, and no
  // allocation of the size a corrupt field claims.
  const auto resealed = [&](Bytes b) {
    const std::uint32_t crc = io::crc32(std::as_bytes(std::span(b)).first(b.size() - 8));
    std::memcpy(b.data() + b.size() - 8, &crc, 4);
    return b;
  };
  Bytes v2 = good;
  v2[8] = 2;
  write_bytes(bad, resealed(v2));
  expect_io_error([&] { io::load_checkpoint(bad); }, {"unsupported checkpoint format version 2"});
  Bytes huge_key = good;
  huge_key[24 + 3] = 0x7F;  // the first metadata key's length: ~2 GiB
  write_bytes(bad, resealed(huge_key));
  expect_io_error([&] { io::load_checkpoint(bad); }, {"truncated", "a metadata key"});
}

#if defined(__linux__)
// Lowers this process's file-size limit (and ignores SIGXFSZ) for its lifetime.
struct FileSizeLimit {
  rlimit saved{};
  void (*saved_handler)(int) = nullptr;
  explicit FileSizeLimit(rlim_t bytes) {
    getrlimit(RLIMIT_FSIZE, &saved);
    saved_handler = std::signal(SIGXFSZ, SIG_IGN);
    rlimit lowered = saved;
    lowered.rlim_cur = bytes;
    setrlimit(RLIMIT_FSIZE, &lowered);
  }
  ~FileSizeLimit() {
    setrlimit(RLIMIT_FSIZE, &saved);
    std::signal(SIGXFSZ, saved_handler);
  }
};
#endif

TEST_CASE("io: a failed save leaves the existing checkpoint untouched", "[io]") {
  TempDir dir;
  std::mt19937 rng(11);
  const fs::path path = dir / "model.fgc";
  io::save_checkpoint(path, Model(rng).checkpoint());
  const Bytes before = read_bytes(path);
  const auto only_the_checkpoint = [&] {
    int files = 0;
    for (const auto& entry : fs::directory_iterator(dir.path)) {
      CHECK(entry.path() == path);
      ++files;
    }
    CHECK(files == 1);
  };

  // The write itself fails half way (the file-size limit stands in for a full disk).
  io::Checkpoint big;
  big.put("w", fgtest::random_tensor<float, 2>(fg::Shape<2>({256, 256}), rng));
#if defined(__linux__)
  {
    FileSizeLimit limit(before.size() + 1000);
    expect_io_error([&] { io::save_checkpoint(path, big); },
                    {"save_checkpoint: " + path.string(), "writing the temporary file failed",
                     "nothing was written to"});
  }
  CHECK(read_bytes(path) == before);
  only_the_checkpoint();
#endif

  // The target is a directory; the parent is a file; the parent is missing.
  fs::create_directory(dir / "a-directory");
  expect_io_error([&] { io::save_checkpoint(dir / "a-directory", big); }, {"is a directory"});
  fs::remove(dir / "a-directory");
  expect_io_error([&] { io::save_checkpoint(path / "inside.fgc", big); },
                  {"cannot create the temporary file", "is a file, not a directory"});
  expect_io_error([&] { io::save_checkpoint(dir / "gone" / "x.fgc", big); },
                  {"the directory " + (dir / "gone").string() + " does not exist"});
  CHECK(read_bytes(path) == before);
  only_the_checkpoint();
  CHECK(io::load_checkpoint(path).tensors().size() == 8);

  // A successful save replaces it.
  io::save_checkpoint(path, big);
  CHECK(io::load_checkpoint(path).tensors().size() == 1);
  only_the_checkpoint();
}

// ---------------------------------------------------------------------------------------------
// NumPy interchange, driven by tests/io/npy_check.py (which sets FG_NPY_DIR). Element i of every
// array is the same formula in both programs.

template <class T>
T npy_value(std::size_t i) {
  const auto k = static_cast<std::int64_t>(i);
  if constexpr (std::is_same_v<T, bool>) {
    return i % 3 == 0;
  } else if constexpr (std::is_same_v<T, std::uint8_t>) {
    return static_cast<T>(k * 37 % 256);
  } else if constexpr (std::is_same_v<T, std::int32_t>) {
    return static_cast<T>(k * 7919 % 20011 - 10000);
  } else if constexpr (std::is_same_v<T, std::int64_t>) {
    return (k * 7919 % 20011 - 10000) * 3000000000LL;
  } else {
    return static_cast<T>(static_cast<double>(k * 37 % 101 - 50) * 0.125);
  }
}

template <class T, int R>
void npy_exchange(const fs::path& dir, const std::string& name, const fg::Shape<R>& shape) {
  INFO(name);
  const auto n = static_cast<std::size_t>(shape.size());
  std::vector<T> expected;
  for (std::size_t i = 0; i < n; ++i) {
    expected.push_back(npy_value<T>(i));
  }
  const auto from_numpy = io::load_npy<T, R>(dir / "from_numpy" / (name + ".npy"));
  CHECK(from_numpy.shape() == shape);
  CHECK(from_numpy.to_vector() == expected);
  fg::Tensor<T, R> t(shape);
  if constexpr (std::is_same_v<T, bool>) {
    const std::unique_ptr<bool[]> host(new bool[n + 1]);
    std::copy(expected.begin(), expected.end(), host.get());
    t.copy_from(std::span<const bool>(host.get(), n));
  } else {
    t.copy_from(std::span<const T>(expected));
  }
  io::save_npy(dir / "from_fusegrad" / (name + ".npy"), t);
}

TEST_CASE("io: npy files exchanged with NumPy", "[.][npy_numpy]") {
  const char* env = std::getenv("FG_NPY_DIR");
  if (env == nullptr) {
    WARN("skipped: FG_NPY_DIR is not set (tests/io/npy_check.py sets it)");
    return;
  }
  const fs::path dir = env;
  fs::create_directories(dir / "from_fusegrad");
  npy_exchange<float, 2>(dir, "f4_2x3", fg::Shape<2>({2, 3}));
  npy_exchange<double, 3>(dir, "f8_3x1x2", fg::Shape<3>({3, 1, 2}));
  npy_exchange<std::int32_t, 1>(dir, "i4_5", fg::Shape<1>({5}));
  npy_exchange<std::int64_t, 4>(dir, "i8_2x2x2x2", fg::Shape<4>({2, 2, 2, 2}));
  npy_exchange<std::uint8_t, 2>(dir, "u1_4x4", fg::Shape<2>({4, 4}));
  npy_exchange<bool, 1>(dir, "b1_7", fg::Shape<1>({7}));
  npy_exchange<double, 0>(dir, "f8_scalar", fg::Shape<0>());
  npy_exchange<float, 2>(dir, "f4_v2_3x4", fg::Shape<2>({3, 4}));
  npy_exchange<double, 2>(dir, "f8_big_2x3", fg::Shape<2>({2, 3}));
  npy_exchange<std::int32_t, 2>(dir, "i4_empty_0x3", fg::Shape<2>({0, 3}));
  expect_io_error([&] { io::load_npy<float, 2>(dir / "from_numpy" / "f4_fortran_2x3.npy"); },
                  {"Fortran"});
}

}  // namespace test_io
