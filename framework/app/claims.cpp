// Reading a claims file and the verdict of a claim (claims.hpp).
#include "claims.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <fstream>
#include <sstream>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <toml++/toml.h>

#include "patchbay/error.hpp"

namespace fs = std::filesystem;

namespace patchbay::cli {
namespace {

// In the order docs/claims.md lists them.
const std::vector<std::string> kKeys = {"text", "results", "a", "b", "expect", "margin", "metric", "source", "command"};

// The problems of one file, each "FILE:LINE: message", thrown together.
class Problems {
 public:
  explicit Problems(std::string file) : file_(std::move(file)) {}
  void add(const toml::source_region& where, const std::string& message) {
    list_.push_back(fmt::format("{}:{}: {}", file_, where.begin.line, message));
  }
  void throw_if_any() const {
    if (list_.empty()) return;
    std::string all;
    for (const auto& p : list_) all += "\n  " + p;
    throw ConfigError("claims.bad", fmt::format("{} problem{} in the claims file:{}", list_.size(),
                                                list_.size() == 1 ? "" : "s", all));
  }

 private:
  std::string file_;
  std::vector<std::string> list_;
};

// A string key; `point`: a sweep point, which must be named, not numbered (a report's
// numbers change as runs complete).
bool read_text(const toml::table& t, const char* key, std::string& out, bool point, Problems& problems) {
  const toml::node* node = t.get(key);
  if (!node) return false;
  if (node->is_string()) {
    out = *node->value<std::string>();
  } else if (point && node->is_integer()) {
    problems.add(node->source(), fmt::format("{} = {}: name the point by the slug of one of its runs (`patchbay plan "
                                             "FILE` lists them) or its name as `patchbay report` prints it; a report's "
                                             "numbers change as runs complete",
                                             key, *node->value<int64_t>()));
  } else {
    problems.add(node->source(), fmt::format("'{}' must be {}", key,
                                             point ? "a point: the slug of one of its runs or its name (a string)"
                                                   : "a string in quotes"));
  }
  return true;
}

Expectation parse_expect(const std::string& text, bool& ok) {
  std::string t;
  for (char c : text) {
    if (c != ' ') t += c;
  }
  ok = true;
  if (t == "a>b") return Expectation::greater;
  if (t == "a<b") return Expectation::less;
  if (t == "a=b" || t == "a==b") return Expectation::equal;
  ok = false;
  return Expectation::greater;
}

Claim read_claim(const toml::table& t, Problems& problems) {
  Claim c;
  c.line = static_cast<int>(t.source().begin.line);
  for (const auto& [key, node] : t) {
    if (std::find(kKeys.begin(), kKeys.end(), std::string(key.str())) == kKeys.end()) {
      problems.add(node.source(), fmt::format("unknown key '{}' in a [[claim]] (keys: {})", key.str(),
                                              fmt::join(kKeys, ", ")));
    }
  }
  for (const char* key : {"text", "results", "a", "b", "expect"}) {
    if (!t.contains(key)) {
      problems.add(t.source(), fmt::format("this [[claim]] has no '{}'; every claim needs text, results, a, b "
                                           "and expect",
                                           key));
    }
  }
  read_text(t, "text", c.text, false, problems);
  read_text(t, "results", c.results, false, problems);
  read_text(t, "a", c.a, true, problems);
  read_text(t, "b", c.b, true, problems);
  read_text(t, "metric", c.metric, false, problems);
  read_text(t, "source", c.source, false, problems);
  read_text(t, "command", c.command, false, problems);
  std::string expect;
  if (read_text(t, "expect", expect, false, problems) && t.get("expect")->is_string()) {
    bool ok = false;
    c.expect = parse_expect(expect, ok);
    if (!ok) {
      problems.add(t.get("expect")->source(),
                   fmt::format("expect = \"{}\": give \"a > b\", \"a < b\" or \"a = b\" (with a margin)", expect));
    }
  }
  if (const toml::node* m = t.get("margin")) {
    const auto v = m->value<double>();
    if (!v || !std::isfinite(*v) || *v < 0) {
      problems.add(m->source(), "'margin' must be a number >= 0, in the metric's units (0.02 = two points of "
                                "accuracy)");
    } else {
      c.margin = *v;
    }
  }
  if (t.contains("metric") && c.metric != "auto" && c.metric != "test_accuracy" && c.metric != "test_mAP" &&
      c.metric != "test_auc") {
    problems.add(t.get("metric")->source(), fmt::format("metric = \"{}\": a claim is tested on the runs' test "
                                                        "predictions; give auto, test_accuracy, test_mAP or test_auc",
                                                        c.metric));
  }
  for (const char* side : {"a", "b"}) {
    const std::string& name = side[0] == 'a' ? c.a : c.b;
    if (!name.empty() && std::all_of(name.begin(), name.end(), [](unsigned char ch) { return std::isdigit(ch); })) {
      problems.add(t.get(side)->source(),
                   fmt::format("{} = \"{}\": a number is a row of `patchbay report`, which changes as runs "
                               "complete; name the point by the slug of one of its runs or by its name",
                               side, name));
    }
  }
  if (!c.a.empty() && c.a == c.b) {
    problems.add(t.get("b")->source(), "a and b name the same point; a claim compares two");
  }
  if (c.expect == Expectation::equal && !(c.margin > 0) && t.contains("expect")) {
    problems.add(t.source(), "expect = \"a = b\" needs margin > 0: an interval can lie inside (-margin, margin), "
                             "never on 0 alone");
  }
  return c;
}

}  // namespace

std::vector<Claim> read_claims(const fs::path& file) {
  std::ifstream in(file);
  if (!in) {
    throw ConfigError("claims.missing", fmt::format("cannot read the claims file {}; give the path of a TOML file "
                                                    "of [[claim]] tables (docs/claims.md)",
                                                    file.string()));
  }
  std::stringstream text;
  text << in.rdbuf();
  toml::table doc;
  try {
    doc = toml::parse(text.str(), file.string());
  } catch (const toml::parse_error& e) {
    throw ConfigError("claims.syntax", fmt::format("{}:{}:{}: {}; fix the TOML syntax", file.string(),
                                                   e.source().begin.line, e.source().begin.column, e.description()));
  }
  Problems problems(file.string());
  for (const auto& [key, node] : doc) {
    if (key.str() != "claim") {
      problems.add(node.source(), fmt::format("unknown table or key '{}': a claims file holds [[claim]] tables",
                                              key.str()));
    }
  }
  std::vector<Claim> claims;
  if (const toml::node* list = doc.get("claim")) {
    if (!list->is_array_of_tables()) {
      problems.add(list->source(), "'claim' must be written [[claim]], one table per claim");
    } else {
      for (const auto& node : *list->as_array()) claims.push_back(read_claim(*node.as_table(), problems));
    }
  }
  problems.throw_if_any();
  if (claims.empty()) {
    throw ConfigError("claims.empty", fmt::format("{} holds no [[claim]]; docs/claims.md shows one", file.string()));
  }
  return claims;
}

Verdict verdict_of(const Claim& claim, const stats::Interval& d) {
  const double m = claim.margin;
  switch (claim.expect) {
    case Expectation::greater:
      if (d.lo > m) return Verdict::holds;
      if (d.hi <= m) return Verdict::differs;
      return Verdict::not_resolved;
    case Expectation::less:
      if (d.hi < -m) return Verdict::holds;
      if (d.lo >= -m) return Verdict::differs;
      return Verdict::not_resolved;
    case Expectation::equal:
      if (d.lo > -m && d.hi < m) return Verdict::holds;
      if (d.lo >= m || d.hi <= -m) return Verdict::differs;
      return Verdict::not_resolved;
  }
  return Verdict::not_resolved;
}

std::string expectation_text(const Claim& claim) {
  const std::string m = claim.margin > 0 ? fmt::format(" + {:g}", claim.margin) : "";
  switch (claim.expect) {
    case Expectation::greater: return "A > B" + m;
    case Expectation::less: return "A < B" + (claim.margin > 0 ? fmt::format(" - {:g}", claim.margin) : "");
    case Expectation::equal: return fmt::format("A = B within {:g}", claim.margin);
  }
  return "";
}

const char* verdict_name(Verdict verdict) {
  switch (verdict) {
    case Verdict::holds: return "holds";
    case Verdict::not_resolved: return "not resolved";
    case Verdict::differs: return "differs";
    case Verdict::pending: return "pending";
  }
  return "";
}

}  // namespace patchbay::cli
