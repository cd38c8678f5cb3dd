// fusegrad/io/error.hpp — io_error: what every fusegrad/io function throws for a bad file.
//
// The message always reads `<function>: <file>: <what is wrong>`, e.g.
// `read_idx: /data/train-images-idx3-ubyte.gz: truncated: header says 60000 x 28 x 28 bytes of
// data (47040000 bytes), the file holds 1234 after its 16-byte header`.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>

#include "fusegrad/core/error.hpp"

namespace fusegrad {

/// A file could not be read or written, or its contents are not what the reader expects (missing
/// file, wrong magic, truncated data, checksum mismatch, another model's shapes). Thrown before
/// anything the caller owns is modified.
/// Example: `try { io::load_checkpoint("run.fgc"); } catch (const fusegrad::io_error& e) { ... }`
struct io_error : error {
  using error::error;
  /// `io_error("load_npy", "w.npy", "bad magic")` reads `load_npy: w.npy: bad magic`.
  io_error(std::string_view function, const std::filesystem::path& file, std::string_view what)
      : error(std::string(function) + ": " + file.string() + ": " + std::string(what)) {}
};

}  // namespace fusegrad
