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
#include "patchbay/weights_load.hpp"

namespace fs = std::filesystem;

namespace patchbay {
namespace {

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

// One tensor as a float32 (floating point) or int64 (integer) dataset.
void write_tensor(hid_t root, const std::string& name, const at::Tensor& tensor, const std::string& patchbay_name) {
  auto t = tensor.detach().to(torch::kCPU);
  const std::vector<hsize_t> dims(t.sizes().begin(), t.sizes().end());
  h5::Handle ds;
  if (t.is_floating_point()) {
    t = t.to(torch::kFloat).contiguous();
    ds = h5::write_nd(root, name, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, t.data_ptr(), dims);
  } else if (at::isIntegralType(t.scalar_type(), /*includeBool=*/false)) {
    t = t.to(torch::kLong).contiguous();
    ds = h5::write_nd(root, name, H5T_STD_I64LE, H5T_NATIVE_INT64, t.data_ptr(), dims);
  } else {
    throw Error("weights.unsupported",
                fmt::format("tensor '{}' is {}, which a weights file does not hold (floating "
                            "point and integer tensors only)", name, c10::toString(t.scalar_type())));
  }
  if (!patchbay_name.empty()) h5::write_attr(ds.id(), "patchbay_name", patchbay_name);
}

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
                    const std::string& config_toml, const InferenceInfo* inference) {
  const auto names = weight_names(model);
  std::string class_names;
  if (inference) {
    for (const auto& c : inference->class_names) {
      if (c.find('\n') != std::string::npos) {
        throw Error("weights.class_name", fmt::format("class name '{}' holds a newline, which a weights file "
                                                      "cannot record; rename the class", c));
      }
      class_names += (class_names.empty() ? "" : "\n") + c;
    }
  }
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
    if (inference) {
      h5::write_attr(root, "class_names", class_names);
      h5::write_attr(root, "multi_label", int64_t{inference->multi_label ? 1 : 0});
      h5::write_attr(root, "norm_mean", inference->norm_mean);
      h5::write_attr(root, "norm_std", inference->norm_std);
    }
    for (const auto& w : names) write_tensor(root, w.file, w.tensor, w.patchbay);
    h5::flush(root);  // a full disk fails here, loudly, not at close
  });
}

void write_weights_source(const WeightsSource& source, const fs::path& file) {
  replace_file(file, "weights file", [&](const fs::path& temp) {
    auto f = h5::create_file(temp);
    const hid_t root = f.id();
    h5::write_attr(root, "names", "original");
    h5::write_attr(root, "source", fmt::format("{} ({})", source.file.string(), source.format));
    h5::write_attr(root, "patchbay_version", version());
    if (source.grid) {
      h5::write_attr(root, "grid_rows", source.grid->first);
      h5::write_attr(root, "grid_cols", source.grid->second);
    }
    for (const auto& [name, t] : source.tensors) write_tensor(root, name, t, "");
    h5::flush(root);
  });
}

void import_weights(Model& model, const fs::path& file) {
  load_weights(model, read_weights_source(file), InitOptions{/*strict=*/true, {}});
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
  if (h5::read_attr_string(f.id(), "schema").value_or("") == "patchbay.results") {
    throw Error("weights.results_file",
                fmt::format("'{}' is a patchbay results file, not weights; a run's weights are in its run "
                            "folder '{}.runs/<run id>' (`patchbay report` lists the runs), which `patchbay predict` "
                            "takes as it is; `patchbay weights export {}.runs/<run id> --out W.h5` writes them as "
                            "a weights file that `weights list` reads",
                            file.string(), file.string(), file.string()));
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

std::optional<InferenceInfo> inference_info(const std::map<std::string, std::string>& attrs) {
  const auto at = [&](const char* key) -> const std::string* {
    const auto it = attrs.find(key);
    return it == attrs.end() ? nullptr : &it->second;
  };
  const std::string *names = at("class_names"), *multi = at("multi_label"), *mean = at("norm_mean"),
                    *std = at("norm_std");
  if (!names || !multi || !mean || !std) return std::nullopt;
  InferenceInfo info;
  for (size_t start = 0; start <= names->size();) {
    const size_t end = std::min(names->find('\n', start), names->size());
    info.class_names.push_back(names->substr(start, end - start));
    start = end + 1;
  }
  try {
    info.multi_label = std::stod(*multi) != 0.0;
    info.norm_mean = std::stod(*mean);
    info.norm_std = std::stod(*std);
  } catch (const std::exception&) {
    return std::nullopt;
  }
  return info;
}

}  // namespace patchbay
