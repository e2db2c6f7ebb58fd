#include "weights_adapt.hpp"

#include <algorithm>

#include <ATen/ATen.h>
#include <fmt/format.h>

namespace patchbay::adapt {

at::Tensor overlap_matrix(int64_t from, int64_t to) {
  at::Tensor m = at::zeros({to, from}, at::kDouble);
  auto a = m.accessor<double, 2>();
  for (int64_t j = 0; j < to; ++j) {
    const double lo = static_cast<double>(j) / static_cast<double>(to);
    const double hi = static_cast<double>(j + 1) / static_cast<double>(to);
    for (int64_t i = 0; i < from; ++i) {
      const double l = std::max(lo, static_cast<double>(i) / static_cast<double>(from));
      const double h = std::min(hi, static_cast<double>(i + 1) / static_cast<double>(from));
      if (h > l) a[j][i] = static_cast<double>(from) * (h - l);
    }
  }
  return m;
}

namespace {

// Resamples dimension `dim` of `t` (float64) to `to` cells with overlap_matrix.
at::Tensor resample(const at::Tensor& t, int64_t dim, int64_t to) {
  const at::Tensor m = overlap_matrix(t.size(dim), to);
  return at::tensordot(t, m, {dim}, {1}).movedim(-1, dim);
}

}  // namespace

at::Tensor resize_patch_kernel(const at::Tensor& kernel, int64_t pf, int64_t pt, std::string& how) {
  const int64_t kf = kernel.size(2), kt = kernel.size(3);
  at::Tensor w = kernel.to(at::kDouble);
  std::string freq, time;
  if (pf == kf) {
    freq = "frequency as is";
  } else if (pf % kf == 0) {
    const int64_t r = pf / kf;
    w = w.repeat({1, 1, r, 1}) / static_cast<double>(r);
    freq = fmt::format("frequency tiled {} times and divided by {} (each token the mean of {} stacked "
                       "{}-bin patches' tokens)", r, r, r, kf);
  } else {
    w = resample(w, 2, pf);
    freq = fmt::format("frequency resampled {} -> {} by cell overlap", kf, pf);
  }
  if (pt == kt) {
    time = "time as is";
  } else {
    w = resample(w, 3, pt);
    time = fmt::format("time resampled {} -> {} by cell overlap", kt, pt);
  }
  how = fmt::format("patch kernel {}x{} -> {}x{}: {}, {}", kf, kt, pf, pt, freq, time);
  return w.to(at::kFloat).contiguous();
}

at::Tensor resize_grid_positions(const at::Tensor& grid, int64_t rows, int64_t cols) {
  at::Tensor g = grid.to(at::kFloat);
  if (g.size(0) == rows && g.size(1) == cols) return g.contiguous();
  if (rows == 1 && g.size(0) > 1) g = g.mean(0, /*keepdim=*/true);
  // [R, C, D] -> [1, D, R, C] for the interpolation, and back.
  const at::Tensor image = g.permute({2, 0, 1}).unsqueeze(0).contiguous();
  const at::Tensor resized = at::upsample_bilinear2d(image, {rows, cols}, /*align_corners=*/false);
  return resized.squeeze(0).permute({1, 2, 0}).contiguous();
}

SplitPositions split_positions(const at::Tensor& pos, const WeightLayout& layout) {
  const at::Tensor rows = pos.squeeze(0);  // [S + N, D]
  const int64_t s = layout.special_tokens, n = rows.size(0) - s;
  if (!layout.specials_in_middle) return {rows.slice(0, 0, s), rows.slice(0, s)};
  const int64_t at = n / 2;
  return {rows.slice(0, at, at + s), at::cat({rows.slice(0, 0, at), rows.slice(0, at + s)})};
}

at::Tensor join_positions(const at::Tensor& special, const at::Tensor& grid, const WeightLayout& layout) {
  if (!layout.specials_in_middle) return at::cat({special, grid}).unsqueeze(0).contiguous();
  const int64_t at = grid.size(0) / 2;
  return at::cat({grid.slice(0, 0, at), special, grid.slice(0, at)}).unsqueeze(0).contiguous();
}

}  // namespace patchbay::adapt
