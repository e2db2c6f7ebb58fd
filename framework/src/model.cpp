#include "patchbay/model.hpp"

#include <algorithm>
#include <chrono>
#include <optional>

#include <ATen/Parallel.h>
#include <fmt/format.h>
#include <torch/nn/module.h>
#include <torch/types.h>
#include <torch/utils.h>

#include "patchbay/device.hpp"
#include "patchbay/error.hpp"

namespace patchbay {

at::Tensor Model::forward(const at::Tensor& spec) { return forward(spec, at::Tensor()); }

at::Tensor Model::forward(const at::Tensor& spec, const at::Tensor& keep) {
  at::Tensor logits;
  {
    const AutocastScope autocast(precision, device.type());
    // Batches are made (and masked) on the CPU; the copy to a GPU is the step's only one.
    const at::Tensor tokens = patcher->forward(spec.to(device, /*non_blocking=*/true));
    logits = keep.defined() ? backbone->forward_kept(tokens, keep.to(device)) : backbone->forward(tokens);
  }
  // The loss and the metrics in float32, as autocast computes losses.
  if (logits.scalar_type() != at::kFloat) logits = logits.to(at::kFloat);
  if (logits.dim() != 2 || logits.size(0) != spec.size(0) || logits.size(1) != num_classes) {
    throw ShapeError("shape.logits",
                     fmt::format("backbone '{}' returned logits of shape [{}], expected [{}, {}]",
                                 backbone_name, fmt::join(logits.sizes(), ", "), spec.size(0),
                                 num_classes));
  }
  return logits;
}

at::Tensor Model::draw_keep(at::Generator& generator) const {
  if (token_dropper_name == "none") return {};
  const PatchGrid& g = grid();
  const int64_t k = token_dropper->kept(g);
  at::Tensor keep = token_dropper->keep(g, generator);
  const auto refuse = [&](const std::string& what) {
    throw PluginError("plugin.bad_keep",
                      fmt::format("token dropper '{}' broke its contract: {} (expected {} strictly increasing "
                                  "int64 indices into the grid's {} tokens, as kept() says)",
                                  token_dropper_name, what, k, g.tokens()));
  };
  if (!keep.defined() || keep.dim() != 1 || keep.scalar_type() != at::kLong) refuse("keep() did not return an int64 [K] tensor");
  if (keep.size(0) != k) refuse(fmt::format("keep() returned {} indices", keep.size(0)));
  if (k > 0 && (keep.min().item<int64_t>() < 0 || keep.max().item<int64_t>() >= g.tokens())) {
    refuse("an index is outside the grid");
  }
  if (k > 1 && !(keep.slice(0, 1) > keep.slice(0, 0, k - 1)).all().item<bool>()) {
    refuse("the indices are not strictly increasing");
  }
  return keep;
}

int64_t Model::train_tokens() const {
  return token_dropper_name == "none" ? grid().tokens() : token_dropper->kept(grid());
}

std::vector<std::pair<std::string, at::Tensor>> Model::named_parameters() const {
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (const auto& p : patcher->module().named_parameters()) out.emplace_back("patcher." + p.key(), p.value());
  for (const auto& p : backbone->module().named_parameters()) out.emplace_back("backbone." + p.key(), p.value());
  return out;
}

std::vector<std::pair<std::string, at::Tensor>> Model::named_state() const {
  auto out = named_parameters();
  for (const auto& b : patcher->module().named_buffers()) out.emplace_back("patcher." + b.key(), b.value());
  for (const auto& b : backbone->module().named_buffers()) out.emplace_back("backbone." + b.key(), b.value());
  return out;
}

std::vector<at::Tensor> Model::parameters() const {
  std::vector<at::Tensor> out;
  for (const auto& [name, p] : named_parameters()) out.push_back(p);
  return out;
}

void Model::to(const c10::Device& to) {
  patcher->module().to(to);
  backbone->module().to(to);
  device = to;
}

void Model::train(bool on) {
  patcher->module().train(on);
  backbone->module().train(on);
}

Cost Model::cost() const {
  const Cost a = patcher->cost();
  const Cost b = backbone->cost();
  return Cost{a.params + b.params, a.paper_macs + b.paper_macs, a.flops + b.flops};
}

namespace {

// The dropper fits the grid and the backbone can take what it keeps.
void check_token_dropper(const Model& m) {
  m.token_dropper->check(m.grid());
  const int64_t k = m.token_dropper->kept(m.grid());
  if (k < 1 || k > m.grid().tokens()) {
    throw ConfigError("config.token_dropper",
                      fmt::format("token dropper '{}' would keep {} of the grid's {} tokens ({}); "
                                  "drop fewer", m.token_dropper_name, k, m.grid().tokens(), m.grid().describe()));
  }
  if (!m.backbone->drops_tokens()) {
    throw ConfigError("config.token_drop_unsupported",
                      fmt::format("backbone '{}' cannot drop tokens, so [token_dropper] '{}' cannot train it; "
                                  "set [token_dropper] plugin = \"none\" or use a backbone that can (ast, aum, "
                                  "linear_probe)", m.backbone_name, m.token_dropper_name));
  }
}

Model build_exactly(const ResolvedConfig& c, const Registry& registry, int64_t num_classes) {
  Model m;
  m.patcher_name = c.patcher.plugin;
  m.backbone_name = c.backbone.plugin;
  m.num_classes = num_classes;
  PatcherContext pc;
  pc.freq_bins = c.frontend.get_int("num_mel_bins");
  pc.frames = c.frontend.get_int("target_frames");
  pc.embed_dim = registry.backbone_embed_dim(c.backbone.plugin, c.backbone.options);
  m.patcher = registry.make_patcher(c.patcher.plugin, c.patcher.options, pc);
  BackboneContext bc;
  bc.grid = m.patcher->grid();
  bc.embed_dim = pc.embed_dim;
  bc.num_classes = num_classes;
  m.backbone = registry.make_backbone(c.backbone.plugin, c.backbone.options, bc);
  {
    torch::NoGradGuard no_grad;
    m.backbone->init_patcher(*m.patcher);
  }
  m.masker = registry.make_masker(c.masker.plugin, c.masker.options);
  m.token_dropper_name = c.token_dropper.plugin.empty() ? "none" : c.token_dropper.plugin;
  // "none" drops nothing, so it is never asked (nor needs to be registered, as in tests that
  // link a few plugins).
  if (m.token_dropper_name != "none") {
    m.token_dropper = registry.make_token_dropper(m.token_dropper_name, c.token_dropper.options);
    check_token_dropper(m);
  }
  return m;
}

// The model with backbone option `key` = v, or nothing when the backbone refuses that value
// (a ConfigError, e.g. heads not dividing the width).
std::optional<Model> try_build(ResolvedConfig c, const Registry& registry, int64_t num_classes,
                               const std::string& key, int64_t v) {
  c.backbone.options.set(key, OptionValue{v});
  try {
    Model m = build_exactly(c, registry, num_classes);
    m.matched_option = key;
    m.matched_value = v;
    return m;
  } catch (const ConfigError&) {
    return std::nullopt;
  }
}

// The model as configured, or, with match_paper_macs, the one whose paper MACs are closest.
Model build_matched(const ResolvedConfig& c, const Registry& registry, int64_t num_classes) {
  const Options& o = c.backbone.options;
  if (!o.contains(kMatchPaperMacs) || o.get_int(kMatchPaperMacs) <= 0) {
    return build_exactly(c, registry, num_classes);
  }
  const int64_t target = o.get_int(kMatchPaperMacs);
  const std::string key = o.get_string(kMatchBy);
  int64_t top = o.get_int(key);
  if (key == "embed_dim" && top <= 0) top = registry.backbone_embed_dim(c.backbone.plugin, o);
  // Paper MACs grow with width and depth: binary search for the largest buildable value
  // whose model costs at most the target, then compare it with the next buildable one up.
  const auto macs = [](const Model& m) { return m.cost().paper_macs; };
  std::optional<Model> below;  // largest found with macs <= target
  int64_t lo = 1, hi = top;
  while (lo <= hi) {
    const int64_t mid = lo + (hi - lo) / 2;
    std::optional<Model> m;
    int64_t v = mid;
    for (; v >= lo && !m; --v) m = try_build(c, registry, num_classes, key, v);
    if (!m) {  // nothing buildable in [lo, mid]
      lo = mid + 1;
      continue;
    }
    if (macs(*m) <= target) {
      lo = mid + 1;
      below = std::move(m);
    } else {
      hi = v;  // the loop stepped past the value it built (v + 1): it and all above cost too much
    }
  }
  std::optional<Model> above;
  for (int64_t v = below ? below->matched_value + 1 : 1; v <= top && !above; ++v) {
    above = try_build(c, registry, num_classes, key, v);
  }
  if (!below && !above) {
    throw ConfigError("config.match_unreachable",
                      fmt::format("backbone '{}': no {} in 1..{} builds a model to compare with "
                                  "match_paper_macs = {}", c.backbone.plugin, key, top, target));
  }
  if (!below || (above && macs(*above) - target < target - macs(*below))) {
    if (macs(*above) > 2 * target) {
      throw ConfigError("config.match_unreachable",
                        fmt::format("backbone '{}': even {} = {} costs {} paper MACs, more than "
                                    "twice match_paper_macs = {}; match by another option "
                                    "(match_by) or raise the target", c.backbone.plugin, key,
                                    above->matched_value, macs(*above), target));
    }
    return std::move(*above);
  }
  return std::move(*below);
}

}  // namespace

Model build_model(const ResolvedConfig& c, const Registry& registry, int64_t num_classes) {
  Model m = build_matched(c, registry, num_classes);
  if (c.train.contains("precision")) m.precision = precision_of(c.train.get_string("precision"));
  // Before anything trains: options the masker cannot honour on this geometry.
  m.masker->check(MaskContext(m.grid()));
  return m;
}

namespace {

double median_forward_ms(Model& model, int64_t batch, int repeats) {
  const auto& g = model.grid();
  const auto input = torch::randn({batch, 1, g.freq_bins, g.frames}, torch::TensorOptions().device(model.device));
  std::vector<double> ms;
  for (int i = 0; i < repeats + 2; ++i) {
    synchronize(model.device);
    const auto t0 = std::chrono::steady_clock::now();
    const auto logits = model.forward(input);
    synchronize(model.device);  // CUDA returns before its kernels finish
    const auto t1 = std::chrono::steady_clock::now();
    if (i >= 2) ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
  }
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

}  // namespace

Latency measure_latency(Model& model, int64_t batch, int repeats) {
  torch::NoGradGuard no_grad;
  model.train(false);
  Latency l;
  l.threads = at::get_num_threads();
  l.batch1_ms = median_forward_ms(model, 1, std::max(1, repeats));
  l.batch = std::max<int64_t>(0, batch);
  if (l.batch > 0) l.throughput = l.batch / (median_forward_ms(model, l.batch, std::max(3, repeats / 4)) / 1000.0);
  return l;
}

}  // namespace patchbay
