// Replacing a file whole, so that a reader, a kill or a full disk at any moment leaves the
// previous complete file or the next one, never a torn one.
//
//   replace_file(checkpoint, "checkpoint", [&](const fs::path& temp) { archive.save_to(temp); });
//
// `write` fills a temporary file beside the target (".NAME.tmp-PID-N", N counting this
// process's temporaries, so no two writers, processes or threads, ever share one and
// remove_stale_temporaries can tell a dead writer's leftovers); the
// temporary is then fsync'ed, renamed over the target, and the folder fsync'ed. On any
// failure the temporary is removed and Error "io.write" (or "io.disk_full" when the disk or
// quota is full) is thrown, naming `what` and the target; the target is unchanged. A
// patchbay::Error thrown by `write` itself passes through as it is, unless the disk is full.
// Users: checkpoints, run records (R.runs/<id>/run.h5), the published results file, the
// feature cache and exported weights.
#pragma once
#include <chrono>
#include <filesystem>
#include <functional>
#include <string>

#include "patchbay/export.hpp"

namespace patchbay {

PATCHBAY_API void replace_file(const std::filesystem::path& target, const std::string& what,
                               const std::function<void(const std::filesystem::path& temp)>& write);

// A fresh temporary file name beside `target` for this process (".NAME.tmp-PID-N").
PATCHBAY_API std::filesystem::path temporary_beside(const std::filesystem::path& target);

// Whether `file` is a temporary of replace_file / temporary_beside for a target whose name
// starts with `target_prefix` (the whole name for one target, "features-" for a family).
PATCHBAY_API bool is_temporary_of(const std::filesystem::path& file, const std::string& target_prefix);

// Removes the temporaries in `folder` of targets named `target_prefix`... that were last
// written more than `older_than` ago (zero: all of them; right for a folder only the caller
// writes, e.g. under the results lock). Returns how many; errors are ignored (a leftover is
// harmless, only untidy).
PATCHBAY_API size_t remove_stale_temporaries(const std::filesystem::path& folder,
                                             const std::string& target_prefix,
                                             std::chrono::seconds older_than = std::chrono::seconds(0));

// Writes `size` bytes to `file` (created or truncated) with the C library, for writers that
// build a file in memory first (the results file, checkpoints): a full disk then fails in a
// write patchbay checks, not inside a library that may crash on it. Throws Error "io.write"
// with the system's reason (replace_file turns a full disk into "io.disk_full").
PATCHBAY_API void write_whole_file(const std::filesystem::path& file, const void* data, size_t size);
// fsync a file or folder by path; errors ignored (durability is best effort, the rename is
// what must be atomic).
PATCHBAY_API void sync_path(const std::filesystem::path& path);

}  // namespace patchbay
