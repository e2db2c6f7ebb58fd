// Classification metrics of one evaluation pass, computed from logits and targets.
//
//   auto m = evaluate_classification(logits, targets, /*multi_label=*/true);
//   fmt::print("mAP {:.3f}  AUC {:.3f}  d' {:.2f}\n", m.mAP, m.auc, m.d_prime);
//
// Conventions (the ones AST and the FFTP paper report):
// - accuracy: top-1, the arg-max class is (one of) the example's labels.
// - average precision per class as scikit-learn's average_precision_score computes it:
//   sum over distinct score thresholds of (R_n - R_{n-1}) P_n, no interpolation; tied scores
//   form one threshold. mAP is the mean over the classes that have at least one positive.
// - ROC-AUC per class: the area under the ROC curve with ties counted half (the
//   Mann-Whitney statistic, equal to sklearn's roc_auc_score); averaged over the classes that
//   have both positives and negatives. d' = sqrt(2) * Phi^-1(mean AUC) (AST's d-prime).
// - Classes without positives (or, for AUC, without negatives) get NaN in the per-class
//   vectors and are left out of the means; a metric with no class to average is NaN.
//
// Inputs: logits [N, C] (any real scores; the ranking is all that matters for AP/AUC),
// targets [N, C] in {0, 1} (multi-hot; for single-label one 1 per row). Mixed (soft)
// targets are not accepted: evaluation never mixes. Throws ShapeError "shape.metrics" when the
// shapes differ or are not 2-D, N = 0 or C = 0.
#pragma once
#include <ATen/core/Tensor.h>

#include <vector>

#include "patchbay/export.hpp"

namespace patchbay {

struct ClassificationMetrics {
  double accuracy = 0.0;
  double mAP = 0.0;
  double auc = 0.0;
  double d_prime = 0.0;
  std::vector<double> ap_per_class;   // [C]
  std::vector<double> auc_per_class;  // [C]
};

PATCHBAY_API ClassificationMetrics evaluate_classification(const at::Tensor& logits,
                                                           const at::Tensor& targets);

// One class's average precision / ROC-AUC from scores and {0, 1} labels (doubles, same
// length). NaN when undefined (no positives; for AUC also no negatives).
PATCHBAY_API double average_precision(const std::vector<double>& scores, const std::vector<double>& labels);
PATCHBAY_API double roc_auc(const std::vector<double>& scores, const std::vector<double>& labels);

// sqrt(2) * inverse standard normal CDF of auc; +-inf at 1 and 0, NaN for NaN.
PATCHBAY_API double d_prime(double auc);

}  // namespace patchbay
