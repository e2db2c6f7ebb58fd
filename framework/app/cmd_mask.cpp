// patchbay mask: apply an experiment's masker once to one clip and show the result as a PNG
// (top: the normalised log-mel with the patch grid; bottom: the same with masked cells red).
#include <iostream>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli_common.hpp"
#include "commands.hpp"
#include "patchbay/error.hpp"
#include "patchbay/fbank.hpp"
#include "spectrogram_image.hpp"

namespace po = boost::program_options;
using nlohmann::json;

namespace patchbay::cli {
namespace {

// The clip to show: --clip, else the first clip of the training split.
std::filesystem::path pick_clip(const Parsed& p, const Experiment& exp, const Registry& registry) {
  if (p.vm.count("clip")) return p.vm["clip"].as<std::string>();
  const auto& c = exp.runs.front().config;
  const auto base = std::filesystem::absolute(exp.file).parent_path();
  const auto dataset = registry.make_dataset(c.dataset.plugin, c.dataset.options, DatasetContext{base});
  const auto clips = dataset->clips(Split::train);
  if (clips.empty()) {
    throw DataError("data.no_clips", fmt::format("dataset '{}' has no training clips to show; pass "
                                                 "--clip PATH", c.dataset.plugin));
  }
  return clips.front().path;
}

}  // namespace

int run_mask(const std::vector<std::string>& args) {
  auto desc = common_options("patchbay mask options");
  desc.add_options()("out,o", po::value<std::string>(), "write the PNG here (required)")(
      "clip", po::value<std::string>(), "audio file to show (default: the first training clip)")(
      "seed", po::value<int64_t>(), "generator seed (default: the run's train.seed)");
  const auto p = parse(args, desc);
  if (wants_help(p, "Usage: patchbay mask FILE [key=value...] --out mask.png [--clip PATH] "
                    "[--seed N] [--json]\n\nComputes one clip's normalised log-mel (with the "
                    "fixed norm_mean / norm_std, or none), applies the experiment's masker once as "
                    "training would, and draws the spectrogram with the patch grid (top) and with "
                    "the masked cells in red (bottom). --json prints the masked-cell counts.",
                 desc)) {
    return kExitOk;
  }
  if (!p.vm.count("out")) throw po::error("--out mask.png is required");
  Registry registry;
  load_plugins(registry, p);
  const auto exp = plan_from(p, registry, "mask");
  const auto& c = exp.runs.front().config;
  const auto grid = grid_of(c, registry);

  const auto clip = pick_clip(p, exp, registry);
  const FbankOptions fo = FbankOptions::from(c.frontend);
  auto features = pad_or_crop(Fbank(fo).compute(read_audio(clip, fo.sample_rate, fo.channel)), fo.target_frames);
  // One clip has no training-split statistics; the fixed ones stand in for them.
  if (fo.normalize != Normalization::none) features = normalize(features, fo.norm_mean, fo.norm_std);
  const auto spec = features.t().contiguous().unsqueeze(0);  // [1, F, T]

  const auto masker = registry.make_masker(c.masker.plugin, c.masker.options);
  const int64_t seed = p.vm.count("seed") ? p.vm["seed"].as<int64_t>() : c.train.get_int("seed");
  auto generator = at::make_generator<at::CPUGeneratorImpl>(static_cast<uint64_t>(seed));
  MaskContext context(grid);
  if (fo.normalize != Normalization::none) {
    context.norm_mean = fo.norm_mean;
    context.norm_scale = 2.0 * fo.norm_std;
  }
  const auto result = masker->apply(spec, context, generator);
  // A masker that does not report its mask: the cells it changed.
  const auto masks = result.mask.defined() ? result.mask : result.spec != spec;
  const auto mask = masks[0];
  const int64_t total = result.masked_cells[0].item<int64_t>();
  const int64_t bins = spec.size(1);
  const int64_t full = full_frequency_cells(masks)[0].item<int64_t>();

  // About 1024 x 512 pixels whatever the input's shape.
  const int scale_t = std::max<int>(1, static_cast<int>(1024 / spec.size(2)));
  const int scale_f = std::max<int>(1, static_cast<int>(512 / bins));
  SpectrogramImage before(spec[0], scale_f, scale_t);
  before.draw_grid(grid);
  SpectrogramImage after(result.spec[0], scale_f, scale_t);
  after.overlay_mask(mask);
  after.draw_grid(grid);
  const std::string out = p.vm["out"].as<std::string>();
  write_png_stack({before, after}, out);

  json budget = nullptr;
  if (c.masker.options.contains("budget")) budget = c.masker.options.get_int("budget");
  json report = {{"clip", clip.string()},
                 {"out", out},
                 {"masker", c.masker.plugin},
                 {"patcher", c.patcher.plugin},
                 {"shape", {bins, spec.size(2)}},
                 {"grid", {grid.rows, grid.cols}},
                 {"budget", budget},
                 {"total_cells", total},
                 {"full_frequency_cells", full},
                 {"local_cells", total - full},
                 {"seed", seed}};
  if (p.vm.count("json")) {
    std::cout << report.dump(2) << "\n";
  } else {
    fmt::print("{}: {} masked {} of {} cells ({} full-frequency, {} local) on a {} x {} grid\n", out,
               c.masker.plugin, total, bins * spec.size(2), full, total - full, grid.rows, grid.cols);
  }
  return kExitOk;
}

}  // namespace patchbay::cli
