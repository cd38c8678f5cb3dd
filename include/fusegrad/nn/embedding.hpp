// fusegrad/nn/embedding.hpp — rows of a table gathered by integer ids, and the Embedding layer.
//
//   embedding(table, ids)   out[i..., d] = table[ids[i...], d]      table (V, D), ids (...) -> (..., D)
//   Embedding<T>(V, D, seed, stddev)   table ~ N(0, stddev²) (PyTorch: stddev 1; GPT-2: 0.02);
//                                      field "weight"
//
// Forward: element-wise (the gather fuses into its consumer: `embedding(wte, x) + embedding(wpe,
// pos)` is one kernel). Backward for the table: a deterministic scatter-add. The positions of each
// id are listed in order (a counting sort of the ids, on the host), then one kernel sums, for every
// (row v, column d), the gradient rows of v's positions in that order: the same bits on every run
// and thread count, no atomics.
// Ids outside [0, V): on the host backend `embedding()` reads the ids (a copy of a tensor's memory;
// one kernel for an expression of ids) and throws before anything runs, naming the id, its
// position and V. On CUDA the check runs on the device, inside the gather (reading the ids on the
// host would cost a synchronisation per step): the rows come out NaN, the kernel records the
// first bad id and its position, and the next synchronisation — reading the loss, the backward
// pass's id sort, synchronize() — throws `error` with the same words; the backward pass skips
// those rows.
// Limits (CUDA): the backward pass copies the ids to the host to sort them (a synchronisation per
// step, not capturable in a CUDA graph).
#pragma once

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "fusegrad/eval/assign.hpp"
#include "fusegrad/expr/elementwise.hpp"
#include "fusegrad/nn/init.hpp"

namespace fusegrad::inline FG_BACKEND_NS {

namespace nn {

/// table[ids[i...], d]; NaN for an id outside the table.
template <class Tb, class Ids>
struct EmbeddingGather : ExprBase<EmbeddingGather<Tb, Ids>> {
  using value_type = typename Tb::value_type;
  static constexpr int rank = Ids::rank + 1;
  static constexpr bool may_be_linear = false;
  Tb table;
  Ids ids;
  Shape<rank> extents;
  index_t rows = 0;  // the table's (device code cannot ask a node for its shape)
  backend::detail::DeviceFault* fault = nullptr;  // CUDA: where a bad id is reported

  Shape<rank> shape() const { return extents; }
  FG_HOST_DEVICE value_type at(const Shape<rank>& index) const {
    Shape<Ids::rank> position;
    FG_UNROLL for (int i = 0; i < Ids::rank; ++i) { position[i] = index[i]; }
    const auto id = static_cast<index_t>(ids.at(position));
    if (id < 0 || id >= rows) {
#if defined(__CUDA_ARCH__)
      if (index[rank - 1] == 0) {
        long long flat = 0;
        FG_UNROLL for (int i = 0; i < Ids::rank; ++i) { flat = flat * extents[i] + position[i]; }
        backend::detail::report_fault(fault, "embedding", "rows of the table", id, flat, rows);
      }
#endif
      return std::numeric_limits<value_type>::quiet_NaN();
    }
    return static_cast<value_type>(table.at(Shape<2>({id, index[rank - 1]})));
  }
  bool linear() const { return false; }
  template <class Plan>
  auto prepare(Plan& plan) const {
    auto pt = table.prepare(plan);
    auto pi = ids.prepare(plan);
    return EmbeddingGather<decltype(pt), decltype(pi)>{{}, pt, pi, extents, rows, fault};
  }
  bool conflicts_with(const void* b, const void* e, bool) const {
    return table.conflicts_with(b, e, false) || ids.conflicts_with(b, e, false);
  }
};

/// The table's gradient: out[v, d] = Σ_k g[positions[k]..., d] over k in [offsets[v], offsets[v+1]),
/// positions listed in increasing order (flat C-order positions in the ids' shape).
template <class G>
struct EmbeddingGrad : ExprBase<EmbeddingGrad<G>> {
  using value_type = typename G::value_type;
  static constexpr int rank = 2;
  static constexpr bool may_be_linear = false;
  G g;
  Leaf<std::int64_t, 1> offsets;    // (V + 1)
  Leaf<std::int64_t, 1> positions;  // (number of ids in range)
  Shape<2> extents;                 // (V, D)
  Shape<G::rank> ids_shape;         // g's shape: the ids' shape, then D

