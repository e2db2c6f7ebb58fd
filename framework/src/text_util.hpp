// Small text helpers shared by the core's sources (not installed; without_backtrace is
// exported for the command line's last-resort handler too).
#pragma once
#include <optional>
#include <string>
#include <vector>

#include "patchbay/export.hpp"

namespace patchbay {

// Levenshtein distance between two short strings.
size_t edit_distance(const std::string& a, const std::string& b);
// The candidate nearest to `word` if it is close enough to be a typo (distance at most a
// third of the word's length, and at least 1 allowed), else nothing.
std::optional<std::string> closest_match(const std::string& word,
                                         const std::vector<std::string>& candidates);
// "a, b, c"
std::string join(const std::vector<std::string>& items, const std::string& sep = ", ");
// An exception's message without the C++ stack trace LibTorch appends to its own
// ("\nException raised from ...", "\nframe #0: ..."): users need the what, not the frames.
PATCHBAY_API std::string without_backtrace(const std::string& what);

}  // namespace patchbay
