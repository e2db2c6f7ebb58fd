// Splitting an experiment's plan into N shards, one per task of a Slurm job array
// (`patchbay run FILE --shard K/N`, `patchbay slurm`).
//
// K counts from 0, as $SLURM_ARRAY_TASK_ID does for `sbatch --array=0-(N-1)`, so a job
// script passes `--shard "$SLURM_ARRAY_TASK_ID/N"` unchanged.
//
//   const Shard shard = parse_shard("1/4");                  // throws ConfigError "cli.bad_shard"
//   for (size_t i : shard_positions(record.run_ids, shard))   // plan positions, in plan order
//     train(experiment.runs[i]);
//
// Guarantees: every run is in exactly one of the N shards, shard sizes differ by at most 1,
// and the split depends only on the run ids (the same plan gives the same shards on every
// machine and every rerun).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "patchbay/export.hpp"

namespace patchbay {

struct PATCHBAY_API Shard {
  int64_t index = 0;         // K, 0 <= K < N
  int64_t count = 1;         // N
  std::string text() const;  // "K/N"
};

// Parses "K/N". Throws ConfigError "cli.bad_shard" saying what is wrong (not K/N, N < 1,
// K outside 0..N-1) and how K counts.
PATCHBAY_API Shard parse_shard(const std::string& text);

// The positions in `run_ids` (the plan, in order) that belong to `shard`, ascending. Throws
// ConfigError "cli.bad_shard" when N exceeds the number of runs (a shard would be empty).
PATCHBAY_API std::vector<size_t> shard_positions(const std::vector<std::string>& run_ids,
                                                 const Shard& shard);

}  // namespace patchbay
