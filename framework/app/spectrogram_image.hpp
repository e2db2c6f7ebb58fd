// Renders spectrograms as PNG images people can check by eye (stb_image_write).
//
//   SpectrogramImage img(spec);            // [F, T] float, low frequencies drawn at the bottom
//   img.overlay_mask(mask);                // [F, T] bool cells tinted red
//   img.draw_grid(grid);                   // patch boundaries as thin light lines
//   write_png_stack({img_a, img_b}, "out.png");
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <filesystem>
#include <vector>

#include "patchbay/patch_grid.hpp"

namespace patchbay::cli {

class SpectrogramImage {
 public:
  // spec [F, T]; each cell becomes a `scale_f` x `scale_t` block of pixels, colours from a
  // perceptual dark-blue -> yellow map over the spectrogram's own 1st..99th percentile.
  SpectrogramImage(const at::Tensor& spec, int scale_f, int scale_t);
  // Blends masked cells ([F, T] bool) towards red.
  void overlay_mask(const at::Tensor& mask);
  // Draws the start and end of every patch row / column.
  void draw_grid(const PatchGrid& grid);

  int width() const { return width_; }
  int height() const { return height_; }
  const std::vector<uint8_t>& rgb() const { return rgb_; }

 private:
  void blend(int x, int y, const uint8_t colour[3], float alpha);
  int64_t bins_, frames_;
  int scale_f_, scale_t_, width_, height_;
  std::vector<uint8_t> rgb_;
};

// Writes the images one below the other, separated by a white band, as one RGB PNG.
// Throws DataError "output.write_failed" when the file cannot be written.
void write_png_stack(const std::vector<SpectrogramImage>& images, const std::filesystem::path& file);

}  // namespace patchbay::cli
