// One run's model: the configured patcher and backbone (and the masker and token dropper used
// in training),
// built from a resolved configuration through the registry, plus its cost and latency.
//
//   Model model = build_model(run.config, registry, dataset->class_names().size());
//   at::Tensor logits = model.forward(spec);      // spec [B, 1, F, T] -> logits [B, C]
//   at::Tensor keep = model.draw_keep(generator); // training: the token dropper's choice
//   logits = model.forward(spec, keep);           // only those tokens reach the backbone
//   Cost cost = model.cost();                     // patcher + backbone, one example
//   Latency l = measure_latency(model, 32, 10);   // batch-1 median ms, batch-32 throughput
//
// Ownership: the Model holds shared_ptrs to the plugin objects (which keep their libraries
// loaded). Errors: whatever the factories throw (ConfigError, ShapeError, PluginError).
#pragma once
#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "patchbay/config.hpp"
#include "patchbay/export.hpp"
#include "patchbay/plugin_kinds.hpp"
#include "patchbay/precision.hpp"
#include "patchbay/registry.hpp"

namespace patchbay {

struct PATCHBAY_API Model {
  std::shared_ptr<Patcher> patcher;
  std::shared_ptr<Masker> masker;
  std::shared_ptr<TokenDropper> token_dropper;
  std::string token_dropper_name = "none";
  std::shared_ptr<Backbone> backbone;
  std::string patcher_name;
  std::string backbone_name;
  int64_t num_classes = 0;
  // With backbone.match_paper_macs: the option varied (match_by) and the value chosen;
  // empty / 0 otherwise.
  std::string matched_option;
  int64_t matched_value = 0;
  // train.precision: forward() runs under this autocast (precision.hpp).
  Precision precision = Precision::fp32;
  // Where the parameters live (device.hpp); build_model builds on the CPU, to() moves.
  c10::Device device = c10::Device(c10::DeviceType::CPU);

  // Moves the patcher's and backbone's parameters and buffers to `to` (before an optimiser
  // is made from them: it keeps its state where the parameters are).
  void to(const c10::Device& to);
  // spec [B, 1, F, T] on any device -> float32 logits [B, C] on `device`, the forward pass in
  // `precision`; throws ShapeError "shape.logits" naming the backbone when the logits are not
  // [B, C].
  at::Tensor forward(const at::Tensor& spec);
  // As forward, with only the tokens at `keep` (int64 [K], from draw_keep) passed on by the
  // backbone (Backbone::forward_kept); an undefined `keep` is forward(spec).
  at::Tensor forward(const at::Tensor& spec, const at::Tensor& keep);
  // One training step's kept tokens from the token dropper, checked against its contract
  // (PluginError "plugin.bad_keep" naming the plugin when they are not kept(grid) strictly
  // increasing indices); undefined when the dropper is "none" (nothing drawn).
  at::Tensor draw_keep(at::Generator& generator) const;
  // Tokens the backbone sees in one training step: the grid's, or the dropper's kept(grid).
  int64_t train_tokens() const;
  // Every learnable tensor, patcher first ("patcher.<name>", "backbone.<name>").
  std::vector<std::pair<std::string, at::Tensor>> named_parameters() const;
  // Parameters and buffers, the state a checkpoint keeps.
  std::vector<std::pair<std::string, at::Tensor>> named_state() const;
  std::vector<at::Tensor> parameters() const;
  void train(bool on);
  Cost cost() const;   // patcher + backbone
  const PatchGrid& grid() const { return patcher->grid(); }
};

// With backbone.match_paper_macs > 0, the backbone's match_by option (embed_dim or depth) is
// searched over 1 .. its configured value: candidates are built (values a backbone refuses,
// e.g. a width the heads do not divide, are skipped) and the model whose paper MACs are
// closest to the target is returned. Throws ConfigError "config.match_unreachable" when even
// the smallest model costs more than twice the target. A token dropper other than "none" is
// checked against the grid (TokenDropper::check) and the backbone (ConfigError
// "config.token_drop_unsupported" when the backbone cannot drop tokens).
PATCHBAY_API Model build_model(const ResolvedConfig& config, const Registry& registry,
                               int64_t num_classes);

// Median wall time of inference forward passes on random input, after two warm-up passes,
// with the current intra-op thread count.
struct Latency {
  double batch1_ms = 0.0;       // median of `repeats` batch-1 passes
  double throughput = 0.0;      // examples per second at `batch` (0 when batch = 0)
  int64_t batch = 0;
  int threads = 0;              // at::get_num_threads() during the measurement
};
PATCHBAY_API Latency measure_latency(Model& model, int64_t batch, int repeats);

}  // namespace patchbay
