// patchbay::Distributed's collectives with two ranks in one process (one thread each, a real
// TCPStore and Gloo pairs on 127.0.0.1): the bucketed gradient reduction's arithmetic across
// several buckets, uneven row gathers, broadcast, and configuration errors.
#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <future>

#include <torch/types.h>

#include "patchbay/distributed.hpp"
#include "patchbay/error.hpp"

namespace {

int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  socklen_t len = sizeof(addr);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

// Runs body(rank) for ranks 0 and 1 on two threads, each with its own Distributed.
template <typename Body>
void two_ranks(Body body) {
  const int port = free_port();
  const auto rank = [&](int r) {
    patchbay::DistributedConfig c;
    c.rank = r;
    c.world_size = 2;
    c.port = port;
    c.timeout_s = 20;
    auto d = patchbay::Distributed::connect(c);
    body(*d);
  };
  auto other = std::async(std::launch::async, rank, 1);
  rank(0);
  other.get();
}

}  // namespace

TEST_SUITE("unit") {
  TEST_CASE(
      "distributed: gradients reduce to the combined batch's mean across buckets; rows gather; "
      "broadcast") {
    // Rank r's "parameters": a 3x5 matrix, a vector, a parameter without a gradient (a rank that
    // had no example) and a frozen one. Rank 0 saw 3 examples, rank 1 saw 1.
    const auto grads_of = [](int r) {
      return std::vector<at::Tensor>{torch::full({3, 5}, r == 0 ? 1.0f : 5.0f),
                                     torch::arange(4, torch::kFloat) * static_cast<float>(r + 1)};
    };
    std::vector<std::vector<at::Tensor>> after(2);
    std::vector<std::vector<at::Tensor>> gathered(2);
    std::vector<at::Tensor> broadcasted(2);
    two_ranks([&](patchbay::Distributed& d) {
      const int r = d.rank();
      auto g = grads_of(r);
      std::vector<at::Tensor> params;
      for (const auto& x : g) {
        auto p = torch::zeros_like(x).requires_grad_(true);
        p.mutable_grad() = x.clone();
        params.push_back(p);
      }
      auto no_grad = torch::zeros({2}).requires_grad_(true);
      if (r == 0) no_grad.mutable_grad() = torch::full({2}, 8.0f);  // rank 1: undefined
      params.push_back(no_grad);
      params.push_back(torch::ones({2}));  // frozen: left alone
      const double weight = r == 0 ? 3.0 : 1.0;
      // 16-byte buckets: every tensor lands in a bucket of its own or is split across several.
      d.reduce_gradients(params, weight, 4.0, "test gradients", 16);
      for (const auto& p : params)
        after[static_cast<size_t>(r)].push_back(p.grad().defined() ? p.grad().clone()
                                                                   : at::Tensor());

      const auto rows = torch::full({r == 0 ? 3 : 0, 2}, static_cast<float>(r + 1));
      gathered[static_cast<size_t>(r)] = d.all_gather_rows(rows, "test rows");

      // A transposed (strided) tensor: broadcast copies the result back into the view.
      std::vector<at::Tensor> b{torch::full({2, 3}, static_cast<float>(10 + r)).t()};
      d.broadcast(b, "test broadcast");
      broadcasted[static_cast<size_t>(r)] = b[0];
    });
    for (size_t r = 0; r < 2; ++r) {
      CAPTURE(r);
      // (3 * 1 + 1 * 5) / 4 = 2; (3 * [0 1 2 3] + 1 * [0 2 4 6]) / 4 = [0 1.25 2.5 3.75].
      CHECK(torch::allclose(after[r][0], torch::full({3, 5}, 2.0f)));
      CHECK(torch::allclose(after[r][1], torch::tensor({0.0f, 1.25f, 2.5f, 3.75f})));
      CHECK(torch::allclose(after[r][2], torch::full({2}, 6.0f)));  // 3 * 8 / 4, rank 1's as zeros
      CHECK_FALSE(after[r][3].defined());
      REQUIRE(gathered[r].size() == 2);
      CHECK(gathered[r][0].sizes() == std::vector<int64_t>{3, 2});
      CHECK(gathered[r][1].size(0) == 0);
      CHECK(torch::equal(gathered[r][0], torch::ones({3, 2})));
      CHECK(torch::equal(broadcasted[r], torch::full({3, 2}, 10.0f)));
    }
  }

  TEST_CASE("distributed: configuration and rendezvous errors") {
    patchbay::DistributedConfig c;
    c.world_size = 2;
    c.rank = 2;
    CHECK_THROWS_WITH_AS(c.validate(), doctest::Contains("rank 2 is outside 0..1"),
                         patchbay::ConfigError);
    c.rank = 0;
    c.port = 70000;
    CHECK_THROWS_WITH_AS(c.validate(), doctest::Contains("port 70000"), patchbay::ConfigError);
    // Rank 1 alone, nobody listening: gives up after the timeout with dist.rendezvous.
    c.rank = 1;
    c.port = free_port();
    c.timeout_s = 1;
    try {
      patchbay::Distributed::connect(c);
      FAIL("connect returned without rank 0");
    } catch (const patchbay::Error& e) {
      CHECK(e.id() == "dist.rendezvous");
      CHECK(std::string(e.what()).find("rank 1 of 2") != std::string::npos);
    }
  }
}
