// The one translation unit that includes c10d and Gloo (distributed.hpp says why and what).
#include "patchbay/distributed.hpp"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <exception>
#include <functional>

#include <fmt/format.h>
#include <torch/types.h>
#include <torch/utils.h>
// LibTorch builds its Gloo backend only with this macro; the header is empty without it.
#ifndef USE_C10D_GLOO
#define USE_C10D_GLOO 1
#endif
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include "patchbay/error.hpp"
#include "patchbay/log.hpp"
#include "patchbay/results.hpp"  // host_name()
#include "torch_compat.hpp"

namespace patchbay {
namespace {

int parse_env_int(const char* name, int fallback) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return fallback;
  char* end = nullptr;
  const long n = std::strtol(v, &end, 10);
  if (end == v || *end != '\0') {
    throw ConfigError("dist.config",
                      fmt::format("environment variable {}='{}' is not a whole number", name, v));
  }
  return static_cast<int>(n);
}

bool is_loopback(const std::string& addr) {
  return addr == "localhost" || addr == "::1" || addr.rfind("127.", 0) == 0;
}

std::vector<uint8_t> bytes_of(const std::string& s) { return {s.begin(), s.end()}; }

// The first line of an exception's text: c10::Error appends a C++ back trace after it, which
// says nothing to a user and buries the cause in the run's reason.
std::string first_line(const std::exception& e) {
  std::string s = e.what();
  const auto nl = s.find('\n');
  return nl == std::string::npos ? s : s.substr(0, nl);
}

}  // namespace

void require_cpu_for_distributed(const std::string& device) {
  if (device == "cpu") return;
  throw ConfigError("dist.device", fmt::format("patchbay run-dist trains over Gloo on CPUs; train.device = \"{}\" "
                                               "is for `patchbay run` on one GPU; set train.device = \"cpu\" for "
                                               "run-dist", device));
}

DistributedConfig DistributedConfig::from_environment() {
  DistributedConfig c;
  c.rank = parse_env_int("RANK", c.rank);
  c.world_size = parse_env_int("WORLD_SIZE", c.world_size);
  c.port = parse_env_int("MASTER_PORT", c.port);
  if (const char* a = std::getenv("MASTER_ADDR"); a != nullptr && *a != '\0') c.addr = a;
  if (const char* i = std::getenv("GLOO_SOCKET_IFNAME"); i != nullptr && *i != '\0') c.iface = i;
  return c;
}

void DistributedConfig::validate() const {
  if (world_size < 1) {
    throw ConfigError(
        "dist.config",
        fmt::format("world size {} must be at least 1 (--dist-world-size or WORLD_SIZE)",
                    world_size));
  }
  if (rank < 0 || rank >= world_size) {
    throw ConfigError(
        "dist.config",
        fmt::format("rank {} is outside 0..{} for a world of {} (--dist-rank or RANK)", rank,
                    world_size - 1, world_size));
  }
  if (port < 1 || port > 65535) {
    throw ConfigError(
        "dist.config",
        fmt::format("port {} is outside 1..65535 (--dist-port or MASTER_PORT)", port));
  }
  if (addr.empty())
    throw ConfigError("dist.config", "the address of rank 0 is empty (--dist-addr or MASTER_ADDR)");
  if (!(timeout_s > 0.0)) {
    throw ConfigError("dist.config",
                      fmt::format("timeout {} s must be positive (--dist-timeout)", timeout_s));
  }
}

struct Distributed::Impl {
  DistributedConfig config;
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> group;
  std::vector<std::string> who;  // per rank: "host pid N", read at the rendezvous

