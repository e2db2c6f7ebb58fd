// One AST training step (forward, cross-entropy, backward, AdamW step) through patchbay's real
// plugin code, and the machine's matrix-product peak measured in the same process.
//
// Usage: patchbay_bench_ast_train [--presets tiny,small] [--patchers square,fftp]
//          [--threads 1,2] [--batch 32] [--steps 5] [--warmup 2] [--depth 0]
//          [--peak-size 2048] [--peak-repeats 5] [--malloc-keep] [--json]
//          [--precisions fp32,bf16]   (train.precision; a row per precision, "fftp/bf16")
//          [--backbone ast|aum]       (the preset column reads "aum/tiny" for AuM)
//
// The model is built as `patchbay run` builds it: a TOML experiment (frontend 128 mel bins x
// 128 frames; patcher square 16x16 stride 10 = 144 tokens, or fftp patch_frames 16 stride 4
// = 29 tokens; backbone ast with the preset; 35 classes) resolved by load_experiment_text
// against a Registry holding the statically linked plugins, then build_model(). The step is
// the trainer's (framework/src/trainer.cpp): zero_grad, forward, cross_entropy, loss.item(),
// backward, AdamW (the [train] defaults: lr 2.5e-4, betas 0.95/0.999, weight decay 5e-7), on
// one fixed random batch; no learning-rate schedule, and class-index targets where the
// trainer passes one-hot probabilities (the same cost at 35 classes). Reported: the median
// over `steps` timed steps after `warmup` steps, wall time and process CPU time.
//
// Achieved GFLOP/s = 3 x forward FLOPs / step time, with forward FLOPs = Model::cost().flops
// (2 x the multiply-adds of the patch-embedding convolution, every Linear and attention's two
// batched products; softmax, LayerNorm, GELU and the optimizer are not counted) x batch. The
// factor 3 is the usual approximation forward + backward ~= 3 x forward (backward computes a
// gradient for the input and one for the weight of each product). Peak = torch::mm of two
// float32 [peak-size, peak-size] matrices (2 n^3 FLOPs), median of peak-repeats, at the same
// thread count, in this process.
//
// --malloc-keep: before anything else, mallopt(M_MMAP_THRESHOLD, 32 MiB) and
// mallopt(M_TRIM_THRESHOLD, INT_MAX), so glibc keeps freed tensor memory mapped instead of
// returning it to the kernel and faulting it in again on the next step (bench/README.md: ~10 %
// of a step's CPU time by default). What `patchbay run`'s workers do (framework/app/main.cpp);
// bench/run_ast_train.sh passes it unless MALLOC_KEEP=0.
//
// Output: a Markdown table, or with --json one JSON object per (preset, patcher, threads).
#include <algorithm>
#include <climits>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <string>
#include <vector>

#include <malloc.h>
#include <time.h>

#include <ATen/Parallel.h>
#include <fmt/format.h>
#include <torch/nn/functional/loss.h>
#include <torch/optim/adamw.h>

#include "bench_args.hpp"
#include "patchbay/config.hpp"
#include "patchbay/model.hpp"
#include "patchbay/registry.hpp"

void register_fftp(patchbay::Registrar&);
void register_square(patchbay::Registrar&);
void register_none_masker(patchbay::Registrar&);
void register_folder_dataset(patchbay::Registrar&);
void register_ast(patchbay::Registrar&);
void register_aum(patchbay::Registrar&);

namespace {

using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

// CPU time of the whole process (every thread), ms: on a shared machine the wall time of a
// 1-thread run includes waiting for the core; this does not.
double process_cpu_ms() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) * 1e3 + static_cast<double>(ts.tv_nsec) / 1e6;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream in(s);
  for (std::string item; std::getline(in, item, ',');) {
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

patchbay::Registry& registry() {
  static patchbay::Registry r;
  static const bool once = [] {
    const auto linked = [](const char* name, void (*fn)(patchbay::Registrar&)) {
      patchbay::PluginOrigin origin;
      origin.library = name;
      origin.version = "0.1.0";
      origin.file = "(linked in)";
      r.register_library(origin, fn);
    };
    linked("fftp", register_fftp);
    linked("square", register_square);
    linked("none_masker", register_none_masker);
    linked("folder", register_folder_dataset);
    linked("ast", register_ast);
    linked("aum", register_aum);
    return true;
  }();
  (void)once;
  return r;
}

constexpr int64_t kClasses = 35;

std::string experiment_text(const std::string& backbone, const std::string& preset,
                            const std::string& patcher, int64_t depth) {
  std::string text = R"([experiment]
name = "ast_train_bench"

[dataset]
plugin = "folder"
root = "unused"

[frontend]
num_mel_bins = 128
target_frames = 128

[masker]
plugin = "none"

)";
  if (patcher == "square") {
    text += "[patcher]\nplugin = \"square\"\npatch_size = [16, 16]\nstride = [10, 10]\n\n";
  } else if (patcher == "fftp") {
    text += "[patcher]\nplugin = \"fftp\"\npatch_frames = 16\nstride = 4\n\n";
  } else {
    throw std::runtime_error("unknown patcher '" + patcher + "' (square or fftp)");
  }
  if (backbone != "ast" && backbone != "aum") {
    throw std::runtime_error("unknown backbone '" + backbone + "' (ast or aum)");
  }
  text += fmt::format("[backbone]\nplugin = \"{}\"\npreset = \"{}\"\n", backbone, preset);
  if (depth > 0) text += fmt::format("depth = {}\n", depth);
  text += "\n[train]\nbatch_size = 32\n";
  return text;
}

