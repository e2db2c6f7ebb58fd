// patchbay claims: every difference a write-up states, tested against its results files.
//
//   patchbay claims experiments/fftp-paper/claims.toml                # Markdown on stdout
//   patchbay claims experiments/fftp-paper/claims.toml --out results/claims.md
//   patchbay claims experiments/fftp-paper/claims.toml --json
//
// Each claim (claims.hpp) names two sweep points of a results file and the direction someone
// expects; the paired bootstrap of `patchbay compare` gives the 95 % interval of A - B, and
// that interval alone places the claim under holds, not resolved or differs. Claims whose
// results are not there yet are listed as pending with what to run, so a write-up can be
// regenerated section by section while its studies finish.
#include "claims.hpp"
#include "cli_common.hpp"
#include "commands.hpp"
#include "sweep_points.hpp"

#include <algorithm>
#include <cmath>
#include <map>
#include <memory>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "atomic_file.hpp"
#include "patchbay/error.hpp"
#include "patchbay/results.hpp"

namespace po = boost::program_options;
namespace fs = std::filesystem;

namespace patchbay::cli {
namespace {

struct Side {
  std::string name;
  size_t runs = 0, planned = 0;
  double mean = NAN, std = NAN;
  std::string text = "–";  // "0.812 ± 0.010 (n = 2 of 3)"
};

struct Outcome {
  Verdict verdict = Verdict::pending;
  std::string why;  // pending: what is missing
  bool missing_file = false;
  std::string note;  // the comparison's caveat (runs without a counterpart left out, ...)
  std::string metric;
  Side a, b;
  stats::Difference difference;
  double wall_hours = 0.0;  // the completed runs of both points, summed
  // Held-out test sets (dataset.split_seed) the comparison rests on, of those the two points'
  // planned runs cover; 1 of 1 when the study holds out one test set.
  size_t sets_compared = 0, sets_planned = 0;
  // Tested before every planned run of both points completed: the verdict may still change
  // (in the FFTP study a third seed moved one across 0).
  bool provisional() const { return a.runs < a.planned || b.runs < b.planned; }
};

// The distinct test sets of the planned runs (any status) of points `a` and `b`.
size_t planned_test_sets(const PublishedResults& pub, const std::string& a, const std::string& b) {
  auto runs = planned_runs_of(pub, a);
  const auto of_b = planned_runs_of(pub, b);
  runs.insert(runs.end(), of_b.begin(), of_b.end());
  return test_sets_of(runs).size();
}

// The clips compared, and the test sets when the study holds out several: "1050 (1 of 3 sets)".
std::string clips_text(const Outcome& o) {
  if (o.sets_planned <= 1) return std::to_string(o.difference.clips);
  return fmt::format("{} ({} of {} sets)", o.difference.clips, o.sets_compared, o.sets_planned);
}

// Text for a Markdown table cell: a "|" would end the cell.
std::string cell(const std::string& text) {
  std::string out;
  for (char c : text) out += c == '|' ? std::string("\\|") : std::string(1, c);
  return out;
}

Side side_of(const SweepPoint& point, const PublishedResults& pub) {
  const size_t planned = planned_runs_of(pub, point.name).size();
  return {point.name, point.runs.size(), planned, point.mean(), point.std(), point.mean_text(3, planned)};
}

// Results files read once however many claims name them.
class ResultsCache {
 public:
  const PublishedResults& get(const std::string& path) {
    auto& slot = files_[path];
    if (!slot) slot = std::make_unique<PublishedResults>(read_results(path));
    return *slot;
  }

