// Features of a dataset split: decode + fbank + pad/crop every clip once, keep the result in
// an HDF5 feature cache, and hand the trainer one tensor.
//
//   FeatureRequest req;
//   req.frontend = FbankOptions::from(config.frontend.options);
//   req.skip_bad_clips = dataset->skip_bad_clips();
//   FeatureSet train = load_features(dataset->clips(Split::train), req);
//   // train.features [N, T, F] float32, raw log-mel (not normalised)
//
// What is cached: one HDF5 file per (dataset folder, front-end options) in
// `cache_dir` (default: a `.patchbay-cache` folder in the deepest folder containing every
// clip, or $XDG_CACHE_HOME/patchbay (~/.cache/patchbay) when that folder is not writable).
// A clip's entry is keyed by its absolute path, size and modification time: a changed clip
// is recomputed, unchanged clips are read back. The options that change features (all of
// FbankOptions except the normalisation fields) are part of the file name's hash, so changed
// options never read stale features.
//
// Concurrency and crashes: the cache is only ever replaced whole, by writing a temporary file
// in the same folder and renaming it over the old one (atomic on POSIX). Two processes
// computing the same cache both succeed (the last rename wins, both files are complete); a
// process killed mid-write leaves the old cache intact (and at most a stray temporary file,
// removed by the next writer once it is older than an hour). A cache that cannot be read
// (truncated, foreign) is logged as a warning and rebuilt, never an error.
//
// Threads: clips are decoded and transformed on `threads` worker threads (0: at::get_num_threads()).
//
// Errors: with skip_bad_clips = false the first bad clip's DataError (ids in frontend.hpp)
// propagates unchanged, after the work done so far was saved to the cache. With true, bad
// clips are left out and listed in FeatureSet::skipped with their reasons.
#pragma once
#include <ATen/core/Tensor.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "patchbay/export.hpp"
#include "patchbay/frontend.hpp"
#include "patchbay/plugin_kinds.hpp"

namespace patchbay {

struct FeatureRequest {
  FbankOptions frontend;                 // sample rate, fbank parameters, target_frames
  std::filesystem::path cache_dir;       // empty: the default described above
  bool use_cache = true;                 // false: compute everything, read and write nothing
  bool skip_bad_clips = false;           // the dataset's on_bad_clip policy
  int threads = 0;                       // 0: at::get_num_threads()
  // Called now and then from the calling thread with (clips done, clips total); may be empty.
  std::function<void(size_t, size_t)> progress;
};

struct SkippedClip {
  std::string path;
  std::string reason;   // the DataError's message
};

struct FeatureSet {
  at::Tensor features;              // [N, target_frames, num_mel_bins] float32, CPU, contiguous
  std::vector<size_t> clip_index;   // row i holds clips[clip_index[i]] (skipped clips have no row)
  std::vector<SkippedClip> skipped; // in clip order
  size_t computed = 0;              // rows computed from audio in this call
  size_t from_cache = 0;            // rows read from the cache
  std::filesystem::path cache_file; // the cache used (empty when use_cache = false)
};

// Features of `clips` in order. Throws DataError (bad clip, policy "error") or Error
// "cache.unwritable" naming the folder when neither cache location can be written.
PATCHBAY_API FeatureSet load_features(const std::vector<Clip>& clips, const FeatureRequest& request);

// Mean and standard deviation over every value of features [N, T, F] (the training split's
// statistics for normalize = "train_split"), in double precision.
struct FeatureStats {
  double mean = 0.0;
  double std = 1.0;
};
PATCHBAY_API FeatureStats feature_stats(const at::Tensor& features);

}  // namespace patchbay
