#include "patchbay/registry.hpp"

#include <algorithm>

#include <fmt/format.h>

#include "patchbay/error.hpp"
#include "text_util.hpp"

namespace patchbay {

const char* to_string(PluginKind kind) {
  switch (kind) {
    case PluginKind::dataset: return "dataset";
    case PluginKind::patcher: return "patcher";
    case PluginKind::masker: return "masker";
    case PluginKind::backbone: return "backbone";
    case PluginKind::token_dropper: return "token_dropper";
  }
  return "?";
}

const char* plural(PluginKind kind) {
  switch (kind) {
    case PluginKind::dataset: return "datasets";
    case PluginKind::patcher: return "patchers";
    case PluginKind::masker: return "maskers";
    case PluginKind::backbone: return "backbones";
    case PluginKind::token_dropper: return "token_droppers";
  }
  return "?";
}

Registrar::~Registrar() = default;
Registry::Registry() = default;
Registry::~Registry() = default;

void Registry::register_library(const PluginOrigin& origin,
                                const std::function<void(Registrar&)>& register_fn) {
  const size_t before = entries_.size();
  current_origin_ = &origin;
  refusal_ = nullptr;
  try {
    register_fn(*this);
  } catch (...) {
    current_origin_ = nullptr;
    entries_.resize(before);  // all or nothing: no half-registered library
    if (refusal_) std::rethrow_exception(std::exchange(refusal_, nullptr));
    throw;
  }
  current_origin_ = nullptr;
}

void Registry::refuse(const PluginError& error) {
  refusal_ = std::make_exception_ptr(error);
  throw error;
}

void Registry::add(RegistryEntry entry) {
  if (current_origin_ == nullptr) {
    throw PluginError("plugin.register_outside",
                      fmt::format("{} '{}' was registered outside Registry::register_library; "
                                  "register plugins from their register function",
                                  to_string(entry.kind), entry.name()));
  }
  entry.origin = *current_origin_;
  if (entry.name().empty()) {
    refuse(PluginError("plugin.bad_name", fmt::format("a {} in {} has an empty name",
                                                      to_string(entry.kind), entry.origin.file)));
  }
  if (const RegistryEntry* old = find(entry.kind, entry.name())) {
    refuse(PluginError(
        "plugin.duplicate",
        fmt::format("{} '{}' is registered twice: by {} and by {}; remove one of the two "
                    "libraries from the plugin path or rename one plugin",
                    to_string(entry.kind), entry.name(), old->origin.file, entry.origin.file)));
  }
  entries_.push_back(std::move(entry));
}

const RegistryEntry* Registry::find(PluginKind kind, const std::string& name) const {
  for (const auto& e : entries_) {
    if (e.kind == kind && e.name() == name) return &e;
  }
  return nullptr;
}

const RegistryEntry& Registry::get(PluginKind kind, const std::string& name) const {
  if (const auto* e = find(kind, name)) return *e;
  const auto available = names(kind);
  std::string hint;
  if (auto near = closest_match(name, available)) hint = fmt::format("; did you mean '{}'?", *near);
  throw ConfigError("config.unknown_plugin",
                    fmt::format("no {} plugin named '{}'{} (available {}: {})", to_string(kind), name,
                                hint, plural(kind), available.empty() ? "(none)" : join(available)));
}

std::vector<const RegistryEntry*> Registry::entries(PluginKind kind) const {
  std::vector<const RegistryEntry*> out;
  for (const auto& e : entries_) {
    if (e.kind == kind) out.push_back(&e);
  }
  std::sort(out.begin(), out.end(),
            [](const RegistryEntry* a, const RegistryEntry* b) { return a->name() < b->name(); });
  return out;
}

std::vector<std::string> Registry::names(PluginKind kind) const {
  std::vector<std::string> out;
  for (const auto* e : entries(kind)) out.push_back(e->name());
  return out;
}

namespace {

// The object holds its library: it is destroyed first, then the library handle released.
template <typename T>
std::shared_ptr<T> keep_alive(std::shared_ptr<T> object, const std::shared_ptr<void>& library) {
  if (!object) return object;
  if (!library) return object;
  auto both = std::make_shared<std::pair<std::shared_ptr<void>, std::shared_ptr<T>>>(library, object);
  return std::shared_ptr<T>(both, object.get());
}

template <typename F>
auto call_factory(const RegistryEntry& e, F&& f) {
  try {
    auto result = f();
    if constexpr (!std::is_arithmetic_v<decltype(result)>) {
      if (!result) {
        throw PluginError("plugin.failed", fmt::format("{} '{}' ({}) returned no object",
                                                       to_string(e.kind), e.name(), e.origin.file));
      }
    }
    return result;
  } catch (const Error&) {
    throw;
  } catch (const std::exception& ex) {
    throw PluginError("plugin.failed", fmt::format("{} '{}' ({}) failed: {}", to_string(e.kind),
                                                   e.name(), e.origin.file, without_backtrace(ex.what())));
  }
}

}  // namespace

std::shared_ptr<Dataset> Registry::make_dataset(const std::string& name, const Options& o,
                                                const DatasetContext& c) const {
  const auto& e = get(PluginKind::dataset, name);
  return keep_alive(call_factory(e, [&] { return e.dataset(o, c); }), e.origin.keep_alive);
}

std::shared_ptr<Patcher> Registry::make_patcher(const std::string& name, const Options& o,
                                                const PatcherContext& c) const {
  const auto& e = get(PluginKind::patcher, name);
  return keep_alive(call_factory(e, [&] { return e.patcher(o, c); }), e.origin.keep_alive);
}

std::shared_ptr<Masker> Registry::make_masker(const std::string& name, const Options& o) const {
  const auto& e = get(PluginKind::masker, name);
  return keep_alive(call_factory(e, [&] { return e.masker(o); }), e.origin.keep_alive);
}

std::shared_ptr<TokenDropper> Registry::make_token_dropper(const std::string& name, const Options& o) const {
  const auto& e = get(PluginKind::token_dropper, name);
  return keep_alive(call_factory(e, [&] { return e.token_dropper(o); }), e.origin.keep_alive);
}

int64_t Registry::backbone_embed_dim(const std::string& name, const Options& o) const {
  const auto& e = get(PluginKind::backbone, name);
  return call_factory(e, [&] { return e.backbone_embed_dim(o); });
}

std::shared_ptr<Backbone> Registry::make_backbone(const std::string& name, const Options& o,
                                                  const BackboneContext& c) const {
  const auto& e = get(PluginKind::backbone, name);
  return keep_alive(call_factory(e, [&] { return e.backbone(o, c); }), e.origin.keep_alive);
}

void Registry::add_dataset(PluginDescription d, DatasetFactory f, DatasetExampleWriter example,
                           DatasetGenerator generator) {
  RegistryEntry e;
  e.kind = PluginKind::dataset;
  e.description = std::move(d);
  e.dataset = std::move(f);
  e.dataset_example = std::move(example);
  e.dataset_generator = std::move(generator);
  add(std::move(e));
}

void Registry::add_patcher(PluginDescription d, PatcherFactory f) {
  RegistryEntry e;
  e.kind = PluginKind::patcher;
  e.description = std::move(d);
  e.patcher = std::move(f);
  add(std::move(e));
}

void Registry::add_masker(PluginDescription d, MaskerFactory f) {
  RegistryEntry e;
  e.kind = PluginKind::masker;
  e.description = std::move(d);
  e.masker = std::move(f);
  add(std::move(e));
}

void Registry::add_token_dropper(PluginDescription d, TokenDropperFactory f) {
  RegistryEntry e;
  e.kind = PluginKind::token_dropper;
  e.description = std::move(d);
  e.token_dropper = std::move(f);
  add(std::move(e));
}

void Registry::add_backbone(PluginDescription d, BackboneEmbedDim dim, BackboneFactory f) {
  // Framework options for cost-matched comparisons (build_model reads them): a backbone
  // with an integer width or depth option can be shrunk to a paper-MACs target.
  std::vector<std::string> scalable;
  for (const char* key : {"embed_dim", "depth"}) {
    const OptionSpec* spec = d.options.find(key);
    if (spec != nullptr && spec->type == OptionType::integer) scalable.emplace_back(key);
  }
  if (!scalable.empty() && d.options.find(kMatchPaperMacs) == nullptr) {
    d.options.add_int(kMatchPaperMacs, 0,
                      "shrink the model to this many paper MACs per example: the " +
                          scalable.front() + " (or match_by) whose model is closest to it, "
                          "found by building candidates; 0: off (framework option)",
                      Range::at_least(0));
    d.options.add_choice(kMatchBy, scalable.front(), scalable,
                         "the option match_paper_macs varies (framework option)");
  }
  RegistryEntry e;
  e.kind = PluginKind::backbone;
  e.description = std::move(d);
  e.backbone_embed_dim = std::move(dim);
  e.backbone = std::move(f);
  add(std::move(e));
}

}  // namespace patchbay
