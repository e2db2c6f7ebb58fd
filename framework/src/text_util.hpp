// Small text helpers shared by the core's sources (not installed).
#pragma once
#include <optional>
#include <string>
#include <vector>

namespace patchbay {

// Levenshtein distance between two short strings.
size_t edit_distance(const std::string& a, const std::string& b);
// The candidate nearest to `word` if it is close enough to be a typo (distance at most a
// third of the word's length, and at least 1 allowed), else nothing.
std::optional<std::string> closest_match(const std::string& word,
                                         const std::vector<std::string>& candidates);
// "a, b, c"
std::string join(const std::vector<std::string>& items, const std::string& sep = ", ");

}  // namespace patchbay
