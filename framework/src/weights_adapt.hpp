// The geometry adaptations of weights_load.hpp, as plain tensor functions (tested directly in
// tests/unit/test_weights_adapt.cpp). Each returns a new contiguous float32 tensor.
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>

#include "patchbay/export.hpp"
#include "patchbay/plugin_kinds.hpp"

namespace patchbay::adapt {

// [to, from] matrix M with M[j, i] = from x |[j/to, (j+1)/to) ∩ [i/from, (i+1)/from)|: a vector
// v of `from` cells becomes M v of `to` cells whose sum equals v's (the cells as a piecewise
// constant function on [0, 1), averaged over the new cells and scaled by from / to).
PATCHBAY_API at::Tensor overlap_matrix(int64_t from, int64_t to);

// Conv2d kernel [D, C, kf, kt] -> [D, C, pf, pt] (see weights_load.hpp); `how` receives one
// sentence for the report.
PATCHBAY_API at::Tensor resize_patch_kernel(const at::Tensor& kernel, int64_t pf, int64_t pt, std::string& how);

// Positional grid [R, C, D] -> [rows, cols, D]: rows == 1 < R averages the rows first, then
// bilinear interpolation (align_corners = false) to (rows, cols); as is when equal.
PATCHBAY_API at::Tensor resize_grid_positions(const at::Tensor& grid, int64_t rows, int64_t cols);

// A [1, S + N, D] positional embedding split by `layout` into its special rows [S, D] and its
// grid rows [N, D]; join is the inverse for the new N.
struct SplitPositions {
  at::Tensor special, grid;
};
PATCHBAY_API SplitPositions split_positions(const at::Tensor& pos, const WeightLayout& layout);
PATCHBAY_API at::Tensor join_positions(const at::Tensor& special, const at::Tensor& grid, const WeightLayout& layout);

}  // namespace patchbay::adapt
