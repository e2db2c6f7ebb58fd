// patchbay slurm: writes the Slurm job scripts that train an experiment's sweep as a job
// array, one task per shard (`patchbay run --shard $SLURM_ARRAY_TASK_ID/N`), and merge the
// shards' results once every task has ended (`patchbay merge`, a job that depends on the
// array with afterany, so the runs that finished are merged even when a task failed or ran
// out of time). Slurm does the scheduling; patchbay only writes what sbatch reads.
#include <fmt/format.h>
#include <unistd.h>

#include <cctype>
#include <fstream>
#include <regex>

#include "cli_common.hpp"
#include "commands.hpp"
#include "patchbay/error.hpp"
#include "patchbay/results.hpp"
#include "patchbay/version.hpp"

namespace po = boost::program_options;
namespace fs = std::filesystem;

namespace patchbay::cli {
namespace {

// A word for a POSIX shell, single-quoted ('it'\''s').
std::string sh_quote(const std::string& word) {
  std::string out = "'";
  for (char c : word) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

// Values go into #SBATCH lines verbatim: refuse anything that could end the line or that
// sbatch would misread, naming the option and the form it takes.
std::string checked(const Parsed& p, const char* option, const char* pattern, const char* form) {
  const std::string value = p.vm[option].as<std::string>();
  if (!std::regex_match(value, std::regex(pattern))) {
    throw ConfigError("slurm.bad_option",
                      fmt::format("--{} '{}': expected {}", option, value, form));
  }
  return value;
}

std::string self_path() {
  std::error_code ec;
  const auto p = fs::read_symlink("/proc/self/exe", ec);
  if (ec) throw Error("slurm.no_binary", "cannot find this patchbay binary (/proc/self/exe)");
  // The scripts call the launcher beside this binary (build/patchbay), as a user would: it
  // sets OpenMP's wait policy before the real binary starts (app/launcher.cpp).
  const fs::path launcher = p.parent_path() / "patchbay";
  if (p.filename() == "patchbay-main" && fs::exists(launcher, ec)) return launcher.string();
  return p.string();
}

void write_script(const fs::path& file, const std::string& text) {
  std::ofstream out(file, std::ios::trunc);
  out << text;
  out.close();
  if (!out) {
    throw Error("slurm.write", fmt::format("cannot write '{}'; choose a writable folder with --out",
                                           file.string()));
  }
  std::error_code ec;
  fs::permissions(file, fs::perms::owner_exec | fs::perms::group_exec | fs::perms::others_exec,
                  fs::perm_options::add, ec);
}

// The #SBATCH lines the options give: those of both jobs (partition, --sbatch) and those of
// the array tasks (time, cpus, memory). Each value is checked: a typo fails here, not in
// the queue. Throws ConfigError "slurm.bad_option".
std::pair<std::string, std::string> sbatch_lines(const Parsed& p) {
  std::string common;
  if (p.vm.count("partition")) {
    common += "#SBATCH --partition=" +
              checked(p, "partition", "[A-Za-z0-9_.,-]+", "a partition name, e.g. gpu or debug") +
              "\n";
  }
  for (const auto& extra : p.vm.count("sbatch") ? p.vm["sbatch"].as<std::vector<std::string>>()
                                                : std::vector<std::string>{}) {
    if (!std::regex_match(extra, std::regex("--[A-Za-z][A-Za-z0-9-]*(=[^\\n\\r]*)?"))) {
      throw ConfigError("slurm.bad_option", fmt::format("--sbatch '{}': expected one sbatch option "
                                                        "such as --account=abc or --qos=normal",
                                                        extra));
    }
    common += "#SBATCH " + extra + "\n";
  }
  std::string task_limits;
  if (p.vm.count("time")) {
    task_limits += "#SBATCH --time=" +
                   checked(p, "time", "[0-9]+([-:][0-9]+)*",
                           "a Slurm time such as 30, 04:00:00 or 1-00:00:00") +
                   "\n";
  }
  if (p.vm.count("cpus-per-task")) {
    const int64_t c = p.vm["cpus-per-task"].as<int64_t>();
    if (c < 1)
      throw ConfigError("slurm.bad_option",
                        fmt::format("--cpus-per-task {}: expected at least 1", c));
    task_limits += fmt::format("#SBATCH --cpus-per-task={}\n", c);
  }
  if (p.vm.count("mem")) {
    task_limits +=
        "#SBATCH --mem=" + checked(p, "mem", "[0-9]+[KMGT]?", "a size such as 4000 (MB) or 8G") +
        "\n";
  }
  return {common, task_limits};
}

// What the three scripts are made of: absolute paths (the jobs start in Slurm's working
// directory, maybe on another node) and the #SBATCH lines the options gave.
struct SlurmJobs {
  int64_t shards = 1;
  std::string header;       // the comment every script starts with
  std::string job_name;
  std::string common;       // #SBATCH lines of both jobs (partition, --sbatch)
  std::string task_limits;  // #SBATCH lines of the array tasks (time, cpus, memory)
  std::string merge_time;
  std::string run_args;     // FILE, overrides, --plugin-dir, --jobs, shell-quoted
  fs::path cwd, exe, dir, results;
  std::string shard_base;   // the results path without .h5: + .shard-K-of-N.h5
};

// The job array: task K trains shard K of N into its own results file.
std::string array_script(const SlurmJobs& j) {
  return fmt::format(
      "#!/bin/bash\n"
      "{header}"
      "# Task K trains shard K of {n} (`patchbay run --shard K/{n}`, K = $SLURM_ARRAY_TASK_ID) "
      "into\n"
      "# its own results file; merge.sbatch combines them.\n"
      "#SBATCH --job-name={name}\n"
      "#SBATCH --array=0-{last}\n"
      "#SBATCH --output={logs}/shard-%a.%A.out\n"
      "{common}{limits}"
      "set -euo pipefail\n"
      ": \"${{SLURM_ARRAY_TASK_ID:?submit this script with sbatch: it is one task of a job "
      "array}}\"\n"
      "cd {cwd}\n"
      "exec {exe} run {args} \\\n"
      "    --shard \"${{SLURM_ARRAY_TASK_ID}}/{n}\" \\\n"
      "    --results {base}\".shard-${{SLURM_ARRAY_TASK_ID}}-of-{n}.h5\"\n",
      fmt::arg("header", j.header), fmt::arg("n", j.shards), fmt::arg("last", j.shards - 1),
      fmt::arg("name", j.job_name), fmt::arg("logs", (j.dir / "logs").string()),
      fmt::arg("common", j.common), fmt::arg("limits", j.task_limits),
      fmt::arg("cwd", sh_quote(j.cwd.string())), fmt::arg("exe", sh_quote(j.exe.string())),
      fmt::arg("args", j.run_args), fmt::arg("base", sh_quote(j.shard_base)));

}

// The merge job: combines the shards' files once the array has ended.
std::string merge_script(const SlurmJobs& j) {
  return fmt::format(
      "#!/bin/bash\n"
      "{header}"
      "# Merges the shards' results files into one once the array has ended (submit.sh makes\n"
      "# it depend on the array with afterany). A shard that wrote nothing (cancelled before it\n"
      "# started) is named; its runs stay PLANNED, and this job then fails so it shows.\n"
      "#SBATCH --job-name={name}-merge\n"
      "#SBATCH --output={logs}/merge.%j.out\n"
      "#SBATCH --time={merge_time}\n"
      "#SBATCH --ntasks=1\n"
      "{common}"
      "set -euo pipefail\n"
      "cd {cwd}\n"
      "shards=()\n"
      "missing=0\n"
      "for ((k = 0; k < {n}; k++)); do\n"
      "  f={base}\".shard-$k-of-{n}.h5\"\n"
      "  if [[ -f \"$f\" ]]; then\n"
      "    shards+=(\"$f\")\n"
      "  else\n"
      "    echo \"shard $k/{n} wrote no results file ($f); see {logs}/shard-$k.*.out\" >&2\n"
      "    missing=1\n"
      "  fi\n"
      "done\n"
      "if ((${{#shards[@]}} == 0)); then\n"
      "  echo \"no shard wrote results; nothing to merge\" >&2\n"
      "  exit 1\n"
      "fi\n"
      "{exe} merge {results} \"${{shards[@]}}\"\n"
      "exit \"$missing\"\n",
      fmt::arg("header", j.header), fmt::arg("n", j.shards), fmt::arg("name", j.job_name),
      fmt::arg("logs", (j.dir / "logs").string()), fmt::arg("merge_time", j.merge_time),
      fmt::arg("common", j.common), fmt::arg("cwd", sh_quote(j.cwd.string())),
      fmt::arg("exe", sh_quote(j.exe.string())), fmt::arg("results", sh_quote(j.results.string())),
      fmt::arg("base", sh_quote(j.shard_base)));

}

// Submits the array, then the merge with afterany on it.
std::string submit_script(const SlurmJobs& j) {
  return fmt::format(
      "#!/bin/sh\n"
      "{header}"
      "# Submits the array, then the merge to run after every array task has ended (afterany:\n"
      "# also after failed or timed-out tasks). Prints both job ids.\n"
      "set -eu\n"
      "cd \"$(dirname \"$0\")\"\n"
      "array=$(sbatch --parsable array.sbatch)\n"
      "array=${{array%%;*}}  # --parsable prints \"jobid;cluster\" on multi-cluster setups\n"
      "merge=$(sbatch --parsable --dependency=afterany:\"$array\" merge.sbatch)\n"
      "merge=${{merge%%;*}}\n"
      "echo \"array job $array ({n} tasks), merge job $merge\"\n"
      "echo \"watch: squeue -j $array,$merge; logs: {logs}; results: {results}\"\n",
      fmt::arg("header", j.header), fmt::arg("n", j.shards), fmt::arg("logs", (j.dir / "logs").string()),
      fmt::arg("results", j.results.string()));

}

}  // namespace

int run_slurm(const std::vector<std::string>& args) {
  po::options_description desc("patchbay slurm options");
  desc.add_options()("help,h", "show this help")(
      "plugin-dir", po::value<std::vector<std::string>>()->composing(),
      "also load plugins from this folder (repeatable; passed on to the jobs)")(
      "shards,n", po::value<int64_t>(), "N: array tasks, each training 1/N of the runs (required)")(
      "partition,p", po::value<std::string>(), "Slurm partition (default: the cluster's default)")(
      "time,t", po::value<std::string>(),
      "time limit of each array task, e.g. 04:00:00 or 1-00:00:00")(
      "cpus-per-task,c", po::value<int64_t>(), "cores per task; training uses this many threads")(
      "mem", po::value<std::string>(), "memory per task, e.g. 8G")(
      "merge-time", po::value<std::string>()->default_value("00:30:00"),
      "time limit of the merge job")(
      "sbatch", po::value<std::vector<std::string>>()->composing(),
      "one more #SBATCH option for both jobs, e.g. --sbatch=--account=abc (repeatable)")(
      "jobs,j", po::value<int>()->default_value(1),
      "runs each task trains side by side (`run --jobs`)")(
      "results", po::value<std::string>(),
      "merged results file (default: results/<name>.h5); "
      "shard K writes R without .h5 + .shard-K-of-N.h5")(
      "out,o", po::value<std::string>(),
      "folder for the scripts and logs (default: results/<name>.slurm)");
  const auto p = parse(args, desc);
  if (wants_help(
          p,
          "Usage: patchbay slurm FILE [key=value...] --shards N [--partition P] [--time T]\n"
          "                      [--cpus-per-task C] [--mem M] [--out DIR] [--results R.h5]\n\n"
          "Writes the Slurm jobs for a sweep, without submitting anything:\n"
          "  DIR/array.sbatch  a job array of N tasks; task K runs `patchbay run FILE "
          "--shard K/N` (K = $SLURM_ARRAY_TASK_ID, --array=0-(N-1)) into its own results "
          "file\n"
          "  DIR/merge.sbatch  `patchbay merge R.h5` of the shards' files\n"
          "  DIR/submit.sh     submits both, the merge with --dependency=afterany on the "
          "array, so it starts once every task has ended (even failed or timed-out "
          "ones: what finished is merged)\n"
          "and prints the sbatch commands. The scripts hold absolute paths to this "
          "binary, the experiment and the results, and change to the current folder "
          "first, so they run from anywhere on a cluster that shares the file system. "
          "The experiment is planned and validated now; the overrides go to every task. "
          "Resubmitting resumes: completed runs are skipped, interrupted ones continue.",
          desc)) {
    return kExitOk;
  }
  if (!p.vm.count("shards"))
    throw po::error("--shards N is required: how many array tasks share the runs");
  Registry registry;
  load_plugins(registry, p);
  const Experiment exp = plan_from(p, registry, "slurm");
  const int64_t shards = p.vm["shards"].as<int64_t>();
  if (shards < 1 || static_cast<size_t>(shards) > exp.runs.size()) {
    throw ConfigError("cli.bad_shard",
                      fmt::format("--shards {}: the plan of '{}' has {} run{}; use 1 to {} shards "
                                  "(one array task each)",
                                  shards, exp.name, exp.runs.size(),
                                  exp.runs.size() == 1 ? "" : "s", exp.runs.size()));
  }
  const int jobs = p.vm["jobs"].as<int>();
  if (jobs < 1)
    throw ConfigError("slurm.bad_option", fmt::format("--jobs {}: expected at least 1", jobs));

  // Every path absolute: the jobs start in Slurm's working directory, maybe on another node.
  const fs::path cwd = fs::current_path();
  const fs::path exe = self_path();
  const fs::path experiment = fs::weakly_canonical(fs::absolute(p.positional[0]));
  const fs::path results =
      fs::absolute(p.vm.count("results") ? fs::path(p.vm["results"].as<std::string>())
                                         : fs::path("results") / (exp.name + ".h5"));
  std::string shard_base = results.string();
  if (results.extension() == ".h5") shard_base.resize(shard_base.size() - 3);
  const fs::path dir =
      fs::absolute(p.vm.count("out") ? fs::path(p.vm["out"].as<std::string>())
                                     : fs::path("results") / (exp.name + ".slurm"));
  if ((dir / "logs").string().find_first_of(" \t\n\r") != std::string::npos) {
    // #SBATCH values end at white space.
    throw ConfigError("slurm.bad_option",
                      fmt::format("--out '{}': Slurm's #SBATCH --output cannot "
                                  "take a path with spaces; choose another folder",
                                  dir.string()));
  }
  std::error_code ec;
  // sbatch does not create the folders of --output; a missing one loses the task's log.
  fs::create_directories(dir / "logs", ec);
  if (ec) {
    throw Error("slurm.write", fmt::format("cannot create '{}': {}; choose another --out",
                                           (dir / "logs").string(), ec.message()));
  }
  fs::create_directories(results.parent_path(), ec);

  const auto [common, task_limits] = sbatch_lines(p);
  const std::string merge_time =
      checked(p, "merge-time", "[0-9]+([-:][0-9]+)*", "a Slurm time such as 30 or 00:30:00");

  std::string run_args = sh_quote(experiment.string());
  for (const auto& o : exp.overrides) run_args += " " + sh_quote(o);
  if (p.vm.count("plugin-dir")) {
    for (const auto& d : p.vm["plugin-dir"].as<std::vector<std::string>>()) {
      run_args += " --plugin-dir " + sh_quote(fs::absolute(d).string());
    }
  }
  if (jobs > 1) run_args += fmt::format(" --jobs {}", jobs);
  std::string job_name = "pb-" + exp.name;
  for (char& ch : job_name) {
    if (!std::isalnum(static_cast<unsigned char>(ch)) && ch != '-' && ch != '_' && ch != '.')
      ch = '_';
  }
  const std::string header = fmt::format(
      "# Written by `patchbay slurm` (patchbay {}) for experiment '{}': {} runs in {} shards.\n"
      "# Regenerate it rather than editing it: `patchbay slurm {} --shards {} ...`.\n",
      version(), exp.name, exp.runs.size(), shards, experiment.string(), shards);

  const SlurmJobs j{shards, header, job_name, common, task_limits, merge_time, run_args, cwd, exe, dir,
                    results, shard_base};
  const std::string array = array_script(j), merge = merge_script(j), submit = submit_script(j);
  write_script(dir / "array.sbatch", array);
  write_script(dir / "merge.sbatch", merge);
  write_script(dir / "submit.sh", submit);

  const auto q = [&](const char* name) { return sh_quote((dir / name).string()); };
  fmt::print(
      "wrote {0}/array.sbatch ({1} tasks: task K runs --shard K/{1}), {0}/merge.sbatch and "
      "{0}/submit.sh\n\n"
      "submit both:\n"
      "  sh {2}\n"
      "or by hand:\n"
      "  jid=$(sbatch --parsable {3})\n"
      "  sbatch --dependency=afterany:${{jid%%;*}} {4}\n\n"
      "then: {5} report {6}\n",
      dir.string(), shards, q("submit.sh"), q("array.sbatch"), q("merge.sbatch"),
      sh_quote(exe.string()), sh_quote(results.string()));
  return kExitOk;
}

}  // namespace patchbay::cli
