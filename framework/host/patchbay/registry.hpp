// The host's plugin registry: the factories plugins registered, keyed by (kind, name), each
// with its help text, option schema and origin (library, version, file). It implements the
// SDK's Registrar (patchbay/registrar.hpp), which is all a plugin sees of it.
//
// Registering a (kind, name) that exists is a PluginError (id "plugin.duplicate") naming
// both files.
#pragma once
#include <exception>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "patchbay/error.hpp"
#include "patchbay/export.hpp"
#include "patchbay/registrar.hpp"

namespace patchbay {

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
  DatasetGenerator dataset_generator;  // empty when the dataset cannot make its data
  PatcherFactory patcher;
  MaskerFactory masker;
  TokenDropperFactory token_dropper;
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
  std::shared_ptr<TokenDropper> make_token_dropper(const std::string& name, const Options& o) const;
  int64_t backbone_embed_dim(const std::string& name, const Options& o) const;
  std::shared_ptr<Backbone> make_backbone(const std::string& name, const Options& o,
                                          const BackboneContext& c) const;

  // Registrar
  using Registrar::add_dataset;
  void add_dataset(PluginDescription d, DatasetFactory f, DatasetExampleWriter example,
                   DatasetGenerator generator) override;
  void add_patcher(PluginDescription d, PatcherFactory f) override;
  void add_masker(PluginDescription d, MaskerFactory f) override;
  void add_token_dropper(PluginDescription d, TokenDropperFactory f) override;
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
