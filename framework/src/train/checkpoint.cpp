#include "train/checkpoint.hpp"

#include <sstream>

#include <fmt/format.h>
#include <torch/optim/optimizer.h>
#include <torch/serialize.h>
#include <torch/types.h>

#include "atomic_file.hpp"
#include "patchbay/distributed.hpp"
#include "patchbay/log.hpp"
#include "patchbay/model.hpp"

namespace fs = std::filesystem;

namespace patchbay {
namespace {

TrainState read_checkpoint(const fs::path& file, Model& model, torch::optim::Optimizer& optimizer);

}  // namespace

void save_checkpoint(const fs::path& file, Model& model, torch::optim::Optimizer& optimizer,
                     const TrainState& state) {
  torch::serialize::OutputArchive archive;
  for (const auto& [name, t] : model.named_state()) archive.write("model/" + name, t, /*is_buffer=*/true);
  for (const auto& [name, t] : state.best_state) archive.write("best/" + name, t, true);
  for (const auto& [name, t] : state.ema) archive.write("ema/" + name, t, true);
  for (const auto& [name, t] : state.average_sum) archive.write("average/" + name, t, true);
  archive.write("averaged", torch::tensor(state.averaged), true);
  torch::serialize::OutputArchive opt_archive;
  optimizer.save(opt_archive);
  archive.write("optimizer", opt_archive);
  archive.write("rng", at::detail::getDefaultCPUGenerator().get_state(), true);
  archive.write("epoch", torch::tensor(state.epoch), true);
  archive.write("step", torch::tensor(state.step), true);
  archive.write("best_score", torch::tensor(state.best_score, torch::kDouble), true);
  archive.write("best_epoch", torch::tensor(state.best_epoch), true);
  archive.write("masked", torch::tensor({state.masked_sum, state.masked_count, state.full_frequency_sum}, torch::kDouble), true);
  // A distributed run: every rank's generator state, [world, state bytes] (row 0 = "rng").
  if (state.rank_rngs.defined()) archive.write("rank_rng", state.rank_rngs, true);
  if (state.scaler) {
    archive.write("scaler", torch::tensor({state.scaler->scale, static_cast<double>(state.scaler->growth_tracker)},
                                          torch::kDouble), true);
  }
  // Serialised in memory, then written by us: LibTorch's file writer, on a full disk, throws
  // again from its destructor while the first error unwinds, and the process aborts.
  std::ostringstream bytes;
  archive.save_to(bytes);
  const std::string image = bytes.str();
  replace_file(file, "checkpoint", [&](const fs::path& temp) { write_whole_file(temp, image.data(), image.size()); });
}


TrainState load_checkpoint(const fs::path& file, Model& model, torch::optim::Optimizer& optimizer) {
  try {
    return read_checkpoint(file, model, optimizer);
  } catch (const c10::Error& e) {
    throw CheckpointUnreadable(e.what_without_backtrace());  // the user needs no stack trace
  } catch (const std::exception& e) {
    throw CheckpointUnreadable(e.what());
  }
}

namespace {

TrainState read_checkpoint(const fs::path& file, Model& model, torch::optim::Optimizer& optimizer) {
  torch::serialize::InputArchive archive;
  archive.load_from(file.string(), model.device);  // written on any device, read onto the model's
  TrainState r;
  torch::NoGradGuard no_grad;
  for (auto& [name, t] : model.named_state()) {
    at::Tensor v;
    archive.read("model/" + name, v, true);
    t.copy_(v);
    at::Tensor b;
    archive.read("best/" + name, b, true);
    r.best_state.emplace_back(name, b);
  }
  torch::serialize::InputArchive opt_archive;
  archive.read("optimizer", opt_archive);
  optimizer.load(opt_archive);
  at::Tensor rng, epoch, step, best_score, best_epoch, masked;
  archive.read("rng", rng, true);
  at::Generator generator = at::detail::getDefaultCPUGenerator();
  generator.set_state(rng.to(torch::kCPU));
  archive.read("epoch", epoch, true);
  archive.read("step", step, true);
  archive.read("best_score", best_score, true);
  archive.read("best_epoch", best_epoch, true);
  archive.read("masked", masked, true);
  r.epoch = epoch.item<int64_t>();
  r.step = step.item<int64_t>();
  r.best_score = best_score.item<double>();
  r.best_epoch = best_epoch.item<int64_t>();
  r.masked_sum = masked[0].item<double>();
  r.masked_count = masked[1].item<double>();
  r.full_frequency_sum = masked.numel() > 2 ? masked[2].item<double>() : 0.0;  // older checkpoints: 2
  at::Tensor rank_rngs;
  if (archive.try_read("rank_rng", rank_rngs, true)) r.rank_rngs = rank_rngs.to(torch::kCPU);
  at::Tensor scaler;
  if (archive.try_read("scaler", scaler, true)) {
    r.scaler = GradScaler::State{scaler[0].item<double>(), static_cast<int64_t>(scaler[1].item<double>())};
  }
  // The weight averages, when the run keeps them (older checkpoints have none).
  at::Tensor averaged;
  if (archive.try_read("averaged", averaged, true)) r.averaged = averaged.item<int64_t>();
  for (const auto& [name, t] : model.named_state()) {
    at::Tensor e, a;
    if (archive.try_read("ema/" + name, e, true)) r.ema.emplace_back(name, e);
    if (archive.try_read("average/" + name, a, true)) r.average_sum.emplace_back(name, a);
  }
  return r;
}

}  // namespace

NamedTensors copy_state(const Model& model) {
  NamedTensors out;
  for (const auto& [name, t] : model.named_state()) out.emplace_back(name, t.detach().clone());
  return out;
}

void restore_state(Model& model, const NamedTensors& state) {
  torch::NoGradGuard no_grad;
  auto current = model.named_state();
  for (size_t i = 0; i < current.size() && i < state.size(); ++i) current[i].second.copy_(state[i].second);
}

void share_resume(Distributed& dist, Model& model, torch::optim::Optimizer& optimizer,
                  TrainState& state, int64_t seed, const std::string& run_id) {
  const int rank = dist.rank();
  const int world = dist.world_size();
  std::string optimizer_bytes;
  if (rank == 0 && state.epoch > 0) {
    torch::serialize::OutputArchive archive;
    optimizer.save(archive);
    std::ostringstream out;
    archive.save_to(out);
    optimizer_bytes = out.str();
  }
  const int64_t rng_rows = state.rank_rngs.defined() ? state.rank_rngs.size(0) : 0;
  const int64_t rng_bytes = state.rank_rngs.defined() ? state.rank_rngs.size(1) : 0;
  at::Tensor header = torch::tensor({state.epoch, state.step, state.best_epoch,
                                     static_cast<int64_t>(optimizer_bytes.size()), rng_rows, rng_bytes,
                                     static_cast<int64_t>(!state.ema.empty()),
                                     static_cast<int64_t>(!state.average_sum.empty()), state.averaged},
                                    torch::kLong);
  at::Tensor scalars = torch::tensor({state.best_score, state.masked_sum, state.masked_count,
                                      state.full_frequency_sum}, torch::kDouble);
  std::vector<at::Tensor> small{header, scalars};
  dist.broadcast(small, "broadcasting where the run resumes");
  const int64_t* h = header.data_ptr<int64_t>();
  state.epoch = h[0];
  state.step = h[1];
  state.best_epoch = h[2];
  state.best_score = scalars[0].item<double>();
  state.masked_sum = scalars[1].item<double>();
  state.masked_count = scalars[2].item<double>();
  state.full_frequency_sum = scalars[3].item<double>();

  // Every rank built the model from the same seed, but rank 0's copy is the truth (resumed,
  // or an init_weights file that could differ between machines).
  std::vector<at::Tensor> parameters;
  for (const auto& [name, tensor] : model.named_state()) parameters.push_back(tensor);
  dist.broadcast(parameters, "broadcasting rank 0's parameters");
  if (state.epoch == 0) {
    state.best_state = copy_state(model);
    // Masks, mixup and dropout differ between ranks as they would between batches; rank 0
    // keeps train.seed, so its stream is the one-process run's.
    if (rank > 0) torch::manual_seed(static_cast<uint64_t>(seed + rank));
    return;
  }

  if (rank > 0) state.best_state = copy_state(model);  // shapes to receive into
  std::vector<at::Tensor> best;
  for (auto& [name, tensor] : state.best_state) best.push_back(tensor);
  dist.broadcast(best, "broadcasting the best weights so far");
  // The weight averages (averaging.hpp), where the run keeps them.
  const auto share_named = [&](NamedTensors& named, bool float64, const char* what) {
    if (rank > 0) {
      named = copy_state(model);  // shapes to receive into
      for (auto& [name, t] : named) {
        if (float64 && t.is_floating_point()) t = t.to(torch::kDouble);
      }
    }
    std::vector<at::Tensor> tensors;
    for (auto& [name, tensor] : named) tensors.push_back(tensor);
    dist.broadcast(tensors, what);
  };
  if (h[6] == 1) share_named(state.ema, false, "broadcasting the weights' moving average");
  if (h[7] == 1) share_named(state.average_sum, true, "broadcasting the epoch-averaged weights so far");
  state.averaged = h[8];

  at::Tensor bytes = rank == 0 ? torch::from_blob(optimizer_bytes.data(), {h[3]}, torch::kUInt8).clone()
                               : torch::empty({h[3]}, torch::kUInt8);
  std::vector<at::Tensor> blob{bytes};
  dist.broadcast(blob, "broadcasting the optimiser state");
  if (rank > 0) {
    torch::serialize::InputArchive archive;
    archive.load_from(reinterpret_cast<const char*>(bytes.data_ptr<uint8_t>()), static_cast<size_t>(h[3]));
    optimizer.load(archive);
  }

  if (h[4] == world) {
    at::Tensor rngs = rank == 0 ? state.rank_rngs.contiguous() : torch::empty({h[4], h[5]}, torch::kUInt8);
    std::vector<at::Tensor> all{rngs};
    dist.broadcast(all, "broadcasting the ranks' generator states");
    if (rank > 0) {
      at::Generator generator = at::detail::getDefaultCPUGenerator();
      generator.set_state(rngs[rank].clone());
    }
  } else {
    if (rank == 0) {
      log::warn("run {}: the checkpoint holds the generator states of {} rank{}, not {}; ranks "
                "1..{} draw fresh masks and mixup after the resume",
                run_id, h[4], h[4] == 1 ? "" : "s", world, world - 1);
    }
    if (rank > 0) torch::manual_seed(static_cast<uint64_t>(seed + rank + 1000003 * state.epoch));
  }
}

}  // namespace patchbay
