// patchbay merge: combines the results files of one experiment's shards (`patchbay run
// --shard K/N`, one per task of a job array) into one results file of the same schema.
//
// No HDF5 is written here: each chosen run's folder is copied into OUT.runs/ with
// ResultsStore::import_run (or, for an input whose run folders were not kept, the record read
// from its published file is written with write_run), and OUT is rebuilt by the same publish
// as `patchbay run`. So `patchbay report OUT` reads it, `patchbay run FILE --results OUT`
// skips its COMPLETED runs and continues its RUNNING ones, and a kill at any moment leaves
// OUT as it was (publish replaces it whole).
#include <fmt/format.h>

#include <algorithm>
#include <fstream>
#include <iostream>
#include <map>

#include "cli_common.hpp"
#include "commands.hpp"
#include "patchbay/error.hpp"
#include "patchbay/results.hpp"

namespace po = boost::program_options;
namespace fs = std::filesystem;

namespace patchbay::cli {
namespace {

struct Input {
  fs::path file;
  PublishedResults published;
  bool is_output = false;  // the OUT that already existed: its runs compete like the others
};

struct Candidate {
  size_t input = 0;
  RunRecord record;
  bool has_folder = false;  // R.runs/<id>/run.h5 exists (else: read from the published R)
};

// COMPLETED beats everything; FAILED and RUNNING (a shard killed midway) are both attempts
// that did not finish, so the later of them is the newer state; PLANNED is no attempt.
int status_rank(RunStatus s) {
  switch (s) {
    case RunStatus::completed:
      return 2;
    case RunStatus::failed:
    case RunStatus::running:
      return 1;
    case RunStatus::planned:
      return 0;
  }
  return 0;
}

// When the attempt ended, or started when it has not ended. ISO 8601 UTC strings, which
// compare as text.
const std::string& attempt_time(const RunRecord& r) {
  return r.finished.empty() ? r.started : r.finished;
}

// True when `a` should replace `b`. Ties keep `b`, the one found first: the existing OUT
// (nothing to copy), then the inputs in command-line order.
bool newer(const RunRecord& a, const RunRecord& b) {
  if (status_rank(a.status) != status_rank(b.status))
    return status_rank(a.status) > status_rank(b.status);
  return attempt_time(a) > attempt_time(b);
}

std::string label(const Input& in) {
  const auto& shard = in.published.experiment.shard;
  return fmt::format("'{}'{}", in.file.string(), shard.empty() ? "" : " (shard " + shard + ")");
}

// What makes two results files hold different experiments; empty when they hold the same.
// Besides the name, the plan's run ids decide, as for `patchbay run`: they hash every option,
// so overrides and edits that leave them the same (train.threads=1, a comment edited before
// one shard's rerun) do not count.
std::string difference(const ExperimentRecord& a, const ExperimentRecord& b) {
  std::vector<std::string> why;
  if (a.name != b.name) why.push_back(fmt::format("experiment '{}' vs '{}'", a.name, b.name));
  if (a.run_ids != b.run_ids) {
    if (a.text != b.text) why.push_back("the experiment files differ:" + changed_lines(a.text, b.text));
    std::vector<std::string> only_a, only_b;
    for (const auto& id : a.run_ids) {
      if (std::find(b.run_ids.begin(), b.run_ids.end(), id) == b.run_ids.end())
        only_a.push_back(id);
    }
    for (const auto& id : b.run_ids) {
      if (std::find(a.run_ids.begin(), a.run_ids.end(), id) == a.run_ids.end())
        only_b.push_back(id);
    }
    const auto some = [](const std::vector<std::string>& ids) {
      const size_t shown = std::min<size_t>(ids.size(), 3);
      return fmt::format("{}{}",
                         fmt::join(ids.begin(), ids.begin() + static_cast<long>(shown), ", "),
                         ids.size() > shown ? fmt::format(" and {} more", ids.size() - shown) : "");
    };
    std::string plans =
        fmt::format("the plans differ ({} runs vs {}", a.run_ids.size(), b.run_ids.size());
    if (!only_a.empty()) plans += "; only in the first: " + some(only_a);
    if (!only_b.empty()) plans += "; only in the second: " + some(only_b);
    if (only_a.empty() && only_b.empty()) plans += "; the same runs in another order";
    plans += ")";
    if (a.overrides != b.overrides) {
      plans += fmt::format("; overrides [{}] vs [{}]", fmt::join(a.overrides, " "),
                           fmt::join(b.overrides, " "));
    }
    why.push_back(plans);
  }
  return fmt::format("{}", fmt::join(why, "; "));
}

// ResultsStore::lock(), with a message for merging (the store's own suggests --results).
ResultsLock lock_results(const fs::path& file, const char* role) {
  try {
    return ResultsStore(file).lock();
  } catch (const Error& e) {
    if (e.id() != "results.locked") throw;
    std::ifstream in(file.string() + ".lock");
    std::string pid = "unknown";
    in >> pid;
    throw Error("results.locked", fmt::format("{} '{}' is being written by a patchbay process (pid "
                                              "{}); merge once it has ended",
                                              role, file.string(), pid));
  }
}

bool same_file(const fs::path& a, const fs::path& b) {
  std::error_code ec;
  const bool eq = fs::equivalent(a, b, ec);
  return !ec ? eq : fs::weakly_canonical(a, ec) == fs::weakly_canonical(b, ec);
}

}  // namespace

int run_merge(const std::vector<std::string>& args) {
  po::options_description desc("patchbay merge options");
  desc.add_options()("help,h", "show this help")("quiet,q", "only the summary line");
  const auto p = parse(args, desc);
  if (wants_help(p,
                 "Usage: patchbay merge OUT.h5 IN.h5 [IN.h5...]\n\n"
                 "Combines results files of one experiment, typically the shards written by "
                 "`patchbay run FILE --shard K/N`, into OUT.h5 with the schema `patchbay run` "
                 "writes: `patchbay report OUT.h5` reads it, and `patchbay run FILE --results "
                 "OUT.h5` skips its COMPLETED runs and continues the others.\n\n"
                 "Each run's folder (IN.h5.runs/<id>: record, checkpoint, log) is copied to "
                 "OUT.h5.runs/<id>; when an input's folders were not kept, its published "
                 "record is used. A run found in several inputs keeps its newest state: "
                 "COMPLETED beats FAILED and RUNNING, which beat PLANNED; among equals the "
                 "later finish (or start) time wins, and the first given on a tie. An "
                 "existing OUT.h5 of the same experiment is merged in as one more input, so "
                 "merging again never loses a run. Files of another experiment (name, "
                 "experiment text or planned runs differ) are refused, naming what differs. "
                 "OUT.h5 is replaced whole at the end, under the lock `patchbay run` takes.",
                 desc)) {
    return kExitOk;
  }
  if (p.positional.size() < 2)
    throw po::error("name the output file and at least one input: patchbay merge OUT.h5 IN.h5...");
  const bool quiet = p.vm.count("quiet") > 0;
  const fs::path out_file = p.positional[0];

  std::vector<Input> inputs;
  for (size_t i = 1; i < p.positional.size(); ++i) {
    const fs::path file = p.positional[i];
    if (same_file(file, out_file)) {
      throw ConfigError("merge.same_file",
                        fmt::format("'{}' is both the output and an input; name a new output (an "
                                    "existing output is merged in by itself)",
                                    file.string()));
    }
    const bool again = std::any_of(inputs.begin(), inputs.end(),
                                   [&](const Input& in) { return same_file(in.file, file); });
    if (again) continue;  // named twice (a shell glob and a name): once is enough
    inputs.push_back({file, read_results(file), false});  // names the file when it is not results
  }
  for (size_t i = 1; i < inputs.size(); ++i) {
    const std::string why =
        difference(inputs[0].published.experiment, inputs[i].published.experiment);
    if (!why.empty()) {
      throw ConfigError("merge.different_experiment",
                        fmt::format("{} and {} hold different experiments: {}\nmerge only the "
                                    "shards of one experiment (the same file and overrides)",
                                    label(inputs[0]), label(inputs[i]), why));
    }
  }

  // Inputs still being written would give a torn snapshot: take their locks too (a run
  // holds its lock until it exits, so this also says when a shard is still running). A
  // folder we may not write to cannot hold a writer's lock file either; read it unlocked.
  std::vector<ResultsLock> locks;
  for (const auto& in : inputs) {
    try {
      locks.push_back(lock_results(in.file, "input"));
    } catch (const Error& e) {
      if (e.id() != "results.write") throw;
    }
  }
  const ResultsStore out_store(out_file);
  locks.push_back(lock_results(out_file, "the output"));
  std::error_code ec;
  if (fs::exists(out_file, ec)) {
    Input existing{out_file, read_results(out_file), true};
    const std::string why =
        difference(inputs[0].published.experiment, existing.published.experiment);
    if (!why.empty()) {
      throw ConfigError("merge.different_experiment",
                        fmt::format("the output '{}' already holds another experiment than {}: "
                                    "{}\nremove it, or merge into another file",
                                    out_file.string(), label(inputs[0]), why));
    }
    inputs.insert(inputs.begin(), std::move(existing));
  }

  const ExperimentRecord plan = inputs[inputs.front().is_output ? 1 : 0].published.experiment;
  ExperimentRecord merged;  // the plan without the shard: OUT holds them all
  merged.name = plan.name;
  merged.file = plan.file;
  merged.text = plan.text;
  merged.overrides = plan.overrides;
  merged.run_ids = plan.run_ids;
  merged.slugs = plan.slugs;
  merged.axes.resize(plan.run_ids.size());

  std::map<std::string, size_t> counts;
  size_t copied = 0;
  for (size_t r = 0; r < plan.run_ids.size(); ++r) {
    const std::string& id = plan.run_ids[r];
    std::vector<Candidate> found;
    for (size_t i = 0; i < inputs.size(); ++i) {
      const ResultsStore store(inputs[i].file);
      Candidate c;
      c.input = i;
      try {
        if (auto rec = store.read_run(id)) {
          c.record = std::move(*rec);
          c.has_folder = true;
        }
      } catch (const Error& e) {
        fmt::print(stderr, "patchbay merge: warning: {}; using the record in '{}'\n", e.what(),
                   inputs[i].file.string());
      }
      if (!c.has_folder) {
        for (const auto& rec : inputs[i].published.runs) {
          if (rec.id == id) c.record = rec;
        }
      }
      // Published records carry the axes even for PLANNED runs: keep them for OUT's plan.
      if (merged.axes[r].empty()) {
        for (const auto& rec : inputs[i].published.runs) {
          if (rec.id == id) merged.axes[r] = rec.axes;
        }
      }
      if (c.record.id == id && c.record.status != RunStatus::planned) found.push_back(std::move(c));
    }
    if (found.empty()) {
      ++counts[to_string(RunStatus::planned)];  // no input ran it
      continue;
    }
    size_t best = 0;
    for (size_t k = 1; k < found.size(); ++k) {
      if (newer(found[k].record, found[best].record)) best = k;
    }
    const Candidate& chosen = found[best];
    ++counts[to_string(chosen.record.status)];
    // Say which state won when the files disagree; copies of one attempt (same status and
    // time, as after merging twice) are not news.
    std::vector<std::string> others;
    for (size_t k = 0; k < found.size() && !quiet; ++k) {
      const RunRecord& o = found[k].record;
      if (k == best ||
          (o.status == chosen.record.status && attempt_time(o) == attempt_time(chosen.record)))
        continue;
      others.push_back(fmt::format("{} in '{}' ({})", to_string(o.status),
                                   inputs[found[k].input].file.string(), attempt_time(o)));
    }
    if (!others.empty()) {
      fmt::print("run {}: keeping {} from '{}' ({}) over {}\n", id, to_string(chosen.record.status),
                 inputs[chosen.input].file.string(), attempt_time(chosen.record),
                 fmt::join(others, ", "));
    }
    // Already OUT's, with its file; OUT copied without OUT.runs/ has its record only in OUT.
    if (inputs[chosen.input].is_output && chosen.has_folder) continue;
    if (chosen.has_folder) {
      out_store.import_run(ResultsStore(inputs[chosen.input].file), id);
    } else {
      // No folder to copy: the record alone, without another attempt's checkpoint beside it.
      fs::remove(out_store.run_dir(id) / "checkpoint.pt", ec);
      out_store.write_run(chosen.record);
    }
    ++copied;
  }
  out_store.publish(merged);

  const size_t given = p.positional.size() - 1;
  fmt::print(
      "merged {} file{} into {}: {} runs, {} COMPLETED, {} FAILED, {} RUNNING, {} PLANNED ({} "
      "run folder{} copied)\n",
      given, given == 1 ? "" : "s", out_file.string(), plan.run_ids.size(), counts["COMPLETED"],
      counts["FAILED"], counts["RUNNING"], counts["PLANNED"], copied, copied == 1 ? "" : "s");
  if (!quiet && counts["PLANNED"] > 0) {
    fmt::print(
        "{} run{} in no input: merge the missing shards, or finish here with `patchbay run "
        "{} --results {}`\n",
        counts["PLANNED"], counts["PLANNED"] == 1 ? " is" : "s are", plan.file, out_file.string());
  }
  if (!quiet) fmt::print("next: patchbay report {}\n", out_file.string());
  return kExitOk;
}

}  // namespace patchbay::cli
