// Averaged weights beside the best epoch's: an exponential moving average over optimiser
// steps (train.ema_decay) and AST's checkpoint averaging over an epoch range
// (train.average_epochs).
//
//   EMA, as timm's ModelEmaV2 (huggingface/pytorch-image-models timm/utils/model_ema.py):
//   a copy of the weights at the start of training, then after every optimiser step
//       ema = decay * ema + (1 - decay) * weights
//   for every floating-point tensor of the model's state (integer buffers are copied). No
//   warm-up: with decay d the start's weights keep d^steps of the average, so a short run
//   wants a smaller decay (0.99 forgets them in a few hundred steps, 0.999 in a few thousand).
//
//   Averaging, as AST's wa_model (YuanGongND/ast src/run.py, with args.wa, wa_start, wa_end):
//   the mean of the weights after each epoch a..b inclusive (1-based), kept as a running sum,
//   not as one checkpoint per epoch. A run that stops early averages the epochs of the range
//   it trained.
//
// Both are evaluated once, after training, on validation and test and recorded beside the
// best-on-validation weights (trainer.cpp: ema_* and avg_* finals); neither changes what is
// trained, which weights are tested first, or the recorded test predictions.
#pragma once
#include <array>
#include <cstdint>
#include <string>

#include "train/checkpoint.hpp"

namespace patchbay {

class Model;

// train.average_epochs = [first, last] against train.epochs: "" for [0, 0] (none) or for
// 1 <= first <= last <= epochs, else the message saying what is allowed. One text for both
// callers: config.cpp reports it at the file's line, the trainer throws it for a
// configuration built in code.
std::string average_epochs_problem(const std::array<int64_t, 2>& range, int64_t epochs);

// state empty: starts it as a copy of the model's state; else the EMA step above.
void ema_update(NamedTensors& ema, const Model& model, double decay);

// Adds the model's state to sum (empty: starts it as a copy).
void add_to_average(NamedTensors& sum, const Model& model);

// sum / count, count >= 1.
NamedTensors average_of(const NamedTensors& sum, int64_t count);

}  // namespace patchbay
