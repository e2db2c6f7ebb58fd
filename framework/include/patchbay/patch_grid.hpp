// PatchGrid: the geometry a patcher imposes on a [F, T] spectrogram.
//
// A patcher with kernel (patch_freq, patch_time) and stride (stride_freq, stride_time)
// over F mel bins and T frames makes rows x cols tokens, ordered frequency-major as AST
// flattens its Conv2d output: token = row * cols + col. Maskers read the grid to align
// masks; backbones read it to size positional embeddings. Nobody re-derives geometry.
//
//   auto g = PatchGrid::make(128, 1024, 16, 16, 10, 10);   // AST: 12 x 101 = 1212 tokens
//   auto fftp = PatchGrid::make(128, 128, 128, 16, 128, 4); // FFTP: 1 x 29 tokens
#pragma once
#include <cstdint>
#include <string>

#include "patchbay/export.hpp"

namespace patchbay {

// Half-open cell ranges [begin, end) of one token in the spectrogram.
struct TokenSpan {
  int64_t freq_begin = 0, freq_end = 0;
  int64_t time_begin = 0, time_end = 0;
};

struct PATCHBAY_API PatchGrid {
  int64_t freq_bins = 0, frames = 0;       // input size F, T
  int64_t patch_freq = 0, patch_time = 0;  // kernel
  int64_t stride_freq = 0, stride_time = 0;
  int64_t rows = 0, cols = 0;              // tokens along frequency, along time

  // Validates and computes rows = (F - pf) / sf + 1 and cols = (T - pt) / st + 1.
  // Throws ShapeError (id "shape.patch_geometry") naming the offending value and the input
  // shape when a kernel is larger than the input or a size/stride is not positive.
  static PatchGrid make(int64_t freq_bins, int64_t frames, int64_t patch_freq, int64_t patch_time,
                        int64_t stride_freq, int64_t stride_time);

  int64_t tokens() const { return rows * cols; }
  // Throws std::out_of_range for a token outside [0, tokens()).
  TokenSpan span(int64_t token) const;
  // "12 x 101 = 1212 tokens of 16 x 16 cells, stride 10 x 10, on 128 x 1024"
  std::string describe() const;
  // Frames (bins) that no token covers: the tail a stride leaves (AST on 1,024 frames: 8),
  // and the gaps of a stride larger than the kernel. `plan` warns when they are many.
  int64_t unseen_frames() const;
  int64_t unseen_bins() const;

  bool operator==(const PatchGrid& o) const;
  bool operator!=(const PatchGrid& o) const { return !(*this == o); }
};

// What one forward pass of one example costs. "paper MACs" count the multiply-accumulates of
// Linear and Conv layers only (the FFTP paper's "GFLOPs"); flops count every matrix product,
// attention's included, as 2 x MACs.
struct Cost {
  int64_t params = 0;
  int64_t paper_macs = 0;
  int64_t flops = 0;
};

}  // namespace patchbay