  // Runs one collective and waits for it; any failure becomes "dist.peer_lost" naming the lost
  // rank where that is knowable. Gloo reports a dead peer at once (its TCP connection closes)
  // and a silent one after the group's timeout, so this never blocks longer than that.
  void run(const std::string& what, const std::function<c10::intrusive_ptr<c10d::Work>()>& start) {
    try {
      auto work = start();
      work->wait();
    } catch (const std::exception& e) {
      const std::string cause = first_line(e);
      std::string lost;
      if (config.world_size == 2) {
        const int other = 1 - config.rank;
        lost = fmt::format("rank {} ({}) was lost", other, who.at(static_cast<size_t>(other)));
      } else {
        std::vector<std::string> others;
        for (int r = 0; r < config.world_size; ++r) {
          if (r != config.rank)
            others.push_back(fmt::format("rank {} ({})", r, who.at(static_cast<size_t>(r))));
        }
        lost = fmt::format("a peer was lost, one of {}", fmt::join(others, ", "));
      }
      const bool timed_out =
          cause.find("imed out") != std::string::npos || cause.find("imeout") != std::string::npos;
      throw Error(
          "dist.peer_lost",
          fmt::format(
              "rank {} of {}: {} failed: {}{} ({}); see that rank's log for why it "
              "stopped, then start every rank again",
              config.rank, config.world_size, what, lost,
              timed_out ? fmt::format(" or did not answer within {} s", config.timeout_s) : "",
              cause));
    }
  }
};

Distributed::Distributed(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Distributed::~Distributed() = default;

std::shared_ptr<Distributed> Distributed::connect(const DistributedConfig& config) {
  config.validate();
  auto impl = std::make_unique<Impl>();
  impl->config = config;
  const auto timeout = std::chrono::milliseconds(static_cast<int64_t>(config.timeout_s * 1000.0));
  const std::string where = fmt::format("{}:{}", config.addr, config.port);
  try {
    // Rank 0 serves the store; the others connect to it, retrying until the timeout. No
    // waitWorkers: the process group's own rendezvous below waits for every rank's address
    // (bounded by the timeout), while the store's wait for its clients took about twice the
    // timeout plus two seconds to give up here (measured: 6.4 s for a 2 s timeout).
    c10d::TCPStoreOptions so;
    so.port = static_cast<std::uint16_t>(config.port);
    so.isServer = config.rank == 0;
    so.numWorkers = static_cast<std::size_t>(config.world_size);
    so.waitWorkers = false;
    so.timeout = timeout;
    compat::use_classic_tcp_store(so);
    impl->store = c10::make_intrusive<c10d::TCPStore>(config.addr, so);

    auto options = c10d::ProcessGroupGloo::Options::create(timeout);
    // Which local address Gloo's pairs bind: see DistributedConfig::iface.
    if (!config.iface.empty()) {
      options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(config.iface));
    } else if (is_loopback(config.addr)) {
      options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
    } else {
      options->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
    }
    // One thread for Gloo's work queue: the trainer issues one collective at a time, and the
    // cores are for the intra-op threads.
    options->threads = 1;
    impl->group = c10::make_intrusive<c10d::ProcessGroupGloo>(impl->store, config.rank,
                                                              config.world_size, options);

    // Who is who, for messages naming a lost rank (read now: rank 0's store dies with it).
    impl->store->set(fmt::format("patchbay/who/{}", config.rank),
                     bytes_of(fmt::format("host {} pid {}", host_name(), ::getpid())));
    for (int r = 0; r < config.world_size; ++r) {
      const auto v = impl->store->get(fmt::format("patchbay/who/{}", r));
      impl->who.emplace_back(v.begin(), v.end());
    }
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    throw Error(
        "dist.rendezvous",
        fmt::format("rank {} of {}: the ranks did not all meet at {} within {} s ({}); start "
                    "every rank with the same address, port and world size (rank 0 "
                    "listens on the port, which must be free and reachable), within the "
                    "timeout of each other, or raise --dist-timeout",
                    config.rank, config.world_size, where, config.timeout_s, first_line(e)));
  }
  log::info("distributed: rank {} of {} joined at {} (Gloo)", config.rank, config.world_size,
            where);
  return std::shared_ptr<Distributed>(new Distributed(std::move(impl)));
}

int Distributed::rank() const { return impl_->config.rank; }
int Distributed::world_size() const { return impl_->config.world_size; }
const DistributedConfig& Distributed::config() const { return impl_->config; }

