#include "spectrogram_image.hpp"

#include <algorithm>
#include <array>
#include <cmath>

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <stb/stb_image_write.h>

#include "patchbay/error.hpp"

namespace patchbay::cli {
namespace {

// Stops of a viridis-like map (dark blue -> teal -> green -> yellow), linear in between.
constexpr std::array<std::array<float, 3>, 5> kStops = {{{68, 1, 84},
                                                         {59, 82, 139},
                                                         {33, 145, 140},
                                                         {94, 201, 98},
                                                         {253, 231, 37}}};

void colour(float v, uint8_t out[3]) {
  v = std::clamp(v, 0.0f, 1.0f) * static_cast<float>(kStops.size() - 1);
  const auto i = std::min(static_cast<size_t>(v), kStops.size() - 2);
  const float f = v - static_cast<float>(i);
  for (int c = 0; c < 3; ++c) {
    out[c] = static_cast<uint8_t>(std::lround(kStops[i][c] * (1 - f) + kStops[i + 1][c] * f));
  }
}

}  // namespace

SpectrogramImage::SpectrogramImage(const at::Tensor& spec, int scale_f, int scale_t)
    : bins_(spec.size(0)), frames_(spec.size(1)), scale_f_(scale_f), scale_t_(scale_t),
      width_(static_cast<int>(frames_) * scale_t), height_(static_cast<int>(bins_) * scale_f),
      rgb_(static_cast<size_t>(width_) * height_ * 3) {
  const auto s = spec.to(at::kFloat).contiguous();
  const auto flat = s.flatten();
  // Robust range: the 1st and 99th percentiles, so one outlier does not wash out the picture.
  const auto sorted = std::get<0>(flat.sort());
  const float lo = sorted[static_cast<int64_t>(0.01 * (flat.numel() - 1))].item<float>();
  const float hi = sorted[static_cast<int64_t>(0.99 * (flat.numel() - 1))].item<float>();
  const float span = hi > lo ? hi - lo : 1.0f;
  const auto a = s.accessor<float, 2>();
  for (int64_t f = 0; f < bins_; ++f) {
    for (int64_t t = 0; t < frames_; ++t) {
      uint8_t c[3];
      colour((a[f][t] - lo) / span, c);
      const int y0 = static_cast<int>(bins_ - 1 - f) * scale_f_;  // low frequencies at the bottom
      for (int dy = 0; dy < scale_f_; ++dy) {
        for (int dx = 0; dx < scale_t_; ++dx) {
          auto* px = &rgb_[(static_cast<size_t>(y0 + dy) * width_ + t * scale_t_ + dx) * 3];
          std::copy(c, c + 3, px);
        }
      }
    }
  }
}

void SpectrogramImage::blend(int x, int y, const uint8_t colour[3], float alpha) {
  auto* px = &rgb_[(static_cast<size_t>(y) * width_ + x) * 3];
  for (int c = 0; c < 3; ++c) {
    px[c] = static_cast<uint8_t>(std::lround(px[c] * (1 - alpha) + colour[c] * alpha));
  }
}

void SpectrogramImage::overlay_mask(const at::Tensor& mask) {
  static const uint8_t red[3] = {230, 30, 30};
  const auto m = mask.to(at::kBool).contiguous();
  const auto a = m.accessor<bool, 2>();
  for (int64_t f = 0; f < bins_; ++f) {
    for (int64_t t = 0; t < frames_; ++t) {
      if (!a[f][t]) continue;
      const int y0 = static_cast<int>(bins_ - 1 - f) * scale_f_;
      for (int dy = 0; dy < scale_f_; ++dy) {
        for (int dx = 0; dx < scale_t_; ++dx) blend(static_cast<int>(t) * scale_t_ + dx, y0 + dy, red, 0.65f);
      }
    }
  }
}

void SpectrogramImage::draw_grid(const PatchGrid& grid) {
  static const uint8_t white[3] = {255, 255, 255};
  // Vertical lines at every column's start; horizontal lines at every row's start (square
  // patches). Overlapping patches make lines every stride, which is what the masks snap to.
  for (int64_t c = 0; c <= grid.cols; ++c) {
    const int64_t t = c < grid.cols ? c * grid.stride_time : (grid.cols - 1) * grid.stride_time + grid.patch_time;
    const int x = std::min(static_cast<int>(t) * scale_t_, width_ - 1);
    for (int y = 0; y < height_; ++y) blend(x, y, white, 0.35f);
  }
  if (grid.rows > 1) {
    for (int64_t r = 0; r <= grid.rows; ++r) {
      const int64_t f = r < grid.rows ? r * grid.stride_freq : (grid.rows - 1) * grid.stride_freq + grid.patch_freq;
      const int y = std::clamp(static_cast<int>(bins_ - f) * scale_f_, 0, height_ - 1);
      for (int x = 0; x < width_; ++x) blend(x, y, white, 0.35f);
    }
  }
}

void write_png_stack(const std::vector<SpectrogramImage>& images, const std::filesystem::path& file) {
  constexpr int kGap = 8;
  int width = 0, height = 0;
  for (const auto& img : images) {
    width = std::max(width, img.width());
    height += img.height();
  }
  height += kGap * static_cast<int>(images.empty() ? 0 : images.size() - 1);
  std::vector<uint8_t> canvas(static_cast<size_t>(width) * height * 3, 255);
  int y = 0;
  for (const auto& img : images) {
    for (int row = 0; row < img.height(); ++row) {
      std::copy_n(&img.rgb()[static_cast<size_t>(row) * img.width() * 3], img.width() * 3,
                  &canvas[static_cast<size_t>(y + row) * width * 3]);
    }
    y += img.height() + kGap;
  }
  if (stbi_write_png(file.string().c_str(), width, height, 3, canvas.data(), width * 3) == 0) {
    throw DataError("output.write_failed",
                    fmt::format("cannot write '{}'; check that its folder exists and is writable",
                                file.string()));
  }
}

}  // namespace patchbay::cli