  Shape<2> shape() const { return extents; }
  FG_HOST_DEVICE value_type at(const Shape<2>& index) const {
    value_type total(0);
    const auto end = static_cast<index_t>(offsets.at(Shape<1>({index[0] + 1})));
    for (auto k = static_cast<index_t>(offsets.at(Shape<1>({index[0]}))); k < end; ++k) {
      auto p = static_cast<index_t>(positions.at(Shape<1>({k})));
      Shape<G::rank> gi;
      gi[G::rank - 1] = index[1];
      FG_UNROLL for (int i = G::rank - 2; i >= 0; --i) {
        gi[i] = p % ids_shape[i];
        p /= ids_shape[i];
      }
      total += static_cast<value_type>(g.at(gi));
    }
    return total;
  }
  bool linear() const { return false; }
  template <class Plan>
  auto prepare(Plan& plan) const {
    auto pg = g.prepare(plan);
    return EmbeddingGrad<decltype(pg)>{{}, pg, offsets, positions, extents, ids_shape};
  }
  bool conflicts_with(const void* b, const void* e, bool) const {
    return g.conflicts_with(b, e, false) || offsets.conflicts_with(b, e, false) ||
           positions.conflicts_with(b, e, false);
  }
};

namespace detail {
/// The ids' values on the host, C order: a copy of the memory of contiguous tensor ids (no
/// kernel), else their evaluation (one kernel).
template <class Ids>
std::vector<typename Ids::value_type> host_ids(const Ids& ids) {
  using V = typename Ids::value_type;
  if constexpr (is_leaf<Ids>::value) {
    if constexpr (std::is_same_v<typename Ids::storage_type, V>) {
      if (ids.contiguous()) {
        std::vector<V> out(static_cast<std::size_t>(ids.shape().size()));
        backend::copy_to_host(out.data(), ids.data, out.size() * sizeof(V));
        return out;
      }
    }
  }
  return evaluate(ids).to_vector();
}
}  // namespace detail

/// Rows of `table` (V, D) gathered by integer `ids` of any shape: the result has the ids' shape
/// plus D. Example: `auto x = fg::nn::embedding(wte, tokens) + fg::nn::embedding(wpe, positions);`
template <tensor_expression T, tensor_expression I>
auto embedding(const T& table, const I& ids) {
  auto tb = as_node(table);
  auto in = as_node(ids);
  using Tb = decltype(tb);
  using Ids = decltype(in);
  static_assert(Tb::rank == 2, "embedding: the table has rank 2 (rows, features)");
  static_assert(std::is_integral_v<typename Ids::value_type> && !std::is_same_v<typename Ids::value_type, bool>,
                "embedding: ids must be integers (row indices), e.g. Tensor<int, 2>");
  static_assert(std::is_floating_point_v<typename Tb::value_type>, "embedding: the table must be floating point");
  const index_t rows = tb.shape()[0];
#if !defined(FG_BACKEND_CUDA)
  // Host memory: check every id before anything runs.
  const auto values = detail::host_ids(in);
  for (std::size_t p = 0; p < values.size(); ++p) {
    const auto id = static_cast<index_t>(values[p]);
    if (id < 0 || id >= rows) {
      throw error("embedding: id " + std::to_string(id) + " at position " + std::to_string(p) +
                  " (C order in ids of shape " + to_string(in.shape()) + ") is outside the table's " +
                  std::to_string(rows) + " rows");
    }
  }
#endif
  Shape<Ids::rank + 1> out;
  for (int i = 0; i < Ids::rank; ++i) {
    out[i] = in.shape()[i];
  }
  out[Ids::rank] = tb.shape()[1];
#if defined(FG_BACKEND_CUDA)
  return EmbeddingGather<Tb, Ids>{{}, tb, in, out, rows, backend::detail::device_fault_slot()};
#else
  return EmbeddingGather<Tb, Ids>{{}, tb, in, out, rows};
#endif
}

/// A token-embedding table (V, D) drawn from N(0, stddev²) (PyTorch's nn.Embedding: stddev 1;
/// GPT-2: 0.02). Its field, for optimizers and checkpoints, is "weight".
/// Example: `fg::nn::Embedding<float> wte(65, 128, /*seed*/ 1, 0.02f); auto x = wte(tokens);`
template <class T = float>
struct Embedding {
  Tensor<T, 2> weight;  // (V, D)

