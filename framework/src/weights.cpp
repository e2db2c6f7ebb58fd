#include "patchbay/weights.hpp"

#include <unistd.h>

#include <map>
#include <set>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <torch/nn/module.h>
#include <torch/types.h>
#include <torch/utils.h>

#include "atomic_file.hpp"
#include "h5.hpp"
#include "patchbay/error.hpp"
#include "patchbay/version.hpp"

namespace fs = std::filesystem;

namespace patchbay {
namespace {

std::string shape_text(at::IntArrayRef sizes) { return fmt::format("[{}]", fmt::join(sizes, ", ")); }

bool starts_with(const std::string& s, const std::string& prefix) { return s.rfind(prefix, 0) == 0; }

// A plugin's (module name -> original name) list, checked against its module's state names.
std::map<std::string, std::string> checked_map(const std::vector<std::pair<std::string, std::string>>& pairs,
                                               const std::set<std::string>& state, const std::string& plugin) {
  std::map<std::string, std::string> out;
  std::set<std::string> originals;
  for (const auto& [name, original] : pairs) {
    const auto problem = [&](const std::string& what) {
      return PluginError("weights.bad_mapping",
                         fmt::format("{} declares original names that {}; fix its original_names()",
                                     plugin, what));
    };
    if (!state.count(name)) throw problem(fmt::format("name a tensor it does not have, '{}'", name));
    if (!out.emplace(name, original).second) throw problem(fmt::format("name '{}' twice", name));
    if (original.empty() || !originals.insert(original).second) {
      throw problem(fmt::format("give '{}' an empty or repeated original name '{}'", name, original));
    }
  }
  for (const auto& name : state) {
    if (!out.count(name)) {
      throw PluginError("weights.bad_mapping",
                        fmt::format("{} declares original names but none for its tensor '{}'; fix "
                                    "its original_names()", plugin, name));
    }
  }
  return out;
}

std::string describe(const Model& model) {
  return fmt::format("this model (patcher '{}', backbone '{}')", model.patcher_name, model.backbone_name);
}

std::string dtype_of(hid_t dataset) {
  h5::Handle type(H5Dget_type(dataset), "get a dataset's type");
  const size_t bits = 8 * H5Tget_size(type.id());
  switch (H5Tget_class(type.id())) {
    case H5T_FLOAT: return fmt::format("float{}", bits);
    case H5T_INTEGER: return fmt::format("{}int{}", H5Tget_sign(type.id()) == H5T_SGN_NONE ? "u" : "", bits);
    default: return "other";
  }
}

std::vector<int64_t> to_int64(const std::vector<hsize_t>& dims) { return {dims.begin(), dims.end()}; }

}  // namespace

std::vector<WeightName> weight_names(const Model& model) {
  const auto state = model.named_state();
  std::vector<WeightName> out;
  const auto backbone_pairs = model.backbone->original_names();
  if (backbone_pairs.empty()) {
    for (const auto& [name, t] : state) out.push_back({name, name, t});
    return out;
  }
  const std::string kPatcher = "patcher.", kBackbone = "backbone.";
  std::set<std::string> patcher_state, backbone_state;
  for (const auto& [name, t] : state) {
    if (starts_with(name, kPatcher)) patcher_state.insert(name.substr(kPatcher.size()));
    if (starts_with(name, kBackbone)) backbone_state.insert(name.substr(kBackbone.size()));
  }
  const auto backbone_map = checked_map(backbone_pairs, backbone_state, "backbone '" + model.backbone_name + "'");
  const auto patcher_pairs = model.patcher->original_names();
  const auto patcher_map = patcher_pairs.empty()
                               ? std::map<std::string, std::string>{}
                               : checked_map(patcher_pairs, patcher_state, "patcher '" + model.patcher_name + "'");
  const std::string prefix = model.backbone->original_patcher_prefix();
  std::set<std::string> seen;
  for (const auto& [name, t] : state) {
    std::string file;
    if (starts_with(name, kBackbone)) {
      file = backbone_map.at(name.substr(kBackbone.size()));
    } else {
      file = patcher_map.empty() ? name : prefix + patcher_map.at(name.substr(kPatcher.size()));
    }
    if (!seen.insert(file).second) {
      throw PluginError("weights.bad_mapping",
                        fmt::format("patcher '{}' and backbone '{}' both name a tensor '{}'; one of "
                                    "their original_names() must change", model.patcher_name,
                                    model.backbone_name, file));
    }
    out.push_back({name, file, t});
  }
  return out;
}

void export_weights(const Model& model, const fs::path& file, const std::string& source,
                    const std::string& config_toml) {
  const auto names = weight_names(model);
  replace_file(file, "weights file", [&](const fs::path& temp) {
    auto f = h5::create_file(temp);
    const hid_t root = f.id();
    const auto& g = model.grid();
    h5::write_attr(root, "format", "patchbay.weights");
    h5::write_attr(root, "format_version", kWeightsFormatVersion);
    h5::write_attr(root, "names", model.backbone->original_names().empty() ? "patchbay" : "original");
    h5::write_attr(root, "architecture", model.backbone_name);
    h5::write_attr(root, "patcher", model.patcher_name);
    h5::write_attr(root, "source", source);
    h5::write_attr(root, "config", config_toml);
    h5::write_attr(root, "patchbay_version", version());
    const std::pair<const char*, int64_t> geometry[] = {
        {"freq_bins", g.freq_bins},     {"frames", g.frames},           {"patch_freq", g.patch_freq},
        {"patch_time", g.patch_time},   {"stride_freq", g.stride_freq}, {"stride_time", g.stride_time},
        {"tokens", g.tokens()},         {"num_classes", model.num_classes}};
    for (const auto& [key, value] : geometry) h5::write_attr(root, key, value);
    for (const auto& w : names) {
      auto t = w.tensor.detach().to(torch::kCPU);
      const std::vector<hsize_t> dims(t.sizes().begin(), t.sizes().end());
      h5::Handle ds;
      if (t.is_floating_point()) {
        t = t.to(torch::kFloat).contiguous();
        ds = h5::write_nd(root, w.file, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, t.data_ptr(), dims);
      } else if (at::isIntegralType(t.scalar_type(), /*includeBool=*/false)) {
        t = t.to(torch::kLong).contiguous();
        ds = h5::write_nd(root, w.file, H5T_STD_I64LE, H5T_NATIVE_INT64, t.data_ptr(), dims);
      } else {
        throw Error("weights.unsupported",
                    fmt::format("tensor '{}' is {}, which a weights file does not hold (floating "
                                "point and integer tensors only)", w.patchbay, c10::toString(t.scalar_type())));
      }
      h5::write_attr(ds.id(), "patchbay_name", w.patchbay);
    }
    h5::flush(root);  // a full disk fails here, loudly, not at close
  });
}

void import_weights(Model& model, const fs::path& file) {
  if (!fs::exists(file)) {
    throw Error("weights.not_found", fmt::format("weights file '{}' does not exist; write one with "
                                                 "'patchbay weights export'", file.string()));
  }
  const auto names = weight_names(model);
  h5::Handle f;
  try {
    f = h5::open_file_read(file);
  } catch (const Error&) {
    throw Error("weights.unreadable", fmt::format("'{}' is not an HDF5 file; weights files are "
                                                  "written by 'patchbay weights export'", file.string()));
  }
  const std::string where = file.string();
  std::vector<std::string> problems;
  std::set<std::string> wanted;
  for (const auto& w : names) {
    wanted.insert(w.file);
    if (!h5::exists(f.id(), w.file) || !h5::is_dataset(f.id(), w.file)) {
      problems.push_back(fmt::format("'{}' has no tensor '{}' ({} {}), which {} needs", where, w.file,
                                     w.patchbay, shape_text(w.tensor.sizes()), describe(model)));
      continue;
    }
    auto ds = h5::open_dataset(f.id(), w.file);
    const auto cls = h5::type_class(ds.id());
    if (cls != H5T_FLOAT && cls != H5T_INTEGER) {
      throw Error("weights.unreadable", fmt::format("tensor '{}' in '{}' is not numeric ({}); weights "
                                                    "files hold numbers", w.file, where, dtype_of(ds.id())));
    }
    const auto shape = to_int64(h5::shape_of(ds.id()));
    if (at::IntArrayRef(shape) != w.tensor.sizes()) {
      problems.push_back(fmt::format("tensor '{}' is {} in '{}' but {} in {} ({})", w.file,
                                     shape_text(shape), where, shape_text(w.tensor.sizes()),
                                     describe(model), w.patchbay));
    }
  }
  for (const auto& name : h5::children(f.id())) {
    if (wanted.count(name)) continue;
    std::string shape;
    if (h5::is_dataset(f.id(), name)) {
      shape = " " + shape_text(to_int64(h5::shape_of(h5::open_dataset(f.id(), name).id())));
    }
    problems.push_back(fmt::format("'{}' holds tensor '{}'{}, which {} does not have", where, name,
                                   shape, describe(model)));
  }
  if (!problems.empty()) {
    const std::string more =
        problems.size() > 1 ? fmt::format(" ({} more mismatched tensor{})", problems.size() - 1,
                                          problems.size() > 2 ? "s" : "")
                            : "";
    throw Error("weights.mismatch",
                fmt::format("{}{}; a weights file fits only a model of the same architecture: the "
                            "same backbone and options (preset, embed_dim, depth, ...), patcher "
                            "geometry, input size (frontend.num_mel_bins, target_frames) and number "
                            "of classes; compare with 'patchbay weights list {}'",
                            problems.front(), more, where));
  }
  // Everything fits: read it all, then change the model.
  std::vector<at::Tensor> loaded;
  loaded.reserve(names.size());
  for (const auto& w : names) {
    auto ds = h5::open_dataset(f.id(), w.file);
    const bool integral = at::isIntegralType(w.tensor.scalar_type(), /*includeBool=*/true);
    auto t = torch::empty(w.tensor.sizes(), integral ? torch::kLong : torch::kFloat);
    h5::read_nd(ds.id(), integral ? H5T_NATIVE_INT64 : H5T_NATIVE_FLOAT, t.data_ptr());
    loaded.push_back(std::move(t));
  }
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < names.size(); ++i) names[i].tensor.copy_(loaded[i]);
}

WeightsIndex read_weights_index(const fs::path& file) {
  if (!fs::exists(file)) {
    throw Error("weights.not_found", fmt::format("weights file '{}' does not exist", file.string()));
  }
  h5::Handle f;
  try {
    f = h5::open_file_read(file);
  } catch (const Error&) {
    throw Error("weights.unreadable", fmt::format("'{}' is not an HDF5 file", file.string()));
  }
  WeightsIndex index;
  for (const auto& key : h5::attr_names(f.id())) {
    if (auto s = h5::read_attr_string(f.id(), key)) {
      index.attrs[key] = *s;
    } else if (auto d = h5::read_attr_double(f.id(), key)) {
      index.attrs[key] = fmt::format("{}", *d);
    }
  }
  for (const auto& name : h5::children(f.id())) {
    if (!h5::is_dataset(f.id(), name)) continue;
    auto ds = h5::open_dataset(f.id(), name);
    StoredTensor t;
    t.name = name;
    t.patchbay_name = h5::read_attr_string(ds.id(), "patchbay_name").value_or("");
    t.shape = to_int64(h5::shape_of(ds.id()));
    t.dtype = dtype_of(ds.id());
    index.tensors.push_back(std::move(t));
  }
  return index;
}

}  // namespace patchbay
