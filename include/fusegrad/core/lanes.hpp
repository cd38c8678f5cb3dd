// fusegrad/core/lanes.hpp — Lanes<T, V>: V consecutive elements held in registers, and their
// loads and stores as whole machine words (128 bits at a time on CUDA: ld.global.v4 /
// st.global.v4).
//
// The contiguous fast path of an element-wise kernel moves `lanes_for<T>` elements per step when
// every pointer it touches is aligned to a whole step (checked at run time); the elements past the
// last whole step take the scalar path in the same kernel.
#pragma once

#include <cstdint>
#include <cstring>

#include "fusegrad/core/config.hpp"

namespace fusegrad {

/// V consecutive elements.
template <class T, int V>
struct Lanes {
  T v[V];
};

/// Elements per step for an output of type T: 16 bytes' worth, between 2 and 8.
template <class T>
inline constexpr int lanes_for = sizeof(T) >= 8 ? 2 : (sizeof(T) <= 2 ? 8 : 16 / static_cast<int>(sizeof(T)));

/// Whether `p` is aligned to a whole step of `lanes` elements of T.
template <class T>
bool lanes_aligned_ptr(const T* p, int lanes) {
  return reinterpret_cast<std::uintptr_t>(p) % (sizeof(T) * static_cast<std::size_t>(lanes)) == 0;
}

namespace detail {

#if defined(__CUDACC__)
/// The machine word a step of `Bytes` bytes moves in (16 bytes: four 32-bit lanes at once).
template <int Bytes>
struct LaneWord;
template <> struct LaneWord<16> { using type = uint4; };
template <> struct LaneWord<8> { using type = uint2; };
template <> struct LaneWord<4> { using type = unsigned int; };
template <> struct LaneWord<2> { using type = unsigned short; };
template <> struct LaneWord<1> { using type = unsigned char; };

template <int Bytes>
inline constexpr int lane_word_bytes = Bytes % 16 == 0 ? 16 : Bytes;
#endif

}  // namespace detail

/// p[0..V): whole words, at most 16 bytes each. @pre p is aligned to V * sizeof(T).
template <int V, class T>
FG_HOST_DEVICE Lanes<T, V> load_lanes(const T* p) {
  constexpr int bytes = V * static_cast<int>(sizeof(T));
  Lanes<T, V> r;
#if defined(__CUDA_ARCH__)
  constexpr int word_bytes = detail::lane_word_bytes<bytes>;
  using Word = typename detail::LaneWord<word_bytes>::type;
  constexpr int words = bytes / word_bytes;
  const Word* src = reinterpret_cast<const Word*>(p);
  Word w[words];
  FG_UNROLL for (int j = 0; j < words; ++j) {
    w[j] = __ldca(src + j);  // ld.global.ca: the default caching, explicitly in global space
  }
  memcpy(&r, w, bytes);
#else
  memcpy(&r, p, bytes);
#endif
  return r;
}

/// p[0..V) = l: whole words, at most 16 bytes each. @pre p is aligned to V * sizeof(T).
template <int V, class T>
FG_HOST_DEVICE void store_lanes(T* p, const Lanes<T, V>& l) {
  constexpr int bytes = V * static_cast<int>(sizeof(T));
#if defined(__CUDA_ARCH__)
  constexpr int word_bytes = detail::lane_word_bytes<bytes>;
  using Word = typename detail::LaneWord<word_bytes>::type;
  constexpr int words = bytes / word_bytes;
  Word w[words];
  memcpy(w, &l, bytes);
  Word* dst = reinterpret_cast<Word*>(p);
  FG_UNROLL for (int j = 0; j < words; ++j) {
    __stwb(dst + j, w[j]);  // st.global.wb: the default write-back store, in global space
  }
#else
  memcpy(p, &l, bytes);
#endif
}

}  // namespace fusegrad