  Embedding(index_t rows, index_t features, std::uint64_t seed, T stddev = T(1))
      : weight(normal<T>(Shape<2>({rows, features}), T(0), stddev, seed)) {}

  void fields(auto& f) { f("weight", weight); }

  template <tensor_expression I>
  auto operator()(const I& ids) const {
    return embedding(weight, ids);
  }
};

// ---- autodiff hooks (see autodiff/record.hpp and rules.hpp) --------------------------------

template <class Tb, class Ids, class Tp>
auto record(const EmbeddingGather<Tb, Ids>& e, Tp& tape) {
  auto t = record(e.table, tape);
  auto i = record(e.ids, tape);
  return EmbeddingGather<decltype(t), decltype(i)>{{}, t, i, e.extents, e.rows, e.fault};
}
template <class Tb, class Ids, class Tp>
bool depends(const EmbeddingGather<Tb, Ids>& e, const Tp& tape) {
  return depends(e.table, tape);
}
template <class Tb, class Ids>
bool same(const EmbeddingGather<Tb, Ids>& a, const EmbeddingGather<Tb, Ids>& b) {
  return same(a.table, b.table) && same(a.ids, b.ids);
}
/// The table gets the deterministic scatter-add of g (see the file comment); the ids get nothing.
template <class Tb, class Ids, class G, class Tp>
void backprop(const EmbeddingGather<Tb, Ids>& e, const G& g, Tp& tape) {
  if (!depends(e.table, tape)) {
    return;
  }
  const index_t rows = e.table.shape()[0];
  const auto values = detail::host_ids(e.ids);
  // Counting sort of the positions by id (stable: positions stay in increasing order).
  std::vector<std::int64_t> offsets(static_cast<std::size_t>(rows) + 1, 0);
  for (const auto v : values) {
    const auto id = static_cast<index_t>(v);
    if (id >= 0 && id < rows) {
      ++offsets[static_cast<std::size_t>(id) + 1];
    }
  }
  for (std::size_t v = 0; v < static_cast<std::size_t>(rows); ++v) {
    offsets[v + 1] += offsets[v];
  }
  std::vector<std::int64_t> positions(static_cast<std::size_t>(offsets.back()));
  std::vector<std::int64_t> next(offsets.begin(), offsets.end() - 1);
  for (std::size_t p = 0; p < values.size(); ++p) {
    const auto id = static_cast<index_t>(values[p]);
    if (id >= 0 && id < rows) {
      positions[static_cast<std::size_t>(next[static_cast<std::size_t>(id)]++)] = static_cast<std::int64_t>(p);
    }
  }
  Tensor<std::int64_t, 1> offsets_t(Shape<1>({rows + 1}));
  offsets_t.copy_from(std::span<const std::int64_t>(offsets));
  Tensor<std::int64_t, 1> positions_t(Shape<1>({static_cast<index_t>(positions.size())}));
  positions_t.copy_from(std::span<const std::int64_t>(positions));
  const auto gn = as_node(g);
  backprop(e.table,
           EmbeddingGrad<decltype(gn)>{{}, gn, tape.keep(std::move(offsets_t)), tape.keep(std::move(positions_t)),
                                       e.table.shape(), gn.shape()},
           tape);
}

}  // namespace nn

}  // namespace fusegrad::inline FG_BACKEND_NS
