// The plugin registry: factories keyed by (kind, name), each with help text and an option
// schema.
//
// A plugin library registers its factories through a Registrar when the host calls its
// register function (never from static initialisers):
//
//   void register_fftp(patchbay::Registrar& r) {
//     patchbay::OptionSchema s;
//     s.add_int("patch_frames", 16, "frames per patch (Tp)", patchbay::Range::at_least(1));
//     r.add_patcher({"fftp", "full-frequency temporal patches", s},
//                   [](const patchbay::Options& o, const patchbay::PatcherContext& c) { ... });
//   }
//
// Registering a (kind, name) that exists is a PluginError (id "plugin.duplicate") naming
// both files.
#pragma once
#include <filesystem>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "patchbay/error.hpp"
#include "patchbay/export.hpp"
#include "patchbay/options.hpp"
#include "patchbay/plugin_kinds.hpp"

namespace patchbay {

enum class PluginKind { dataset, patcher, masker, backbone };
inline constexpr PluginKind kAllPluginKinds[] = {PluginKind::dataset, PluginKind::patcher,
                                                 PluginKind::masker, PluginKind::backbone};
PATCHBAY_API const char* to_string(PluginKind kind);          // "patcher"
PATCHBAY_API const char* plural(PluginKind kind);             // "patchers"

// Options the framework adds to every backbone that has an integer `embed_dim` or `depth`
// option (Registry::add_backbone): build_model shrinks that option until the model's paper
// MACs are closest to match_paper_macs (0: off). For FLOP-matched comparisons.
inline constexpr const char* kMatchPaperMacs = "match_paper_macs";
inline constexpr const char* kMatchBy = "match_by";

struct PluginDescription {
  std::string name;      // snake_case, unique within its kind
  std::string help;      // one line
  OptionSchema options;
};

using DatasetFactory =
    std::function<std::shared_ptr<Dataset>(const Options&, const DatasetContext&)>;
// Writes a tiny instance of the dataset's on-disk layout into an empty folder and returns the
// option values that read it. Used by the conformance tests and examples.
using DatasetExampleWriter =
    std::function<std::map<std::string, OptionValue>(const std::filesystem::path& dir)>;
using PatcherFactory =
    std::function<std::shared_ptr<Patcher>(const Options&, const PatcherContext&)>;
using MaskerFactory = std::function<std::shared_ptr<Masker>(const Options&)>;
// A backbone decides the token width D from its options (a preset, or embed_dim).
using BackboneEmbedDim = std::function<int64_t(const Options&)>;
using BackboneFactory =
    std::function<std::shared_ptr<Backbone>(const Options&, const BackboneContext&)>;

// What a plugin sees while it registers.
class PATCHBAY_API Registrar {
 public:
  virtual ~Registrar();
  virtual void add_dataset(PluginDescription d, DatasetFactory f, DatasetExampleWriter example) = 0;
  virtual void add_patcher(PluginDescription d, PatcherFactory f) = 0;
  virtual void add_masker(PluginDescription d, MaskerFactory f) = 0;
  virtual void add_backbone(PluginDescription d, BackboneEmbedDim dim, BackboneFactory f) = 0;
};

// Where an entry came from.
struct PluginOrigin {
  std::string library;        // the plugin library's name ("fftp")
  std::string version;        // its version ("0.1.0")
  std::string file;           // the .so it was loaded from, or "(linked in)"
  std::shared_ptr<void> keep_alive;  // the loaded library; objects made by it hold this
};

struct RegistryEntry {
  PluginKind kind = PluginKind::patcher;
  PluginDescription description;
  PluginOrigin origin;
  DatasetFactory dataset;
  DatasetExampleWriter dataset_example;
  PatcherFactory patcher;
  MaskerFactory masker;
  BackboneEmbedDim backbone_embed_dim;
  BackboneFactory backbone;

  const std::string& name() const { return description.name; }
};

class PATCHBAY_API Registry final : public Registrar {
 public:
  Registry();
  ~Registry() override;
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  // Calls `register_fn` with this registry; every entry it adds records `origin`.
  // Exceptions from register_fn propagate; entries added before the throw are removed.
  void register_library(const PluginOrigin& origin, const std::function<void(Registrar&)>& register_fn);

  // nullptr when absent.
  const RegistryEntry* find(PluginKind kind, const std::string& name) const;
  // Throws ConfigError "config.unknown_plugin": "no patcher plugin named 'x'; available
  // patchers: a, b".
  const RegistryEntry& get(PluginKind kind, const std::string& name) const;
  // Entries of one kind, sorted by name.
  std::vector<const RegistryEntry*> entries(PluginKind kind) const;
  std::vector<std::string> names(PluginKind kind) const;
  size_t size() const { return entries_.size(); }

  // Factories. Options must already be validated against the entry's schema. Objects keep
  // their library alive. Exceptions other than patchbay::Error are wrapped in PluginError
  // ("plugin.failed") naming the plugin and its file.
  std::shared_ptr<Dataset> make_dataset(const std::string& name, const Options& o,
                                        const DatasetContext& c) const;
  std::shared_ptr<Patcher> make_patcher(const std::string& name, const Options& o,
                                        const PatcherContext& c) const;
  std::shared_ptr<Masker> make_masker(const std::string& name, const Options& o) const;
  int64_t backbone_embed_dim(const std::string& name, const Options& o) const;
  std::shared_ptr<Backbone> make_backbone(const std::string& name, const Options& o,
                                          const BackboneContext& c) const;

  // Registrar
  void add_dataset(PluginDescription d, DatasetFactory f, DatasetExampleWriter example) override;
  void add_patcher(PluginDescription d, PatcherFactory f) override;
  void add_masker(PluginDescription d, MaskerFactory f) override;
  void add_backbone(PluginDescription d, BackboneEmbedDim dim, BackboneFactory f) override;

 private:
  void add(RegistryEntry entry);
  [[noreturn]] void refuse(const PluginError& error);
  std::vector<RegistryEntry> entries_;
  const PluginOrigin* current_origin_ = nullptr;
  // The registry's own refusal (e.g. a duplicate) raised inside a plugin's register
  // function; rethrown as is, whatever the plugin's entry point made of it.
  std::exception_ptr refusal_;
};

}  // namespace patchbay
