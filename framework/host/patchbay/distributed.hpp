// One run across several processes: data-parallel training over LibTorch's c10d
// ProcessGroupGloo (TCP), with a c10d TCPStore for the rendezvous. Only this header's
// implementation (src/distributed.cpp) includes c10d / Gloo headers; the trainer and the CLI
// see the Tensor declaration alone.
//
//   DistributedConfig cfg = DistributedConfig::from_environment();   // RANK, WORLD_SIZE, ...
//   cfg.rank = 1;                                                    // or set fields by hand
//   std::shared_ptr<Distributed> dist = Distributed::connect(cfg);   // blocks: rendezvous
//   TrainerOptions opts;  opts.distributed = dist;                   // trainer.hpp
//
// What: rank 0 hosts the TCPStore at addr:port; every rank connects, the Gloo process group
// forms a full mesh of TCP pairs, and the collectives below run over it. Every rank must call
// the same collectives in the same order (the trainer does: one loss/statistics all-reduce
// and the gradient buckets per step, a broadcast per epoch, a gather per evaluation).
//
// Ownership: a Distributed owns its store and process group; they live until the last
// shared_ptr goes. Tensors passed in are the caller's: the collectives work in place or
// return new tensors, and keep no reference after they return. Not thread-safe: one thread
// calls the collectives.
//
// Errors: every failure is a patchbay::Error, never a hang. The timeout (cfg.timeout_s)
// bounds the rendezvous and every collective.
//   dist.config      a bad configuration (rank outside 0..world-1, port, missing values)
//   dist.rendezvous  the ranks did not all join within the timeout (or the port is taken)
//   dist.peer_lost   a collective failed: a peer closed its connections (it died) or did not
//                    answer within the timeout; the message names the lost rank when it
//                    can tell (always with 2 ranks), and the rank that saw it.
#pragma once
#include <ATen/core/Tensor.h>

#include <memory>
#include <string>
#include <vector>

#include "patchbay/export.hpp"

namespace patchbay {

struct DistributedConfig {
  int rank = 0;
  int world_size = 1;
  std::string addr = "127.0.0.1";  // where rank 0 listens (the TCPStore), MASTER_ADDR
  int port = 29500;                // MASTER_PORT (torch's default)
  double timeout_s = 60.0;         // rendezvous and every collective
  // The network interface Gloo binds (GLOO_SOCKET_IFNAME, e.g. "eth0"). Empty: 127.0.0.1 when
  // addr is a loopback address, otherwise the address this machine's host name resolves to
  // (Gloo's default device). Set it when the host name resolves to 127.0.1.1, as Debian's
  // /etc/hosts makes it, and the ranks are on several machines.
  std::string iface;

  // RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT and GLOO_SOCKET_IFNAME, each when set (the
  // fields keep their defaults otherwise). Throws ConfigError "dist.config" for a value that is
  // not a number.
  PATCHBAY_API static DistributedConfig from_environment();
  // Throws ConfigError "dist.config" naming what is wrong.
  PATCHBAY_API void validate() const;
};

// Gloo reduces CPU tensors: a distributed run trains on the CPU. Throws ConfigError
// "dist.device" for train.device = `device` (its text) unless it is "cpu".
PATCHBAY_API void require_cpu_for_distributed(const std::string& device);

class PATCHBAY_API Distributed {
 public:
  // Rendezvous with the other world_size - 1 ranks; returns when all have joined. Throws
  // "dist.config" or "dist.rendezvous" (see above).
  static std::shared_ptr<Distributed> connect(const DistributedConfig& config);
  ~Distributed();
  Distributed(const Distributed&) = delete;
  Distributed& operator=(const Distributed&) = delete;

  int rank() const;
  int world_size() const;
  const DistributedConfig& config() const;

  // In place: every tensor takes rank 0's values (same shapes and dtypes on all ranks).
  // `what` names the operation in errors ("the initial parameters").
  void broadcast(std::vector<at::Tensor>& tensors, const std::string& what);

  // In place: the element-wise sum over ranks.
  void all_reduce_sum(at::Tensor& tensor, const std::string& what);

  // Data-parallel gradients, in place: grad <- (sum over ranks of weight_r * grad_r) / divisor.
  // With weight = this rank's examples in the step and divisor = all ranks' examples, that is
  // the gradient of the mean loss over the combined batch. Gradients are flattened into
  // buckets of at most bucket_bytes (one all-reduce per bucket, fewer and larger messages
  // than one per tensor) and copied back. A parameter without a gradient (a rank with no
  // example in the step) counts as zeros and gets a zero gradient, so every rank ends with
  // the same gradients.
  void reduce_gradients(const std::vector<at::Tensor>& parameters, double weight, double divisor,
                        const std::string& what, int64_t bucket_bytes = 25 << 20);

  // Every rank's `rows` ([n_r, ...], n_r may differ and be 0; the other dimensions and the
  // dtype the same), in rank order, on every rank.
  std::vector<at::Tensor> all_gather_rows(const at::Tensor& rows, const std::string& what);

 private:
  struct Impl;
  explicit Distributed(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace patchbay
