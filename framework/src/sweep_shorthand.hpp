// Sweep-axis shorthands: a list of values written as a rule instead of by hand.
//
//   "train.epochs" = { range = [10, 40, 10] }       10, 20, 30            (stop excluded)
//   "train.mixup"  = { linspace = [0.0, 0.5, 3] }   0, 0.25, 0.5          (both ends included)
//   "train.lr"     = { logspace = [-4, -2, 3] }     0.0001, 0.001, 0.01   (10^a .. 10^b, as numpy)
//
// range takes start, stop, step (Python's and numpy's range: start + i * step while short of
// stop; integers when all three are, reals otherwise); linspace and logspace take the two
// ends and the count (an integer >= 1; 1 gives the first end). Values are computed as
// start + i * step, never by accumulation, and real values are rounded to 12 significant
// digits, so 0.1 steps give 0.3 rather than 0.30000000000000004 (and readable run slugs).
// Used by sweep_grammar.cpp for axes and zip-group members. Not installed.
#pragma once
#include <optional>
#include <string>

#include <toml++/toml.h>

namespace patchbay::config_internal {

constexpr size_t kMaxShorthandValues = 10000;

struct ShorthandValues {
  std::optional<toml::array> values;  // the expansion, when `table` is a valid shorthand
  std::string error;                  // why not, when it is meant as one (else empty)
};

// `table` is the value of sweep key `key`. A table that is not a shorthand (no range,
// linspace or logspace key, nor a near miss of one) gives neither values nor an error.
ShorthandValues expand_shorthand(const toml::table& table, const std::string& key);

}  // namespace patchbay::config_internal
