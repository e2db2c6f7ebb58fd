// A run's training state between epochs, and its checkpoint file.
//
//   TrainState state = fresh_state(model);
//   ... after an epoch ...
//   save_checkpoint(file, model, optimizer, state);            // atomic (atomic_file.hpp)
//   TrainState resumed = load_checkpoint(file, model, optimizer); // throws CheckpointUnreadable
//
// The checkpoint (a torch::serialize archive) holds the model's state, the best weights so
// far, the optimiser's state, the default CPU generator's state, the position (epoch, step),
// the best epoch and score, the masked-cell sums, the weight averages when on (EMA, the
// epoch-range sum and its count), fp16's loss scale and, for a distributed run, every rank's
// generator state. Restoring all of it makes a resumed run end exactly as an uninterrupted
// one on the CPU (trainer.hpp; on CUDA, README.md "GPUs" says what is not bit-exact).
// Checkpoints load on any device: the tensors are mapped to the model's.
#pragma once
#include <cstdint>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <utility>
#include <optional>
#include <vector>

#include <ATen/core/Tensor.h>

#include "train/grad_scaler.hpp"

namespace torch::optim {
class Optimizer;
}

namespace patchbay {

class Distributed;
class Model;

using NamedTensors = std::vector<std::pair<std::string, at::Tensor>>;

struct TrainState {
  int64_t epoch = 0, step = 0, best_epoch = 0;  // epochs done, optimiser steps done
  double best_score = -1.0;                     // validation metric of best_epoch
  double masked_sum = 0.0, masked_count = 0.0;  // masked cells and examples seen
  double full_frequency_sum = 0.0;              // of the masked cells, those in full-frequency frames
  NamedTensors best_state;                      // the best epoch's model state
  NamedTensors ema;                             // train.ema_decay's average (empty: off)
  NamedTensors average_sum;                     // train.average_epochs: the sum so far (float64)
  int64_t averaged = 0;                         // epochs in average_sum
  at::Tensor rank_rngs;  // [world, bytes] generator states of a distributed run's ranks
  std::optional<GradScaler::State> scaler;  // fp16 runs: the loss scale when saved
};

// A checkpoint that exists but cannot be read (truncated, corrupt, another model's). The
// model and optimiser may have been partly overwritten: the caller must build them again.
struct CheckpointUnreadable : std::runtime_error {
  using std::runtime_error::runtime_error;
};

NamedTensors copy_state(const Model& model);
void restore_state(Model& model, const NamedTensors& state);

// Writes the checkpoint atomically; the default CPU generator's state is the run's.
void save_checkpoint(const std::filesystem::path& file, Model& model, torch::optim::Optimizer& optimizer,
                     const TrainState& state);
// Reads it into model, optimiser and the default CPU generator.
TrainState load_checkpoint(const std::filesystem::path& file, Model& model, torch::optim::Optimizer& optimizer);

// A distributed run's resume: rank 0 read the checkpoint (or found none); every other rank
// takes from it what an uninterrupted run would hold at that epoch: the position, the best
// weights and score, the optimiser state (sent as its serialised archive, so any optimiser
// works), and its own generator state, so its masks and mixup continue where they stopped.
// Every rank calls this with the same world; the collectives run in the same order on all.
void share_resume(Distributed& dist, Model& model, torch::optim::Optimizer& optimizer, TrainState& state,
                  int64_t seed, const std::string& run_id);

}  // namespace patchbay
