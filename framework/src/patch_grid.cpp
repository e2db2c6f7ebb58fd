#include "patchbay/patch_grid.hpp"

#include <stdexcept>

#include <fmt/format.h>

#include "patchbay/error.hpp"

namespace patchbay {

PatchGrid PatchGrid::make(int64_t freq_bins, int64_t frames, int64_t patch_freq,
                          int64_t patch_time, int64_t stride_freq, int64_t stride_time) {
  const auto fail = [&](const std::string& what) {
    throw ShapeError("shape.patch_geometry",
                     fmt::format("{} (input {} mel bins x {} frames, kernel {} x {}, stride {} x "
                                 "{}); choose a smaller patch or a longer input",
                                 what, freq_bins, frames, patch_freq, patch_time, stride_freq,
                                 stride_time));
  };
  if (freq_bins < 1 || frames < 1) fail("the input must have at least one bin and one frame");
  if (patch_freq < 1 || patch_time < 1) fail("patch sizes must be positive");
  if (stride_freq < 1 || stride_time < 1) fail("strides must be positive");
  if (patch_freq > freq_bins) fail(fmt::format("a patch of {} bins is taller than the input", patch_freq));
  if (patch_time > frames) fail(fmt::format("a patch of {} frames is longer than the input", patch_time));
  PatchGrid g;
  g.freq_bins = freq_bins;
  g.frames = frames;
  g.patch_freq = patch_freq;
  g.patch_time = patch_time;
  g.stride_freq = stride_freq;
  g.stride_time = stride_time;
  g.rows = (freq_bins - patch_freq) / stride_freq + 1;
  g.cols = (frames - patch_time) / stride_time + 1;
  return g;
}

TokenSpan PatchGrid::span(int64_t token) const {
  if (token < 0 || token >= tokens()) {
    throw std::out_of_range(fmt::format("token {} outside a grid of {} tokens", token, tokens()));
  }
  const int64_t row = token / cols;
  const int64_t col = token % cols;
  TokenSpan s;
  s.freq_begin = row * stride_freq;
  s.freq_end = s.freq_begin + patch_freq;
  s.time_begin = col * stride_time;
  s.time_end = s.time_begin + patch_time;
  return s;
}

std::string PatchGrid::describe() const {
  return fmt::format("{} x {} = {} tokens of {} x {} cells, stride {} x {}, on {} x {}", rows, cols,
                     tokens(), patch_freq, patch_time, stride_freq, stride_time, freq_bins, frames);
}

namespace {
int64_t unseen(int64_t size, int64_t patch, int64_t stride, int64_t count) {
  const int64_t covered = stride <= patch ? (count - 1) * stride + patch : count * patch;
  return size - covered;
}
}  // namespace

int64_t PatchGrid::unseen_frames() const { return unseen(frames, patch_time, stride_time, cols); }
int64_t PatchGrid::unseen_bins() const { return unseen(freq_bins, patch_freq, stride_freq, rows); }

bool PatchGrid::operator==(const PatchGrid& o) const {
  return freq_bins == o.freq_bins && frames == o.frames && patch_freq == o.patch_freq &&
         patch_time == o.patch_time && stride_freq == o.stride_freq &&
         stride_time == o.stride_time && rows == o.rows && cols == o.cols;
}

}  // namespace patchbay
