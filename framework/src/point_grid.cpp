#include "patchbay/point_grid.hpp"

#include <map>
#include <mutex>
#include <string>

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/core/Generator.h>

#include "patchbay/config.hpp"
#include "patchbay/registry.hpp"

namespace patchbay {

const char* section_of(GridStage stage) {
  switch (stage) {
    case GridStage::patcher: return "patcher";
    case GridStage::masker: return "masker";
    case GridStage::token_dropper: return "token_dropper";
  }
  return "patcher";
}

namespace {

// Everything the grid and the two checks read: the three plugins and the options of the
// slots and of the front end that shape the input.
std::string cache_key(const ResolvedConfig& c) {
  std::string key = c.patcher.plugin + "\n" + c.masker.plugin + "\n" + c.token_dropper.plugin;
  for (const auto* options : {&c.patcher.options, &c.masker.options, &c.token_dropper.options, &c.frontend,
                              &c.backbone.options}) {
    for (const auto& [k, v] : options->values()) key += "\n" + k + "=" + to_toml(v);
    key += "\n--";
  }
  return key;
}

// Building a patcher initialises its weights from the default CPU generator. Loading a file
// must not move it: a caller that seeds and then loads would build its model from other
// weights than one that loads and then seeds. The guard puts the generator's state back.
class KeepDefaultGenerator {
 public:
  KeepDefaultGenerator() : generator_(at::detail::getDefaultCPUGenerator()) {
    std::lock_guard<std::mutex> lock(generator_.mutex());
    state_ = generator_.get_state();
  }
  ~KeepDefaultGenerator() {
    std::lock_guard<std::mutex> lock(generator_.mutex());
    generator_.set_state(state_);
  }
  KeepDefaultGenerator(const KeepDefaultGenerator&) = delete;
  KeepDefaultGenerator& operator=(const KeepDefaultGenerator&) = delete;

 private:
  at::Generator generator_;
  at::Tensor state_;
};

}  // namespace

PatchGrid point_grid(const ResolvedConfig& c, const Registry& registry, GridStage* stage) {
  const std::string key = cache_key(c);
  static std::mutex mutex;
  static std::map<std::string, PatchGrid> checked;
  {
    std::lock_guard<std::mutex> lock(mutex);
    if (auto it = checked.find(key); it != checked.end()) return it->second;
  }
  const KeepDefaultGenerator keep_generator;
  const auto enter = [stage](GridStage s) {
    if (stage) *stage = s;
  };
  enter(GridStage::patcher);
  PatcherContext pc;
  pc.freq_bins = c.frontend.get_int("num_mel_bins");
  pc.frames = c.frontend.get_int("target_frames");
  pc.embed_dim = registry.backbone_embed_dim(c.backbone.plugin, c.backbone.options);
  const PatchGrid grid = registry.make_patcher(c.patcher.plugin, c.patcher.options, pc)->grid();
  enter(GridStage::masker);
  registry.make_masker(c.masker.plugin, c.masker.options)->check(MaskContext(grid));
  if (!c.token_dropper.plugin.empty() && c.token_dropper.plugin != "none") {
    enter(GridStage::token_dropper);
    registry.make_token_dropper(c.token_dropper.plugin, c.token_dropper.options)->check(grid);
  }
  std::lock_guard<std::mutex> lock(mutex);
  checked.emplace(key, grid);
  return grid;
}

}  // namespace patchbay
