// The op profiler (tensor/profiler.h): off by default, rows keyed by op and shape, calls and FLOPs
// counted per row, and nothing recorded once it is off again.
#include <doctest/doctest.h>

#include "tensor/autograd.h"
#include "tensor/ops.h"
#include "tensor/profiler.h"

using namespace glimpse;

TEST_CASE("the op profiler records convolutions, pooling and concat by shape only while on") {
  NoGradGuard no_grad;
  Tensor x = Tensor::ones({2, 9, 9, 4});
  Tensor w3 = Tensor::ones({3, 3, 4, 6});
  Tensor w1 = Tensor::ones({1, 1, 4, 5});
  Tensor b5 = Tensor::zeros({5});
  profiler::reset();
  conv2d(x, w3, 1, 1, Padding::Same);  // off: not recorded
  CHECK(profiler::entries().empty());

  profiler::set_enabled(true);
  conv2d(x, w3, 1, 1, Padding::Same);
  conv2d(x, w3, 1, 1, Padding::Same);
  conv2d(x, w3, 2, 2, Padding::Valid);
  conv2d_bias_activation(x, w1, b5, 1, 1, Padding::Same, true);
  max_pool2d(x, 3, 3, 2, 2, Padding::Valid);
  concat({x, x}, 3);
  profiler::set_enabled(false);
  conv2d(x, w3, 1, 1, Padding::Same);  // off again: not counted

  const std::vector<profiler::Entry> entries = profiler::entries();
  REQUIRE(entries.size() == 5);
  auto find = [&](const std::string& op, const std::string& shape) {
    for (const auto& e : entries)
      if (e.op == op && e.shape == shape) return e;
    FAIL("no entry " << op << " " << shape);
    return profiler::Entry{};
  };
  const profiler::Entry same = find("conv2d", "2x9x9x4 k3x3/1 -> 6");
  CHECK(same.calls == 2);
  CHECK(same.flops == doctest::Approx(2 * (2.0 * 2 * 9 * 9 * 6 * 3 * 3 * 4)));
  CHECK(same.seconds > 0);
  const profiler::Entry strided = find("conv2d", "2x9x9x4 k3x3/2 -> 6");
  CHECK(strided.calls == 1);
  CHECK(strided.flops == doctest::Approx(2.0 * 2 * 4 * 4 * 6 * 3 * 3 * 4));  // 9 -> 4, VALID
  CHECK(find("conv2d_bias_activation", "2x9x9x4 k1x1/1 -> 5").calls == 1);
  CHECK(find("max_pool2d", "2x9x9x4 k3x3/2 -> 4").flops == 0);
  CHECK(find("concat", "2 -> [2, 9, 9, 8]").calls == 1);
  for (size_t i = 1; i < entries.size(); ++i) CHECK(entries[i - 1].seconds >= entries[i].seconds);

  profiler::reset();
  CHECK(profiler::entries().empty());
}
