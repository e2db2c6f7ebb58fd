#include "patchbay/shard.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <numeric>
#include <tuple>
#include <utility>

#include "patchbay/error.hpp"
#include "patchbay/hash.hpp"

namespace patchbay {
namespace {

constexpr const char* kHowKCounts =
    "K counts from 0, as $SLURM_ARRAY_TASK_ID does with sbatch --array=0-(N-1)";

bool all_digits(const std::string& s) {
  return !s.empty() && s.size() <= 9 &&
         std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isdigit(c) != 0; });
}

}  // namespace

std::string Shard::text() const { return fmt::format("{}/{}", index, count); }

Shard parse_shard(const std::string& text) {
  const auto slash = text.find('/');
  const std::string k = slash == std::string::npos ? text : text.substr(0, slash);
  const std::string n = slash == std::string::npos ? "" : text.substr(slash + 1);
  if (!all_digits(k) || !all_digits(n)) {
    throw ConfigError("cli.bad_shard",
                      fmt::format("--shard '{}': expected K/N, shard K of N shards, e.g. 0/4 ({})",
                                  text, kHowKCounts));
  }
  Shard s;
  s.index = std::stoll(k);
  s.count = std::stoll(n);
  if (s.count < 1) {
    throw ConfigError("cli.bad_shard", fmt::format("--shard '{}': N must be at least 1", text));
  }
  if (s.index >= s.count) {
    throw ConfigError("cli.bad_shard",
                      fmt::format("--shard '{}': K must be 0..{} for {} shard{} ({})", text,
                                  s.count - 1, s.count, s.count == 1 ? "" : "s", kHowKCounts));
  }
  return s;
}

std::vector<size_t> shard_positions(const std::vector<std::string>& run_ids, const Shard& shard) {
  if (static_cast<size_t>(shard.count) > run_ids.size()) {
    throw ConfigError("cli.bad_shard",
                      fmt::format("--shard {}: the plan has {} run{}, so some of {} shards would "
                                  "be empty; use at most {} shard{}",
                                  shard.text(), run_ids.size(), run_ids.size() == 1 ? "" : "s",
                                  shard.count, run_ids.size(), run_ids.size() == 1 ? "" : "s"));
  }
  // Deal the runs round-robin in the order of a hash of their ids, not in plan order. Plan
  // order follows the grid (last axis fastest), so dealing it round-robin puts each value of
  // a 2-valued last axis in its own shard whenever N = 2: with square vs FFTP patches as that
  // axis, one shard would get every expensive run. The hash scatters the grid over the shards;
  // dealing (rather than hash % N) keeps the sizes within 1 of each other. Ids are unique in a
  // plan, and the id breaks hash ties, so the order is total and the same everywhere.
  std::vector<size_t> order(run_ids.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::vector<uint64_t> hashes;
  hashes.reserve(run_ids.size());
  for (const auto& id : run_ids) hashes.push_back(stable_hash(id));
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return std::tie(hashes[a], run_ids[a]) < std::tie(hashes[b], run_ids[b]);
  });
  std::vector<size_t> mine;
  for (size_t rank = 0; rank < order.size(); ++rank) {
    if (static_cast<int64_t>(rank % static_cast<size_t>(shard.count)) == shard.index)
      mine.push_back(order[rank]);
  }
  std::sort(mine.begin(), mine.end());  // a shard trains its runs in plan order
  return mine;
}

}  // namespace patchbay
