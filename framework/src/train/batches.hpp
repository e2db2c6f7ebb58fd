// The trainer's data path: one split's features in memory, mixup draws, and batches made
// ahead of use on background threads.
//
//   SplitData train = load_split(dataset, Split::train, request, num_classes);
//   const Normaliser norm{mean, 2 * std};
//   BatchMaker maker(train, norm, mixup_mode, fbank_options);
//   auto draws = draw_mixup(order.size(), train.size(), p, alpha, generator);  // main thread
//   Prefetcher batches(maker, order, draws, batch_size, loader_threads);
//   while (!batches.done()) { Batch b = batches.next(); ... }
//
// Mixup follows AST (YuanGongND/ast src/dataloader.py, __getitem__ and _wav2fbank): for each
// training example a coin with probability train.mixup; when it lands, a partner drawn
// uniformly from the whole training split (possibly the example itself) and
// lambda ~ Beta(alpha, alpha); the input is lambda x + (1 - lambda) x_partner and the target
// lambda y + (1 - lambda) y_partner. The mixture is made *before* masking: the masker sees
// (and counts) what the model sees. Mode "waveform" mixes the decoded waveforms (the
// partner zero-padded or cut to the example's length, as _wav2fbank does) and computes the
// mixture's fbank; mode "spectrogram" mixes the cached log-mel features instead (cheaper;
// not the same as mixing waveforms, since log-mel is not linear).
//
// Randomness: every draw happens in draw_mixup, on the caller's thread, in a fixed order;
// the prefetch threads only decode, compute fbanks, copy and normalise. So the batches are
// the same whatever train.loader_threads is.
#pragma once
#include <cstdint>
#include <deque>
#include <filesystem>
#include <future>
#include <string>
#include <vector>

#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>

#include "patchbay/export.hpp"
#include "patchbay/features.hpp"
#include "patchbay/fbank.hpp"
#include "patchbay/plugin_kinds.hpp"

namespace patchbay {

// One split in memory.
struct PATCHBAY_API SplitData {
  at::Tensor features;   // [N, T, F] float32, raw log-mel (not normalised)
  at::Tensor labels;     // [N] int64: each clip's first label
  at::Tensor multi_hot;  // [N, C] float32
  std::vector<std::string> ids;                // [N] Clip::id
  std::vector<std::filesystem::path> paths;    // [N] the audio files (waveform mixup decodes them)
  std::vector<SkippedClip> skipped;
  int64_t size() const { return features.defined() ? features.size(0) : 0; }
};

// Loads (or computes and caches) the features of one split. Throws DataError naming the
// clip when a clip has no label or a label outside [0, num_classes).
PATCHBAY_API SplitData load_split(const Dataset& dataset, Split split, const FeatureRequest& request,
                                  int64_t num_classes);

// x -> (x - mean) / scale, the front end's normalisation (scale = 2 std, as AST).
struct Normaliser {
  double mean = 0.0, scale = 1.0;
};

// One example's mixup draw: partner < 0 when the coin said "no mix".
struct MixDraw {
  int64_t partner = -1;
  double lambda = 1.0;
};

// Draws `examples` coins (probability p), partners uniform in [0, split_size) and lambdas
// ~ Beta(alpha, alpha) from `generator`. p = 0 draws nothing (all unmixed), so a run without
// mixup consumes no random numbers here.
PATCHBAY_API std::vector<MixDraw> draw_mixup(int64_t examples, int64_t split_size, double p, double alpha,
                                             at::Generator& generator);

enum class MixupMode { spectrogram, waveform };

struct Batch {
  at::Tensor rows;     // [B] int64 row indices into the split
  at::Tensor spec;     // [B, F, T] float32, normalised, mixed when drawn so
  at::Tensor targets;  // [B, C] float32, mixed like spec (multi-hot / one-hot otherwise)
  at::Tensor labels;   // [B] int64, the unmixed first labels (evaluation's loss)
};

// Builds batches of one split. Thread-safe: make() may run on several threads at once.
class PATCHBAY_API BatchMaker {
 public:
  // `data` must outlive the maker. `fbank` is used for waveform mixup only.
  BatchMaker(const SplitData& data, Normaliser norm, MixupMode mode, FbankOptions fbank);
  // rows [B] with their draws (empty: none mixed) -> the batch. Throws DataError when a
  // clip of a waveform mixture cannot be decoded.
  Batch make(const std::vector<int64_t>& rows, const std::vector<MixDraw>& draws) const;

 private:
  at::Tensor mixed_waveform_features(int64_t row, const MixDraw& draw) const;  // [T, F]

  const SplitData& data_;
  Normaliser norm_;
  MixupMode mode_;
  FbankOptions fbank_options_;
  Fbank fbank_;
};

// Makes the batches of a fixed order ahead of use on `threads` background threads (0: on the
// caller's thread when asked).
class PATCHBAY_API Prefetcher {
 public:
  // draws: empty, or one per position of `order`.
  Prefetcher(const BatchMaker& maker, std::vector<int64_t> order, std::vector<MixDraw> draws,
             int64_t batch_size, int threads);
  ~Prefetcher();
  Prefetcher(const Prefetcher&) = delete;
  Prefetcher& operator=(const Prefetcher&) = delete;

  int64_t batches() const { return batches_; }
  bool done() const { return next_ >= batches_; }
  Batch next();  // rethrows what making the batch threw

 private:
  Batch make(int64_t index) const;
  void fill();

  const BatchMaker& maker_;
  std::vector<int64_t> order_;
  std::vector<MixDraw> draws_;
  int64_t batch_size_;
  size_t depth_;
  int64_t batches_ = 0, next_ = 0, issued_ = 0;
  std::deque<std::future<Batch>> pending_;
};

}  // namespace patchbay
