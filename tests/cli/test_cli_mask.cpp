// End-to-end checks of `patchbay mask`: the PNG it writes and the counts it reports.
#include <doctest/doctest.h>

#include <fstream>

#include <nlohmann/json.hpp>

#include "helpers.hpp"
#include "test_paths.hpp"

namespace fs = std::filesystem;

namespace {
std::string cli() { return std::string("'") + patchbay::test::kCli + "'"; }
std::string quickstart() {
  return std::string("'") + patchbay::test::kSourceDir + "/experiments/examples/minimal.toml'";
}
std::string speech() {
  return std::string("'") + patchbay::test::kSourceDir + "/tests/golden/fbank/speech.wav'";
}

// Width and height from a PNG's IHDR chunk; {0, 0} if the file is not a PNG.
std::pair<uint32_t, uint32_t> png_size(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  unsigned char h[24] = {0};
  in.read(reinterpret_cast<char*>(h), 24);
  static const unsigned char magic[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  if (!in || !std::equal(magic, magic + 8, h)) return {0, 0};
  const auto be = [&](int at) { return uint32_t(h[at]) << 24 | uint32_t(h[at + 1]) << 16 | uint32_t(h[at + 2]) << 8 | h[at + 3]; };
  return {be(16), be(20)};
}
}  // namespace

TEST_SUITE("cli") {
TEST_CASE("cli: mask draws specmask on a clip and reports its budget split") {
  patchbay::test::TempDir dir;
  const auto out = dir.path() / "mask.png";
  const auto r = patchbay::test::run(cli() + " mask " + quickstart() + " masker.plugin=specmask --clip " +
                                     speech() + " --out '" + out.string() + "' --json");
  REQUIRE_MESSAGE(r.code == 0, r.err);
  const auto j = nlohmann::json::parse(r.out);
  CHECK(j["budget"] == 1024);
  CHECK(j["total_cells"] == 1024);  // 6 full-frequency frames (the nearest to 70 %) + 16x16
  CHECK(j["full_frequency_cells"] == 768);
  CHECK(j["local_cells"] == 256);
  CHECK(j["grid"] == nlohmann::json::array({1, 29}));
  CHECK(j["shape"] == nlohmann::json::array({128, 128}));
  // Two 128 x 128 panels at 8 x 4 pixels per cell, one above the other with an 8-pixel gap.
  CHECK(png_size(out) == std::pair<uint32_t, uint32_t>{1024, 2 * 512 + 8});
}

TEST_CASE("cli: mask with the none masker masks nothing; bad input is refused") {
  patchbay::test::TempDir dir;
  const auto out = dir.path() / "none.png";
  auto r = patchbay::test::run(cli() + " mask " + quickstart() + " --clip " + speech() + " --out '" +
                               out.string() + "' --json");
  REQUIRE_MESSAGE(r.code == 0, r.err);
  CHECK(nlohmann::json::parse(r.out)["total_cells"] == 0);
  r = patchbay::test::run(cli() + " mask " + quickstart() + " --clip " + speech());
  CHECK(r.code == 2);
  CHECK(r.err.find("--out mask.png is required") != std::string::npos);
  r = patchbay::test::run(cli() + " mask " + quickstart() + " --clip /nonexistent.wav --out '" +
                          out.string() + "'");
  CHECK(r.code == 1);
  CHECK(r.err.find("error [data.missing]") != std::string::npos);
}
}