double mm_peak_gflops(int64_t n, int repeats) {
  torch::NoGradGuard no_grad;
  const auto a = torch::randn({n, n}), b = torch::randn({n, n});
  auto c = torch::empty({n, n});
  std::vector<double> ms;
  for (int i = 0; i < repeats + 2; ++i) {
    const auto t0 = Clock::now();
    at::mm_out(c, a, b);
    const double t = ms_since(t0);
    if (i >= 2) ms.push_back(t);
  }
  return 2.0 * static_cast<double>(n) * n * n / (median(ms) / 1000.0) / 1e9;
}

struct Row {
  std::string preset, patcher;
  int threads = 0;
  int64_t batch = 0, tokens = 0, params = 0;
  double fwd_gflop_per_example = 0, step_ms = 0, min_ms = 0, cpu_ms = 0, examples_per_s = 0,
         achieved = 0, peak = 0;
};

Row measure(const std::string& backbone, const std::string& preset, const std::string& patcher, int threads, int64_t batch,
            int steps, int warmup, int64_t depth, int64_t peak_size, int peak_repeats,
            const std::string& precision) {
  at::set_num_threads(threads);
  const auto exp = patchbay::load_experiment_text(experiment_text(backbone, preset, patcher, depth),
                                                  "ast_train_bench.toml", {"train.precision=" + precision},
                                                  registry());
  const auto& c = exp.runs.at(0).config;
  torch::manual_seed(0);
  patchbay::Model model = patchbay::build_model(c, registry(), kClasses);
  model.train(true);
  const patchbay::Cost cost = model.cost();
  const auto& t = c.train;
  const auto betas = t.get_real_list("betas");
  torch::optim::AdamW optimizer(model.parameters(),
                                torch::optim::AdamWOptions(t.get_real("lr"))
                                    .betas({betas.at(0), betas.at(1)})
                                    .weight_decay(t.get_real("weight_decay")));
  const auto& g = model.grid();
  const auto spec = torch::randn({batch, 1, g.freq_bins, g.frames});
  const auto labels = torch::randint(0, kClasses, {batch}, torch::kLong);
  namespace F = torch::nn::functional;
  std::vector<double> ms, cpu;
  for (int i = 0; i < warmup + steps; ++i) {
    const double c0 = process_cpu_ms();
    const auto t0 = Clock::now();
    optimizer.zero_grad();
    const auto logits = model.forward(spec);
    const auto loss = F::cross_entropy(logits, labels);
    (void)loss.item<double>();  // the trainer reads the loss every step
    loss.backward();
    optimizer.step();
    const double step = ms_since(t0);
    const double step_cpu = process_cpu_ms() - c0;
    if (i >= warmup) {
      ms.push_back(step);
      cpu.push_back(step_cpu);
    }
  }
  Row r;
  r.preset = backbone == "ast" ? preset : backbone + "/" + preset;
  r.patcher = precision == "fp32" ? patcher : patcher + "/" + precision;
  r.threads = at::get_num_threads();
  r.batch = batch;
  r.tokens = g.tokens();
  r.params = cost.params;
  r.fwd_gflop_per_example = static_cast<double>(cost.flops) / 1e9;
  r.step_ms = median(ms);
  r.min_ms = *std::min_element(ms.begin(), ms.end());
  r.cpu_ms = median(cpu);
  r.examples_per_s = static_cast<double>(batch) / (r.step_ms / 1000.0);
  r.achieved = 3.0 * r.fwd_gflop_per_example * static_cast<double>(batch) / (r.step_ms / 1000.0);
  r.peak = mm_peak_gflops(peak_size, peak_repeats);
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> presets{"tiny", "small"}, patchers{"square", "fftp"}, precisions{"fp32"};
  std::vector<int> threads{1, 2};
  int64_t batch = 32, depth = 0, peak_size = 2048;
  int steps = 5, warmup = 2, peak_repeats = 5;
  bool json = false, malloc_keep = false;
  std::string backbone = "ast";
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const auto value = [&] { return patchbay::bench::next_value(argc, argv, i); };
    if (a == "--presets") presets = split(value());
    else if (a == "--patchers") patchers = split(value());
    else if (a == "--threads") {
      threads.clear();
      for (const auto& s : split(value())) threads.push_back(std::atoi(s.c_str()));
    } else if (a == "--batch") batch = std::atoll(value().c_str());
    else if (a == "--steps") steps = std::atoi(value().c_str());
    else if (a == "--warmup") warmup = std::atoi(value().c_str());
    else if (a == "--depth") depth = std::atoll(value().c_str());
    else if (a == "--peak-size") peak_size = std::atoll(value().c_str());
    else if (a == "--peak-repeats") peak_repeats = std::atoi(value().c_str());
    else if (a == "--json") json = true;
    else if (a == "--precisions") precisions = split(value());
    else if (a == "--malloc-keep") malloc_keep = true;
    else if (a == "--backbone") backbone = value();
    else {
      std::fprintf(stderr,
                   "usage: %s [--presets tiny,small] [--patchers square,fftp] [--threads 1,2] "
                   "[--batch 32] [--steps 5] [--warmup 2] [--depth 0 (preset's)] "
                   "[--peak-size 2048] [--peak-repeats 5] [--malloc-keep] [--json] [--precisions fp32,bf16] [--backbone ast|aum]\n",
                   argv[0]);
      return 2;
    }
  }
  if (steps < 1 || batch < 1 || threads.empty()) {
    std::fprintf(stderr, "steps, batch and threads must be positive\n");
    return 2;
  }
  if (malloc_keep) {
    mallopt(M_MMAP_THRESHOLD, 32 << 20);  // glibc's ceiling for this setting (64-bit)
    mallopt(M_TRIM_THRESHOLD, INT_MAX);
  }
  try {
    if (!json) {
      std::printf("| preset | patcher | tokens | params | threads | ms/step | examples/s | "
                  "achieved GFLOP/s | mm peak GFLOP/s | %% of peak |\n");
      std::printf("|---|---|---|---|---|---|---|---|---|---|\n");
    }
    for (const auto& preset : presets) {
      for (const auto& patcher : patchers) {
        for (const int th : threads) {
         for (const auto& precision : precisions) {
          const Row r = measure(backbone, preset, patcher, th, batch, steps, warmup, depth, peak_size, peak_repeats,
                                precision);
          if (json) {
            std::printf("{\"impl\": \"patchbay\", \"preset\": \"%s\", \"patcher\": \"%s\", "
                        "\"threads\": %d, \"malloc_keep\": %s, \"batch\": %lld, \"tokens\": %lld, \"params\": %lld, "
                        "\"fwd_gflop_per_example\": %.6f, \"step_ms\": %.3f, \"min_ms\": %.3f, "
                        "\"cpu_ms\": %.3f, "
                        "\"examples_per_s\": %.2f, \"achieved_gflops\": %.2f, "
                        "\"peak_gflops\": %.2f, \"pct_peak\": %.2f}\n",
                        r.preset.c_str(), r.patcher.c_str(), r.threads,
                        malloc_keep ? "true" : "false", static_cast<long long>(r.batch), static_cast<long long>(r.tokens),
                        static_cast<long long>(r.params), r.fwd_gflop_per_example, r.step_ms,
                        r.min_ms, r.cpu_ms, r.examples_per_s, r.achieved, r.peak, 100.0 * r.achieved / r.peak);
          } else {
            std::printf("| %s | %s | %lld | %lld | %d | %.1f | %.1f | %.1f | %.1f | %.1f |\n",
                        r.preset.c_str(), r.patcher.c_str(), static_cast<long long>(r.tokens),
                        static_cast<long long>(r.params), r.threads, r.step_ms, r.examples_per_s,
                        r.achieved, r.peak, 100.0 * r.achieved / r.peak);
          }
          std::fflush(stdout);
         }
        }
      }
    }
    if (!json) {
      std::printf("\nbatch %lld, %d timed steps after %d warm-up (median); achieved = 3 x forward "
                  "FLOPs (Model::cost().flops x batch) / step time, the fwd+bwd ~= 3 x fwd "
                  "approximation; peak = torch::mm of float32 [%lld, %lld]; OPENBLAS_CORETYPE=%s%s\n",
                  static_cast<long long>(batch), steps, warmup, static_cast<long long>(peak_size),
                  static_cast<long long>(peak_size),
                  std::getenv("OPENBLAS_CORETYPE") ? std::getenv("OPENBLAS_CORETYPE") : "unset",
                  malloc_keep ? "; --malloc-keep" : "");
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "patchbay_bench_ast_train: %s\n", e.what());
    return 1;
  }
  return 0;
}
