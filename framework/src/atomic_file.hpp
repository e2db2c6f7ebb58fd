// Replacing a file whole, so that a reader, a kill or a full disk at any moment leaves the
// previous complete file or the next one, never a torn one.
//
//   replace_file(checkpoint, "checkpoint", [&](const fs::path& temp) { archive.save_to(temp); });
//
// `write` fills a temporary file beside the target (".NAME.tmp-PID", so two processes never
// share one and a sweep can tell a dead writer's leftovers, see is_stale_temporary); the
// temporary is then fsync'ed, renamed over the target, and the folder fsync'ed. On any
// failure the temporary is removed and Error "io.write" (or "io.disk_full" when the disk or
// quota is full) is thrown, naming `what` and the target; the target is unchanged. A
// patchbay::Error thrown by `write` itself passes through as it is, unless the disk is full.
// Users: checkpoints, run records (R.runs/<id>/run.h5) and the published results file.
#pragma once
#include <filesystem>
#include <functional>
#include <string>

#include "patchbay/export.hpp"

namespace patchbay {

PATCHBAY_API void replace_file(const std::filesystem::path& target, const std::string& what,
                               const std::function<void(const std::filesystem::path& temp)>& write);

// The temporary file replace_file uses for `target` in this process.
PATCHBAY_API std::filesystem::path temporary_beside(const std::filesystem::path& target);

// fsync a file or folder by path; errors ignored (durability is best effort, the rename is
// what must be atomic).
PATCHBAY_API void sync_path(const std::filesystem::path& path);

}  // namespace patchbay
