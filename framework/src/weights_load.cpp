#include "patchbay/weights_load.hpp"

#include <fnmatch.h>

#include <algorithm>

#include <set>

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <torch/utils.h>

#include "h5.hpp"
#include "patchbay/error.hpp"
#include "patchbay/torch_checkpoint.hpp"
#include "patchbay/weights.hpp"
#include "weights_adapt.hpp"

namespace fs = std::filesystem;

namespace patchbay {
namespace {

std::string shape_text(at::IntArrayRef sizes) { return fmt::format("[{}]", fmt::join(sizes, ", ")); }

std::optional<int64_t> attr_int(const std::map<std::string, std::string>& attrs, const char* key) {
  const auto it = attrs.find(key);
  if (it == attrs.end()) return std::nullopt;
  try {
    return static_cast<int64_t>(std::stod(it->second));
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

// grid_rows / grid_cols, or a patchbay export's geometry.
std::optional<std::pair<int64_t, int64_t>> grid_of(const std::map<std::string, std::string>& attrs) {
  if (auto r = attr_int(attrs, "grid_rows"), c = attr_int(attrs, "grid_cols"); r && c) return std::make_pair(*r, *c);
  const auto f = attr_int(attrs, "freq_bins"), t = attr_int(attrs, "frames"), pf = attr_int(attrs, "patch_freq"),
             pt = attr_int(attrs, "patch_time"), sf = attr_int(attrs, "stride_freq"),
             st = attr_int(attrs, "stride_time");
  if (!f || !t || !pf || !pt || !sf || !st || *sf < 1 || *st < 1 || *pf > *f || *pt > *t) return std::nullopt;
  return std::make_pair((*f - *pf) / *sf + 1, (*t - *pt) / *st + 1);
}

WeightsSource read_hdf5(const fs::path& file) {
  WeightsSource src;
  src.file = file;
  const WeightsIndex index = read_weights_index(file);
  src.attrs = index.attrs;
  src.format = index.attrs.count("format") ? "patchbay weights file" : "HDF5 state dict";
  src.grid = grid_of(src.attrs);
  auto f = h5::open_file_read(file);
  for (const auto& t : index.tensors) {
    auto ds = h5::open_dataset(f.id(), t.name);
    const auto cls = h5::type_class(ds.id());
    if (cls != H5T_FLOAT && cls != H5T_INTEGER) {
      throw Error("weights.unreadable", fmt::format("tensor '{}' in '{}' is not numeric ({}); weights files hold "
                                                    "numbers", t.name, file.string(), t.dtype));
    }
    const bool integral = cls == H5T_INTEGER;
    auto tensor = at::empty(t.shape, integral ? at::kLong : at::kFloat);
    h5::read_nd(ds.id(), integral ? H5T_NATIVE_INT64 : H5T_NATIVE_FLOAT, tensor.data_ptr());
    src.tensors.emplace(t.name, std::move(tensor));
  }
  return src;
}

bool matches(const std::vector<std::string>& patterns, const std::string& name) {
  for (const auto& p : patterns) {
    if (fnmatch(p.c_str(), name.c_str(), 0) == 0) return true;
  }
  return false;
}

std::string describe(const Model& model) {
  return fmt::format("this model (patcher '{}', backbone '{}')", model.patcher_name, model.backbone_name);
}

// What one model tensor becomes; `value` is set for loaded and adapted ones.
struct Decision {
  InitAction action;
  at::Tensor value;
  std::string problem;  // non-empty: a mismatch
};

class Loader {
 public:
  Loader(const Model& model, const WeightsSource& source, const InitOptions& options)
      : model_(model), source_(source), options_(options), layout_(model.backbone->weight_layout()) {}

  Decision decide(const WeightName& w) const {
    Decision d;
    d.action.name = w.file;
    d.action.patchbay = w.patchbay;
    if (matches(options_.exclude, w.file)) return fresh(d, "excluded (init_exclude)");
    const auto it = source_.tensors.find(w.file);
    if (it == source_.tensors.end()) {
      d.problem = fmt::format("'{}' has no tensor '{}' ({} {}), which {} needs", where(), w.file, w.patchbay,
                              shape_text(w.tensor.sizes()), describe(model_));
      return d;
    }
    const at::Tensor& v = it->second;
    if (v.sizes() == w.tensor.sizes()) {
      d.value = v;
      return d;
    }
    if (!options_.strict) {
      if (w.patchbay == "backbone." + layout_.pos_embed) return positions(d, v, w);
      if (is_patch_kernel(w, v)) {
        d.action.kind = InitAction::Kind::adapted;
        d.value = adapt::resize_patch_kernel(v, w.tensor.size(2), w.tensor.size(3), d.action.detail);
        return d;
      }
      if (is_head(w, v)) {
        return fresh(d, fmt::format("classification head: {} classes in the file, {} here", v.size(0),
                                    w.tensor.size(0)));
      }
    }
    d.problem = fmt::format("tensor '{}' is {} in '{}' but {} in {} ({})", w.file, shape_text(v.sizes()), where(),
                            shape_text(w.tensor.sizes()), describe(model_), w.patchbay);
    return d;
  }

  // The file's tensors the model has no name for: ignored or mismatches.
  std::vector<Decision> leftovers(const std::set<std::string>& wanted) const {
    std::vector<Decision> out;
    const std::set<std::string> unused(layout_.unused_originals.begin(), layout_.unused_originals.end());
    for (const auto& [name, v] : source_.tensors) {
      if (wanted.count(name)) continue;
      Decision d;
      d.action.name = name;
      d.action.kind = InitAction::Kind::ignored;
      if (matches(options_.exclude, name)) {
        d.action.detail = "excluded (init_exclude)";
      } else if (!options_.strict && unused.count(name)) {
        d.action.detail = fmt::format("backbone '{}' never uses it", model_.backbone_name);
      } else {
        d.problem = fmt::format("'{}' holds tensor '{}' {}, which {} does not have", where(), name,
                                shape_text(v.sizes()), describe(model_));
      }
      out.push_back(std::move(d));
    }
    return out;
  }

 private:
  std::string where() const { return source_.file.string(); }

  static Decision fresh(Decision& d, std::string why) {
    d.action.kind = InitAction::Kind::fresh;
    d.action.detail = std::move(why);
    return d;
  }

  // The patcher's Conv2d kernel [D, 1, pf, pt] (the grid's kernel), from another kernel size.
  bool is_patch_kernel(const WeightName& w, const at::Tensor& v) const {
    const PatchGrid& g = model_.grid();
    return w.patchbay.rfind("patcher.", 0) == 0 && w.tensor.dim() == 4 && v.dim() == 4 &&
           w.tensor.size(2) == g.patch_freq && w.tensor.size(3) == g.patch_time &&
           v.size(0) == w.tensor.size(0) && v.size(1) == w.tensor.size(1);
  }

  bool is_head(const WeightName& w, const at::Tensor& v) const {
    if (w.tensor.dim() < 1 || v.dim() != w.tensor.dim() || w.tensor.size(0) != model_.num_classes) return false;
    for (int64_t d = 1; d < v.dim(); ++d) {
      if (v.size(d) != w.tensor.size(d)) return false;
    }
    return true;
  }

  Decision positions(Decision& d, const at::Tensor& v, const WeightName& w) const {
    const PatchGrid& g = model_.grid();
    const int64_t s = layout_.special_tokens;
    if (v.dim() != 3 || v.size(0) != 1 || v.size(2) != w.tensor.size(2) || v.size(1) <= s) {
      d.problem = fmt::format("positional embedding '{}' is {} in '{}' but {} here: not the same width",
                              w.file, shape_text(v.sizes()), where(), shape_text(w.tensor.sizes()));
      return d;
    }
    const int64_t n = v.size(1) - s;
    if (!source_.grid || source_.grid->first * source_.grid->second != n) {
      throw Error("weights.grid_unknown",
                  fmt::format("'{}' holds '{}' for {} tokens but does not say their grid (rows along frequency x "
                              "columns along time), which resizing it to this model's {} x {} needs; convert it "
                              "once with `patchbay weights import {} --grid RxC --out W.h5` (AST on AudioSet: "
                              "12x101) and start from W.h5", where(), w.file, n, g.rows, g.cols, where()));
    }
    const auto [rows, cols] = *source_.grid;
    const auto parts = adapt::split_positions(v, layout_);
    const at::Tensor grid = adapt::resize_grid_positions(parts.grid.reshape({rows, cols, -1}), g.rows, g.cols);
    d.value = adapt::join_positions(parts.special.to(at::kFloat), grid.reshape({g.rows * g.cols, -1}), layout_);
    d.action.kind = InitAction::Kind::adapted;
    d.action.detail = fmt::format("positional grid {}x{} -> {}x{}: {}bilinear interpolation; {} class token row{} "
                                  "kept", rows, cols, g.rows, g.cols,
                                  g.rows == 1 && rows > 1 ? "mean over the frequency rows, then " : "", s,
                                  s == 1 ? "" : "s");
    return d;
  }

  const Model& model_;
  const WeightsSource& source_;
  const InitOptions& options_;
  WeightLayout layout_;
};

}  // namespace

WeightsSource read_weights_source(const fs::path& file) {
  if (!fs::exists(file)) {
    throw Error("weights.not_found", fmt::format("weights file '{}' does not exist; write one with 'patchbay weights "
                                                 "export' or 'patchbay weights import'", file.string()));
  }
  if (looks_like_torch_checkpoint(file)) {
    TorchCheckpoint ckpt = read_torch_checkpoint(file);
    WeightsSource src;
    src.file = file;
    std::vector<std::string> how;
    if (!ckpt.nested_under.empty()) how.push_back(fmt::format("state dict under '{}'", ckpt.nested_under));
    if (!ckpt.removed_prefix.empty()) how.push_back(fmt::format("prefix '{}' removed", ckpt.removed_prefix));
    src.format = how.empty() ? "torch.save checkpoint" : fmt::format("torch.save checkpoint ({})", fmt::join(how, ", "));
    src.tensors = std::move(ckpt.tensors);
    return src;
  }
  try {
    return read_hdf5(file);
  } catch (const Error& e) {
    if (e.id() != "weights.unreadable") throw;
    throw Error("weights.unreadable",
                fmt::format("'{}' is neither an HDF5 weights file ('patchbay weights export') nor a torch.save "
                            "checkpoint (.pth / .pt)", file.string()));
  }
}

int64_t InitReport::count(InitAction::Kind kind) const {
  return static_cast<int64_t>(std::count_if(actions.begin(), actions.end(),
                                            [&](const InitAction& a) { return a.kind == kind; }));
}

const char* to_string(InitAction::Kind kind) {
  switch (kind) {
    case InitAction::Kind::loaded: return "loaded";
    case InitAction::Kind::adapted: return "adapted";
    case InitAction::Kind::fresh: return "fresh";
    case InitAction::Kind::ignored: return "ignored";
  }
  return "?";
}

std::string InitReport::summary() const {
  using K = InitAction::Kind;
  return fmt::format("{} loaded, {} adapted, {} fresh, {} ignored", count(K::loaded), count(K::adapted),
                     count(K::fresh), count(K::ignored));
}

std::string InitReport::details() const {
  std::string out;
  for (const auto& a : actions) {
    if (a.kind == InitAction::Kind::loaded) continue;
    out += fmt::format("  {:<8} {}: {}\n", to_string(a.kind), a.name, a.detail);
  }
  return out;
}

InitReport load_weights(Model& model, const WeightsSource& source, const InitOptions& options) {
  const auto names = weight_names(model);
  const Loader loader(model, source, options);
  std::vector<Decision> decisions;
  std::set<std::string> wanted;
  for (const auto& w : names) {
    wanted.insert(w.file);
    decisions.push_back(loader.decide(w));
  }
  for (auto& d : loader.leftovers(wanted)) decisions.push_back(std::move(d));
  std::vector<std::string> problems;
  for (const auto& d : decisions) {
    if (!d.problem.empty()) problems.push_back(d.problem);
  }
  if (!problems.empty()) {
    const std::string more = problems.size() > 1 ? fmt::format(" ({} more mismatched tensor{})", problems.size() - 1,
                                                               problems.size() > 2 ? "s" : "")
                                                 : "";
    throw Error("weights.mismatch",
                fmt::format("{}{}; {}compare with 'patchbay weights list {}'", problems.front(), more,
                            options.strict
                                ? "a weights file fits only a model of the same architecture: the same backbone and "
                                  "options (preset, embed_dim, depth, ...), patcher geometry, input size "
                                  "(frontend.num_mel_bins, target_frames) and number of classes; "
                                : "only the positional embedding, the patch embedding and the classification head "
                                  "adapt to another geometry or class count (init_exclude drops others); ",
                            source.file.string()));
  }
  InitReport report;
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < decisions.size(); ++i) {
    if (i < names.size() && decisions[i].value.defined()) names[i].tensor.copy_(decisions[i].value);
    report.actions.push_back(decisions[i].action);
  }
  return report;
}

std::vector<std::string> split_patterns(const std::string& text) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= text.size()) {
    const size_t end = std::min(text.find(',', start), text.size());
    std::string p = text.substr(start, end - start);
    p.erase(0, p.find_first_not_of(" \t"));
    p.erase(p.find_last_not_of(" \t") + 1);
    if (!p.empty()) out.push_back(p);
    start = end + 1;
  }
  return out;
}

}  // namespace patchbay
