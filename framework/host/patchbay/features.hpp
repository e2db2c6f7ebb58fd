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
// File layout (format_version 1), one HDF5 1.10 file (default file format)
// `<cache_dir>/features-<16 hex digits>.h5`, the digits being stable_hash of the identity text
// (every feature option above, a feature-code version, and the clips' folder):
//   attribute "format_version"  int64, 1
//   attribute "options"         fixed-length string: the identity text, compared on read
//   dataset "keys"              [N] fixed-length NUL-padded strings "abs_path|size|mtime_ns"
//   dataset "features"          [N, target_frames, num_mel_bins] float32 little-endian, chunked
//                               [1, T, F] (one clip row per chunk) with Fletcher-32 checksums
// Row i of "features" belongs to keys[i]. Rows are read by key, so their order is free.
// Splits share the file: it holds the union of the rows of every clip list loaded with these
// options and this folder, so loading train, then valid, then train again reads everything
// back (when both lists have the same deepest folder; lists under different folders, e.g. a
// split of one class, get files of their own). A rebuild (some rows missing) writes: the rows of this call's clips, then the rows of
// the previous file (re-read just before writing) whose files still exist unchanged and are
// not one of this call's clips; rows of deleted or changed files and older versions of this
// call's clips are dropped. Clips whose size and mtime are unchanged count as unchanged.
// Bad clips are never cached (they fail again, quickly, on each load). Two concurrent
// writers of different splits can lose one another's new rows (the last rename wins); the
// next load recomputes them. Temporary files are `.<file>.tmp-<pid>-<n>` (atomic_file.hpp). A file that
// fails to open or validate, or whose rows fail their checksums, counts as unreadable.
// Feature values are those of Fbank::compute in the worker thread; ATen reductions over more
// than 32768 samples (clips longer than ~2 s at 16 kHz) sum in an order that depends on
// at::get_num_threads(), which is not part of the identity (differences are rounding-level).
//
// Errors: with skip_bad_clips = false the first bad clip's DataError (ids in audio.hpp, fbank.hpp)
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
#include "patchbay/fbank.hpp"
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

// Mean and (population) standard deviation over every value of features [N, T, F] (the
// training split's statistics for normalize = "train_split"), accumulated in double
// precision in two passes. An empty tensor gives the defaults (0, 1).
struct FeatureStats {
  double mean = 0.0;
  double std = 1.0;
};
PATCHBAY_API FeatureStats feature_stats(const at::Tensor& features);

}  // namespace patchbay
