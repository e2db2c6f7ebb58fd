// End-to-end checks of `patchbay fbank`: the .npy it writes, its options, its errors.
#include <doctest/doctest.h>

#include "helpers.hpp"
#include "patchbay/fbank.hpp"
#include "patchbay/npy.hpp"
#include "test_paths.hpp"

namespace fs = std::filesystem;

namespace {
std::string cli() { return std::string("'") + patchbay::test::kCli + "'"; }
fs::path golden(const std::string& file) {
  return fs::path(patchbay::test::kSourceDir) / "tests" / "golden" / "fbank" / file;
}
std::string quoted(const fs::path& p) { return "'" + p.string() + "'"; }
}  // namespace

TEST_SUITE("cli") {
TEST_CASE("cli: fbank writes torchaudio's features as a float32 [T, F] .npy") {
  patchbay::test::TempDir dir;
  const fs::path out = dir.path() / "speech.npy";
  auto r = patchbay::test::run(cli() + " fbank " + quoted(golden("speech.wav")) + " --out " + quoted(out));
  REQUIRE_MESSAGE(r.code == 0, r.err);
  CHECK(r.out.find("[38, 128]") != std::string::npos);
  const at::Tensor ref = patchbay::read_npy(golden("speech.npy"));
  const at::Tensor mine = patchbay::read_npy(out);
  REQUIRE(mine.sizes() == ref.sizes());
  CHECK((mine - ref).abs().max().item<double>() <= 1e-3);

  // Padded to 128 frames and normalised with AST's Speech Commands statistics.
  r = patchbay::test::run(cli() + " fbank " + quoted(golden("speech.wav")) + " --out " + quoted(out) +
                          " --frames 128 --normalize");
  REQUIRE_MESSAGE(r.code == 0, r.err);
  const at::Tensor expected =
      patchbay::normalize(patchbay::pad_or_crop(ref, 128), -6.845978, 5.5654526);
  const at::Tensor norm = patchbay::read_npy(out);
  REQUIRE(norm.sizes() == at::IntArrayRef({128, 128}));
  CHECK((norm - expected).abs().max().item<double>() <= 1e-3);

  r = patchbay::test::run(cli() + " fbank " + quoted(golden("speech.wav")) + " --out " + quoted(out) +
                          " --frames 10 --normalize --mean 0 --std 0.5");
  REQUIRE_MESSAGE(r.code == 0, r.err);
  CHECK((patchbay::read_npy(out) - ref.narrow(0, 0, 10)).abs().max().item<double>() <= 1e-3);
}

TEST_CASE("cli: fbank --help, usage errors and bad clips") {
  auto r = patchbay::test::run(cli() + " fbank --help");
  CHECK(r.code == 0);
  CHECK(r.out.find("Usage: patchbay fbank IN --out OUT.npy") != std::string::npos);
  r = patchbay::test::run(cli() + " fbank " + quoted(golden("speech.wav")));
  CHECK(r.code == 2);
  CHECK(r.err.find("--out") != std::string::npos);
  r = patchbay::test::run(cli() + " fbank --out x.npy");
  CHECK(r.code == 2);
  patchbay::test::TempDir dir;
  r = patchbay::test::run(cli() + " fbank " + quoted(dir.path() / "gone.wav") + " --out " +
                          quoted(dir.path() / "x.npy"));
  CHECK(r.code == 1);
  CHECK(r.err.find("error [data.missing]") != std::string::npos);
  CHECK(r.err.find("gone.wav") != std::string::npos);
  CHECK(r.out.empty());
  CHECK_FALSE(fs::exists(dir.path() / "x.npy"));
}
}  // TEST_SUITE
