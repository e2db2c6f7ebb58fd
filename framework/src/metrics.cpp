#include "patchbay/metrics.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include <ATen/ATen.h>
#include <fmt/format.h>

#include "patchbay/error.hpp"

namespace patchbay {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// Indices sorting scores in decreasing order (stable, so equal scores keep input order; the
// metrics below treat a run of equal scores as one threshold, so the order inside does not
// matter).
std::vector<size_t> descending(const std::vector<double>& scores) {
  std::vector<size_t> order(scores.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return scores[a] > scores[b]; });
  return order;
}

double mean_defined(const std::vector<double>& values) {
  double sum = 0.0;
  size_t n = 0;
  for (double v : values) {
    if (!std::isnan(v)) {
      sum += v;
      ++n;
    }
  }
  return n == 0 ? kNaN : sum / static_cast<double>(n);
}

// Inverse of the standard normal CDF by bisection-free Newton steps on erfc; accurate to
// ~1e-12, plenty for d'.
double inverse_normal_cdf(double p) {
  if (std::isnan(p)) return kNaN;
  if (p <= 0.0) return -std::numeric_limits<double>::infinity();
  if (p >= 1.0) return std::numeric_limits<double>::infinity();
  // Start from a logistic approximation, then refine with Newton on Phi(x) - p.
  double x = std::log(p / (1.0 - p)) / 1.702;
  for (int i = 0; i < 60; ++i) {
    const double cdf = 0.5 * std::erfc(-x / std::sqrt(2.0));
    const double pdf = std::exp(-0.5 * x * x) / std::sqrt(2.0 * M_PI);
    if (pdf < 1e-300) break;
    const double step = (cdf - p) / pdf;
    x -= step;
    if (std::abs(step) < 1e-14) break;
  }
  return x;
}

}  // namespace

double average_precision(const std::vector<double>& scores, const std::vector<double>& labels) {
  const double positives = std::accumulate(labels.begin(), labels.end(), 0.0);
  if (positives <= 0.0) return kNaN;
  const auto order = descending(scores);
  double tp = 0.0, fp = 0.0, previous_recall = 0.0, ap = 0.0;
  for (size_t i = 0; i < order.size(); ++i) {
    const double y = labels[order[i]];
    tp += y;
    fp += 1.0 - y;
    // A threshold ends where the next score differs (ties are one threshold).
    const bool last_of_tie = i + 1 == order.size() || scores[order[i + 1]] != scores[order[i]];
    if (!last_of_tie) continue;
    const double recall = tp / positives;
    const double precision = tp / (tp + fp);
    ap += (recall - previous_recall) * precision;
    previous_recall = recall;
  }
  return ap;
}

double roc_auc(const std::vector<double>& scores, const std::vector<double>& labels) {
  const double positives = std::accumulate(labels.begin(), labels.end(), 0.0);
  const double negatives = static_cast<double>(labels.size()) - positives;
  if (positives <= 0.0 || negatives <= 0.0) return kNaN;
  // Mann-Whitney: for each positive, count negatives scored lower, ties count half.
  const auto order = descending(scores);
  double auc = 0.0, negatives_below = negatives;
  size_t i = 0;
  while (i < order.size()) {
    size_t j = i;
    double pos = 0.0, neg = 0.0;
    while (j < order.size() && scores[order[j]] == scores[order[i]]) {
      pos += labels[order[j]];
      neg += 1.0 - labels[order[j]];
      ++j;
    }
    negatives_below -= neg;
    auc += pos * (negatives_below + 0.5 * neg);
    i = j;
  }
  return auc / (positives * negatives);
}

double d_prime(double auc) { return std::sqrt(2.0) * inverse_normal_cdf(auc); }

ClassificationMetrics evaluate_classification(const at::Tensor& logits, const at::Tensor& targets) {
  if (logits.dim() != 2 || targets.sizes() != logits.sizes() || logits.size(0) == 0 ||
      logits.size(1) == 0) {
    throw ShapeError("shape.metrics",
                     fmt::format("metrics need logits and targets of the same shape [N, C] with "
                                 "N, C > 0; got logits [{}] and targets [{}]",
                                 fmt::join(logits.sizes(), ", "), fmt::join(targets.sizes(), ", ")));
  }
  const auto s = logits.to(at::kDouble).contiguous();
  const auto t = targets.to(at::kDouble).contiguous();
  const int64_t n = s.size(0), c = s.size(1);
  const double* sp = s.data_ptr<double>();
  const double* tp = t.data_ptr<double>();

  ClassificationMetrics m;
  int64_t correct = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double* row = sp + i * c;
    const int64_t top = std::max_element(row, row + c) - row;
    if (tp[i * c + top] > 0.5) ++correct;
  }
  m.accuracy = static_cast<double>(correct) / static_cast<double>(n);

  std::vector<double> scores(n), labels(n);
  m.ap_per_class.resize(c);
  m.auc_per_class.resize(c);
  for (int64_t k = 0; k < c; ++k) {
    for (int64_t i = 0; i < n; ++i) {
      scores[i] = sp[i * c + k];
      labels[i] = tp[i * c + k] > 0.5 ? 1.0 : 0.0;
    }
    m.ap_per_class[k] = average_precision(scores, labels);
    m.auc_per_class[k] = roc_auc(scores, labels);
  }
  m.mAP = mean_defined(m.ap_per_class);
  m.auc = mean_defined(m.auc_per_class);
  m.d_prime = d_prime(m.auc);
  return m;
}

}  // namespace patchbay
