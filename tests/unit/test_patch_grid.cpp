#include <doctest/doctest.h>

#include "patchbay/error.hpp"
#include "patchbay/patch_grid.hpp"

using patchbay::PatchGrid;

TEST_SUITE("unit") {
TEST_CASE("patch grid: AST and FFTP token counts from docs/reference.md") {
  CHECK(PatchGrid::make(128, 1024, 16, 16, 10, 10).tokens() == 1212);  // 12 x 101
  CHECK(PatchGrid::make(128, 128, 16, 16, 10, 10).tokens() == 144);    // 12 x 12
  const auto fftp = PatchGrid::make(128, 128, 128, 16, 128, 4);
  CHECK(fftp.rows == 1);
  CHECK(fftp.cols == 29);
  CHECK(PatchGrid::make(128, 1000, 128, 10, 128, 1).tokens() == 991);
}

TEST_CASE("patch grid: token spans are frequency-major") {
  const auto g = PatchGrid::make(128, 128, 16, 16, 10, 10);
  const auto first = g.span(0);
  CHECK(first.freq_begin == 0);
  CHECK(first.time_end == 16);
  const auto second = g.span(1);  // next column, same row
  CHECK(second.freq_begin == 0);
  CHECK(second.time_begin == 10);
  const auto next_row = g.span(g.cols);
  CHECK(next_row.freq_begin == 10);
  CHECK(next_row.time_begin == 0);
  CHECK_THROWS_AS(g.span(g.tokens()), std::out_of_range);
}

TEST_CASE("patch grid: the frames and bins no token covers") {
  const auto ast = patchbay::PatchGrid::make(128, 1024, 16, 16, 10, 10);  // 12 x 101
  CHECK(ast.unseen_frames() == 1024 - (100 * 10 + 16));                 // the stride's tail: 8
  CHECK(ast.unseen_bins() == 128 - (11 * 10 + 16));                     // 2
  CHECK(patchbay::PatchGrid::make(128, 128, 128, 16, 128, 4).unseen_frames() == 0);  // 29 tokens
  const auto gappy = patchbay::PatchGrid::make(128, 128, 128, 16, 128, 100);         // 2 tokens
  CHECK(gappy.cols == 2);
  CHECK(gappy.unseen_frames() == 128 - 2 * 16);
  CHECK(gappy.unseen_bins() == 0);
}

TEST_CASE("patch grid: bad geometry names the values and the input") {
  try {
    PatchGrid::make(128, 100, 128, 200, 128, 4);
    FAIL("expected a ShapeError");
  } catch (const patchbay::ShapeError& e) {
    CHECK(e.id() == "shape.patch_geometry");
    CHECK(std::string(e.what()) ==
          "a patch of 200 frames is longer than the input (input 128 mel bins x 100 frames, "
          "kernel 128 x 200, stride 128 x 4); choose a smaller patch or a longer input");
  }
  CHECK_THROWS_AS(PatchGrid::make(128, 128, 16, 16, 0, 10), patchbay::ShapeError);
  CHECK_THROWS_AS(PatchGrid::make(128, 128, 0, 16, 10, 10), patchbay::ShapeError);
}
}
