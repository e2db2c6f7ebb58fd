// patchbay fbank: the front end's features of one audio file, as a .npy for inspection.
#include <iostream>

#include <boost/program_options.hpp>
#include <fmt/format.h>

#include "commands.hpp"
#include "patchbay/config.hpp"
#include "patchbay/error.hpp"
#include "patchbay/fbank.hpp"
#include "patchbay/npy.hpp"
#include "patchbay/options.hpp"

namespace po = boost::program_options;

namespace patchbay::cli {

int run_fbank(const std::vector<std::string>& args) {
  const FbankOptions defaults = FbankOptions::from(Options::defaults(frontend_schema()));
  po::options_description desc("patchbay fbank options");
  desc.add_options()("help,h", "show this help")(
      "out,o", po::value<std::string>(), "write the features here (.npy, float32 [T, F])")(
      "frames", po::value<int64_t>(),
      "zero-pad or cut to this many frames (default: keep all 1 + (n - 400) / 160)")(
      "normalize", "apply (x - mean) / (2 std)")(
      "mean", po::value<double>()->default_value(defaults.norm_mean, fmt::format("{}", defaults.norm_mean)),
      "mean for --normalize (AST's Speech Commands value)")(
      "std", po::value<double>()->default_value(defaults.norm_std, fmt::format("{}", defaults.norm_std)),
      "standard deviation for --normalize");
  po::options_description all(desc);
  all.add_options()("input", po::value<std::vector<std::string>>(), "");
  po::positional_options_description pos;
  pos.add("input", -1);
  po::variables_map vm;
  po::store(po::command_line_parser(args).options(all).positional(pos).run(), vm);
  po::notify(vm);

  if (vm.count("help")) {
    std::cout << "Usage: patchbay fbank IN --out OUT.npy [--frames N] [--normalize] "
                 "[--mean M --std S]\n\nDecodes one audio file (WAV, FLAC, OGG; any rate, "
                 "its first channel, as AST's Kaldi fbank; resampled to 16 kHz), computes the front end's log-mel "
                 "features (Kaldi fbank with AST's settings: 128 mel bins, 25 ms / 10 ms Hann "
                 "frames, waveform mean removed) and writes them as a float32 [T, F] NumPy file: "
                 "numpy.load(OUT) in Python.\n\n"
              << desc << "\n";
    return kExitOk;
  }
  const auto inputs = vm.count("input") ? vm["input"].as<std::vector<std::string>>()
                                        : std::vector<std::string>{};
  if (inputs.size() != 1) {
    throw po::error(inputs.empty() ? "expects one audio file IN"
                                   : fmt::format("expects one audio file IN, got {}", inputs.size()));
  }
  if (!vm.count("out")) throw po::error("--out OUT.npy is required");
  if (vm.count("frames") && vm["frames"].as<int64_t>() < 1) {
    throw po::error("--frames must be at least 1");
  }
  if (!vm["mean"].defaulted() || !vm["std"].defaulted()) {
    if (!vm.count("normalize")) throw po::error("--mean and --std only apply with --normalize");
  }

  const Fbank fbank(defaults);
  const Waveform wave = read_audio(inputs[0], defaults.sample_rate);
  at::Tensor features = fbank.compute(wave);
  const int64_t frames = features.size(0);
  if (vm.count("frames")) features = pad_or_crop(features, vm["frames"].as<int64_t>());
  if (vm.count("normalize")) {
    features = normalize(features, vm["mean"].as<double>(), vm["std"].as<double>());
  }
  const std::string out = vm["out"].as<std::string>();
  write_npy(out, features);
  fmt::print("{}: {} samples at {} Hz, {} frames -> {} float32 [{}, {}]\n", inputs[0],
             wave.samples.size(0), wave.sample_rate, frames, out, features.size(0),
             features.size(1));
  return kExitOk;
}

}  // namespace patchbay::cli
