// `patchout`: PaSST's Patchout (Koutini et al. 2022, "Efficient Training of Audio Transformers
// with Patchout", section 2.2), as kkoutini/PaSST models/passt.py PaSST.forward_features does
// it in training:
//   structured, time: drop `time_columns` whole columns of the patch grid (s_patchout_t),
//   structured, frequency: then drop `freq_rows` whole rows (s_patchout_f),
//   unstructured: then drop `random` of the remaining tokens (u_patchout).
// Each draw is a random permutation cut to the kept count and sorted, so the kept tokens stay
// in grid order; the draws are skipped when their count is 0; one choice serves the whole
// batch. As PaSST, the backbone adds position embeddings before the drop. Differences: the
// permutations come from the run's generator (PaSST uses torch's global one), and counts
// are checked against the grid up front (PaSST would index out of range or keep nothing).
// With FFTP's one-row grid, freq_rows must be 0: a full-frequency token has no rows to drop.
#include <ATen/ATen.h>
#include <fmt/format.h>

#include "patchbay/error.hpp"
#include "patchbay/plugin.hpp"

namespace {

// n - drop of 0 .. n-1, uniformly chosen, increasing (PaSST: randperm(n)[:n - drop].sort()).
at::Tensor choose_sorted(int64_t n, int64_t drop, at::Generator& generator) {
  if (drop == 0) return at::arange(n, at::kLong);
  return std::get<0>(at::randperm(n, generator, at::kLong).slice(0, 0, n - drop).sort());
}

class Patchout final : public patchbay::TokenDropper {
 public:
  explicit Patchout(const patchbay::Options& o)
      : time_columns_(o.get_int("time_columns")), freq_rows_(o.get_int("freq_rows")),
        random_(o.get_int("random")) {}

  int64_t kept(const patchbay::PatchGrid& g) const override {
    return (g.cols - time_columns_) * (g.rows - freq_rows_) - random_;
  }

  at::Tensor keep(const patchbay::PatchGrid& g, at::Generator& generator) const override {
    const at::Tensor cols = choose_sorted(g.cols, time_columns_, generator);
    const at::Tensor rows = choose_sorted(g.rows, freq_rows_, generator);
    // Frequency-major: token = row * cols + col; rows and columns increasing, so is this.
    at::Tensor tokens = (rows.unsqueeze(1) * g.cols + cols.unsqueeze(0)).flatten();
    if (random_ > 0) tokens = tokens.index_select(0, choose_sorted(tokens.numel(), random_, generator));
    return tokens;
  }

  void check(const patchbay::PatchGrid& g) const override {
    const auto refuse = [&](const char* option, int64_t value, const std::string& why) {
      throw patchbay::ConfigError("config.out_of_range",
                                  fmt::format("token_dropper.{} = {} {} on the grid {}; drop fewer",
                                              option, value, why, g.describe()));
    };
    if (time_columns_ >= g.cols) {
      refuse("time_columns", time_columns_, fmt::format("would drop every one of its {} time columns", g.cols));
    }
    if (freq_rows_ >= g.rows) {
      refuse("freq_rows", freq_rows_,
             g.rows == 1 ? std::string("would drop its only frequency row (full-frequency patches have one; use "
                                       "time_columns or random)")
                         : fmt::format("would drop every one of its {} frequency rows", g.rows));
    }
    const int64_t left = (g.cols - time_columns_) * (g.rows - freq_rows_);
    if (random_ >= left) {
      refuse("random", random_, fmt::format("would drop all {} tokens the structured drops leave", left));
    }
  }

 private:
  int64_t time_columns_, freq_rows_, random_;
};

}  // namespace

void register_patchout(patchbay::Registrar& registrar) {
  using namespace patchbay;
  OptionSchema s;
  s.add_int("time_columns", 0, "whole time columns of the patch grid dropped per training step "
            "(PaSST's s_patchout_t; 40 of 99 on AudioSet)", Range::at_least(0));
  s.add_int("freq_rows", 0, "whole frequency rows dropped per training step (PaSST's s_patchout_f; "
            "4 of 12 on AudioSet; 0 for full-frequency patches)", Range::at_least(0));
  s.add_int("random", 0, "tokens dropped at random from what the structured drops leave (PaSST's "
            "u_patchout)", Range::at_least(0));
  registrar.add_token_dropper({"patchout", "PaSST's Patchout: drop time columns, frequency rows "
                               "and random tokens in training", s},
                              [](const Options& o) { return std::make_shared<Patchout>(o); });
}
