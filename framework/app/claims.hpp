// A claims file: the differences a write-up states, each one tested by the paired bootstrap of
// `patchbay compare` and placed under "holds", "not resolved" or "differs" by its 95 %
// interval alone (`patchbay claims`, docs/claims.md).
//
//   [[claim]]
//   text    = "FFTP st 4 beats square at equal paper MACs"   # what the write-up says
//   results = "results/fftp-cpu-instruments-converge.h5"     # relative to the working folder
//   a       = "fftp-patch-frames16-stride4_s0"   # a point: a run's slug (any seed) or the point's name
//   b       = "square-patch-size16x16-stride10x10_lr0.0005_match-paper-macs135468288_s0"
//   expect  = "a > b"        # "a > b", "a < b", or "a = b" (then margin is required)
//   margin  = 0.0            # optional: "a > b" means a - b > margin; "a = b" |a - b| < margin
//   metric  = "auto"         # optional: test_accuracy, test_mAP or test_auc
//   source  = "paper, Table II"                               # optional: who expects it
//   command = "run_cpu_studies.sh build instruments-converge"  # optional: what regenerates results
//
// The verdict compares the interval of a - b with the region the claim expects, (margin, inf)
// for "a > b", (-inf, -margin) for "a < b", (-margin, margin) for "a = b": holds when the
// whole interval is inside it, differs when the whole interval is outside it, not resolved
// when it straddles an edge. A claim whose results file is missing, or whose points have no
// completed run or no per-clip predictions yet, is pending (with why and what to run).
#pragma once
#include <filesystem>
#include <string>
#include <vector>

#include "bootstrap.hpp"

namespace patchbay::cli {

enum class Expectation { greater, less, equal };

struct Claim {
  std::string text, results, a, b, metric = "auto", source, command;
  Expectation expect = Expectation::greater;
  double margin = 0.0;
  int line = 0;  // of its [[claim]] header in the claims file
};

// Reads and checks every claim of `file`. Throws ConfigError "claims.syntax" for TOML that
// does not parse and "claims.bad" listing every problem found, each as FILE:LINE: what was
// wrong and what is expected (a missing key, an unknown one, a wrong type, a bad `expect` or
// metric, a point given by number, a and b the same).
std::vector<Claim> read_claims(const std::filesystem::path& file);

enum class Verdict { holds, not_resolved, differs, pending };

// The verdict of a defined interval of a - b against what `claim` expects (see above).
Verdict verdict_of(const Claim& claim, const stats::Interval& difference);

// "A > B", "A < B", "A = B within 0.02" (no "|": it goes into Markdown tables), with the margin
// where it is not 0 ("A > B + 0.01").
std::string expectation_text(const Claim& claim);
// "holds", "not resolved", "differs", "pending".
const char* verdict_name(Verdict verdict);

}  // namespace patchbay::cli