 private:
  std::map<std::string, std::unique_ptr<PublishedResults>> files_;
};

// One side of a claim: its point among the completed runs, or why the claim must wait.
// Throws ConfigError when the name matches no planned run at all (a typo, not a wait).
std::optional<size_t> locate(const Claim& claim, const std::string& name, const std::vector<SweepPoint>& points,
                             const PublishedResults& pub, const std::string& claims_file, std::string& why) {
  if (auto i = find_point(points, name)) return i;
  if (auto planned = planned_point(pub, name)) {
    // A run that has not finished names its point, which other seeds may have completed.
    if (auto i = find_point(points, planned->name)) return i;
    why = fmt::format("no run of '{}' has completed yet (0 of {})", planned->name, planned->runs);
    return std::nullopt;
  }
  throw ConfigError("claims.unknown_point",
                    fmt::format("{}:{}: '{}' names no sweep point of {}; give a point's name or a run id or slug "
                                "(`patchbay report` lists them). The points with completed runs:{}",
                                claims_file, claim.line, name, claim.results, point_list(points)));
}

Outcome evaluate(const Claim& claim, ResultsCache& cache, const stats::BootstrapSettings& settings,
                 const std::string& claims_file) {
  Outcome out;
  if (!fs::exists(claim.results)) {
    out.why = fmt::format("no results file {}", claim.results);
    out.missing_file = true;
    return out;
  }
  const PublishedResults& pub = cache.get(claim.results);
  out.metric = chosen_metric(pub, claim.metric);  // read_claims checked the name
  const auto points = sweep_points(completed_runs(pub), out.metric);
  std::string why_a, why_b;
  const auto ia = locate(claim, claim.a, points, pub, claims_file, why_a);
  const auto ib = locate(claim, claim.b, points, pub, claims_file, why_b);
  if (!ia || !ib) {
    out.why = why_a.empty() || why_b.empty() ? why_a + why_b : why_a + "; " + why_b;
    return out;
  }
  if (*ia == *ib) {  // two seeds' slugs of one point: the claim would test noise
    throw ConfigError("claims.same_point",
                      fmt::format("{}:{}: a ('{}') and b ('{}') name the same sweep point ({}); a claim compares two",
                                  claims_file, claim.line, claim.a, claim.b, points[*ia].name));
  }
  out.a = side_of(points[*ia], pub);
  out.b = side_of(points[*ib], pub);
  out.sets_planned = planned_test_sets(pub, out.a.name, out.b.name);
  for (const auto* p : {&points[*ia], &points[*ib]}) {
    for (const auto* r : p->runs) out.wall_hours += r->wall_seconds / 3600.0;
  }
  const auto c = compare_points(points[*ia], points[*ib], out.metric, settings);
  out.difference = c.difference;
  out.sets_compared = c.difference.sets;
  out.note = c.note;
  if (!c.difference.interval.defined()) {
    out.why = "not comparable: " + c.note;
    return out;
  }
  out.verdict = verdict_of(claim, c.difference.interval);
  return out;
}

nlohmann::json number_json(double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr); }

nlohmann::json side_json(const Side& s) {
  return {{"point", s.name}, {"runs", s.runs},       {"planned_runs", s.planned},
          {"mean", number_json(s.mean)}, {"std", number_json(s.std)}};
}

nlohmann::json claims_json(const std::vector<Claim>& claims, const std::vector<Outcome>& outcomes,
                           const stats::BootstrapSettings& settings) {
  nlohmann::json list = nlohmann::json::array();
  for (size_t i = 0; i < claims.size(); ++i) {
    const auto& c = claims[i];
    const auto& o = outcomes[i];
    nlohmann::json j{{"text", c.text},       {"results", c.results},         {"line", c.line},
                     {"expect", expectation_text(c)}, {"verdict", verdict_name(o.verdict)},
                     {"source", c.source},   {"command", c.command}};
    if (o.verdict == Verdict::pending) {
      j["why"] = o.why;
    } else {
      j["metric"] = o.metric;
      j["a"] = side_json(o.a);
      j["b"] = side_json(o.b);
      j["difference"] = number_json(o.difference.estimate);
      j["difference_ci95"] = {o.difference.interval.lo, o.difference.interval.hi};
      j["common_clips"] = o.difference.clips;
      j["sets_compared"] = o.sets_compared;
      j["sets_planned"] = o.sets_planned;
      j["wall_hours"] = o.wall_hours;
      j["note"] = o.note;
      j["provisional"] = o.provisional();
    }
    list.push_back(j);
  }
  return {{"replicates", settings.replicates}, {"bootstrap_seed", settings.seed}, {"claims", list}};
}

std::string verdict_table(const std::vector<Claim>& claims, const std::vector<Outcome>& outcomes, Verdict verdict) {
  std::string rows;
  size_t n = 0, provisional = 0;
  for (size_t i = 0; i < claims.size(); ++i) {
    if (outcomes[i].verdict != verdict) continue;
    const auto& c = claims[i];
    const auto& o = outcomes[i];
    ++n;
    provisional += o.provisional();
    const std::string source = c.source.empty() ? "" : fmt::format(" ({})", cell(c.source));
    rows += fmt::format("| {}{} | {}, {}{} | {} | {} | {:+.3f} [{:.3f}, {:.3f}] | {} | {:.1f} h | `{}` |\n", cell(c.text),
                        o.provisional() ? " (provisional: runs still to complete)" : "", expectation_text(c),
                        o.metric, source, cell(o.a.text), cell(o.b.text), o.difference.estimate,
                        o.difference.interval.lo, o.difference.interval.hi, clips_text(o), o.wall_hours,
                        c.results);
  }
  const char* title = verdict == Verdict::holds ? "Holds" : verdict == Verdict::differs ? "Differs" : "Not resolved";
  if (n == 0) return fmt::format("\n## {} (0)\n\nNone.\n", title);
  const std::string count = provisional ? fmt::format("{}, {} of them provisional", n, provisional) : std::to_string(n);
  return fmt::format("\n## {} ({})\n\n| claim | expects | A | B | A - B [95 % CI] | clips | compute | results |\n"
                     "|---|---|---|---|---|---:|---:|---|\n{}",
                     title, count, rows);
}

std::string claims_markdown(const std::string& file, const std::vector<Claim>& claims,
                            const std::vector<Outcome>& outcomes, const stats::BootstrapSettings& settings) {
  std::string md = fmt::format(
      "# Claims\n\n`patchbay claims {}`: {} claims, each the difference A - B of two sweep points' test metric "
      "(A and B: mean ± std over their runs; n = 1 of 3 when runs are still missing), its paired bootstrap 95 % "
      "interval over their common test clips and runs, and over the held-out test sets where a study has several "
      "(k of K sets: those both points were tested on) ({} replicates, seed {}), and the verdict that interval "
      "alone gives against what the claim expects: **holds** (all of it inside), **differs** (all of it "
      "outside), **not resolved** (across the edge). Compute: the wall hours of both points' completed runs, "
      "on the machines that ran them. A claim marked provisional was tested before all its points' planned runs "
      "completed: its verdict may still change.\n",
      file, claims.size(), settings.replicates, settings.seed);
  for (Verdict v : {Verdict::holds, Verdict::not_resolved, Verdict::differs}) md += verdict_table(claims, outcomes, v);
  std::string notes;
  for (size_t i = 0; i < claims.size(); ++i) {
    if (outcomes[i].verdict != Verdict::pending && !outcomes[i].note.empty()) {
      notes += fmt::format("- {}: {}\n", claims[i].text, outcomes[i].note);
    }
  }
  if (!notes.empty()) md += "\nNotes:\n\n" + notes;
  std::string pending;
  size_t n = 0;
  for (size_t i = 0; i < claims.size(); ++i) {
    if (outcomes[i].verdict != Verdict::pending) continue;
    ++n;
    const auto& c = claims[i];
    pending += fmt::format("| {} | {} | {} |\n", cell(c.text), cell(outcomes[i].why),
                           c.command.empty() ? "–" : fmt::format("`{}`", cell(c.command)));
  }
  if (n > 0) {
    md += fmt::format("\n## Pending ({})\n\n| claim | why | to run |\n|---|---|---|\n{}", n, pending);
  }
  return md;
}

}  // namespace