void Distributed::broadcast(std::vector<at::Tensor>& tensors, const std::string& what) {
  if (tensors.empty()) return;
  // Gloo broadcasts contiguous tensors; copy back when the caller's is a strided view.
  std::vector<at::Tensor> contiguous;
  for (const auto& t : tensors) contiguous.push_back(t.contiguous());
  for (auto& t : contiguous) {
    std::vector<at::Tensor> one{t};
    impl_->run(what, [&] { return impl_->group->broadcast(one, c10d::BroadcastOptions{}); });
  }
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < tensors.size(); ++i) {
    if (!contiguous[i].is_same(tensors[i])) tensors[i].copy_(contiguous[i]);
  }
}

void Distributed::all_reduce_sum(at::Tensor& tensor, const std::string& what) {
  at::Tensor t = tensor.contiguous();
  std::vector<at::Tensor> one{t};
  impl_->run(what, [&] { return impl_->group->allreduce(one, c10d::AllreduceOptions{}); });
  if (!t.is_same(tensor)) tensor.copy_(t);
}

void Distributed::reduce_gradients(const std::vector<at::Tensor>& parameters, double weight,
                                   double divisor, const std::string& what, int64_t bucket_bytes) {
  torch::NoGradGuard no_grad;
  std::vector<at::Tensor> grads;
  for (auto p : parameters) {
    if (!p.requires_grad()) continue;
    if (!p.grad().defined()) p.mutable_grad() = torch::zeros_like(p);
    grads.push_back(p.grad());
  }
  size_t i = 0;
  while (i < grads.size()) {
    // A bucket: consecutive gradients of one dtype, up to bucket_bytes (at least one tensor).
    size_t end = i;
    int64_t bytes = 0;
    while (end < grads.size() && grads[end].scalar_type() == grads[i].scalar_type() &&
           (end == i || bytes + grads[end].nbytes() <= static_cast<size_t>(bucket_bytes))) {
      bytes += static_cast<int64_t>(grads[end].nbytes());
      ++end;
    }
    std::vector<at::Tensor> pieces;
    for (size_t k = i; k < end; ++k) pieces.push_back(grads[k].reshape({-1}));
    at::Tensor flat = torch::cat(pieces).mul_(weight);
    std::vector<at::Tensor> one{flat};
    impl_->run(what, [&] { return impl_->group->allreduce(one, c10d::AllreduceOptions{}); });
    flat.div_(divisor);
    int64_t offset = 0;
    for (size_t k = i; k < end; ++k) {
      const int64_t n = grads[k].numel();
      grads[k].copy_(flat.narrow(0, offset, n).view_as(grads[k]));
      offset += n;
    }
    i = end;
  }
}

std::vector<at::Tensor> Distributed::all_gather_rows(const at::Tensor& rows,
                                                     const std::string& what) {
  const int world = impl_->config.world_size;
  // Gloo's all-gather wants equal shapes: share the row counts, pad to the largest, trim.
  at::Tensor counts = torch::zeros({world}, torch::kLong);
  counts[impl_->config.rank] = rows.size(0);
  all_reduce_sum(counts, what);
  const int64_t most = counts.max().item<int64_t>();
  auto shape = rows.sizes().vec();
  shape[0] = most;
  at::Tensor padded = torch::zeros(shape, rows.options());
  if (rows.size(0) > 0) padded.narrow(0, 0, rows.size(0)).copy_(rows);
  std::vector<at::Tensor> input{padded};
  std::vector<std::vector<at::Tensor>> output(1);
  for (int r = 0; r < world; ++r) output[0].push_back(torch::empty(shape, rows.options()));
  if (most > 0) {
    impl_->run(what,
               [&] { return impl_->group->allgather(output, input, c10d::AllgatherOptions{}); });
  }
  std::vector<at::Tensor> out;
  for (int r = 0; r < world; ++r)
    out.push_back(output[0][static_cast<size_t>(r)].narrow(0, 0, counts[r].item<int64_t>()));
  return out;
}

}  // namespace patchbay