int run_claims(const std::vector<std::string>& args) {
  auto desc = common_options("patchbay claims options");
  desc.add_options()("out,o", po::value<std::string>(), "write the Markdown here instead of on stdout");
  add_bootstrap_options(desc);
  const auto p = parse(args, desc);
  if (wants_help(p, "Usage: patchbay claims CLAIMS.toml [--out FILE.md] [--json]\n\n"
                    "Tests every claim of a claims file: a [[claim]] names two sweep points (A, B) of a "
                    "results file and what someone expects of them (\"a > b\", \"a < b\", or \"a = b\" within "
                    "a margin). Each gets the paired bootstrap 95 % interval of A - B (as `patchbay compare`) "
                    "and is placed under holds, not resolved or differs by that interval alone; claims whose "
                    "results are missing or unfinished are listed as pending, with the command that makes "
                    "them. docs/claims.md describes the file.",
                 desc)) {
    return kExitOk;
  }
  if (p.positional.size() != 1) {
    throw ConfigError("cli.missing_file", "which claims file? usage: patchbay claims CLAIMS.toml");
  }
  const std::string file = p.positional[0];
  const auto claims = read_claims(file);
  const auto settings = bootstrap_settings(p.vm);
  ResultsCache cache;
  std::vector<Outcome> outcomes;
  for (const auto& c : claims) outcomes.push_back(evaluate(c, cache, settings, file));
  // Paths are the working folder's: from the wrong folder every claim is pending, so say so.
  if (std::all_of(outcomes.begin(), outcomes.end(), [](const Outcome& o) { return o.missing_file; })) {
    fmt::print(stderr, "patchbay claims: none of the results files exists under {} (the working folder, which the "
                       "paths of {} are relative to); run from the folder they were written for\n",
               fs::current_path().string(), file);
  }

  if (p.vm.count("json")) {
    fmt::print("{}\n", claims_json(claims, outcomes, settings).dump(2));
    return kExitOk;
  }
  const std::string md = claims_markdown(file, claims, outcomes, settings);
  if (p.vm.count("out")) {
    write_whole_file(p.vm["out"].as<std::string>(), md.data(), md.size());
    fmt::print("wrote {}\n", p.vm["out"].as<std::string>());
  } else {
    fmt::print("{}", md);
  }
  return kExitOk;
}

}  // namespace patchbay::cli
