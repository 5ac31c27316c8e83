// Bad input is rejected with an exception naming the op and the offending shapes — never an
// abort or undefined behaviour.
#include <doctest/doctest.h>

#include "tensor/ops.h"

using namespace glimpse;

#define CHECK_FAILS(expr, text) CHECK_THROWS_WITH((void)(expr), doctest::Contains(text))

TEST_CASE("shape mismatches name the op and the shapes") {
  Tensor a = Tensor::zeros({2, 3}), b = Tensor::zeros({4, 3});
  CHECK_FAILS(add(a, b), "add: shapes [2, 3] and [4, 3] cannot be broadcast");
  CHECK_FAILS(matmul(a, b), "matmul: inner dimensions differ");
  CHECK_FAILS(matmul(Tensor::zeros({3}), b), "matmul: operands need rank >= 2");
  CHECK_FAILS(reshape(a, {4, 2}), "reshape: cannot reshape [2, 3]");
  CHECK_FAILS(concat({a, Tensor::zeros({2, 3, 1})}, 0), "concat: input 1");
  CHECK_FAILS(slice(a, 1, 2, 5), "slice: range [2, 5)");
  CHECK_FAILS(sum(a, {2}), "axis 2 is out of range");
  CHECK_FAILS(pow(a, b), "pow: shapes [2, 3] and [4, 3] cannot be broadcast");
  CHECK_FAILS(prod(a, {-3}), "prod: axis -3 is out of range for rank 2");
  CHECK_FAILS(prod(a, {1, -1}), "prod: an axis is listed twice");
  CHECK_FAILS(conv2d(Tensor::zeros({1, 5, 5, 3}), Tensor::zeros({3, 3, 4, 8}), 1, 1, Padding::Same),
              "expects 4 input channels");
  CHECK_FAILS(conv2d(Tensor::zeros({5, 5, 3}), Tensor::zeros({3, 3, 3, 8}), 1, 1, Padding::Same),
              "conv2d: input must be NHWC");
  CHECK_FAILS(conv2d(Tensor::zeros({1, 2, 2, 3}), Tensor::zeros({3, 3, 3, 8}), 1, 1, Padding::Valid),
              "does not fit input");
  CHECK_FAILS(layer_norm(a, Tensor::ones({2}), Tensor::zeros({3}), 1e-3), "layer_norm: gamma");
  CHECK_FAILS(gru_sequence(Tensor::zeros({1, 2, 3}), Tensor::zeros({1, 4}), Tensor::zeros({3, 11}),
                           Tensor::zeros({4, 12}), Tensor::zeros({2, 12})),
              "gru_sequence: weights");
  // Each formulation's bias shape: [2, 3U] with reset_after, [3U] without; the message says which.
  CHECK_FAILS(gru_sequence(Tensor::zeros({1, 2, 3}), Tensor::zeros({1, 4}), Tensor::zeros({3, 12}),
                           Tensor::zeros({4, 12}), Tensor::zeros({2, 12}), GruOptions{false, false}),
              "[3U] with the reset gate before the matmul");
  CHECK_FAILS(gru_sequence(Tensor::zeros({1, 2, 3}), Tensor::zeros({1, 4}), Tensor::zeros({3, 12}),
                           Tensor::zeros({4, 12}), Tensor::zeros({12}), GruOptions{true, true}),
              "[2, 3U] with reset_after");
}

TEST_CASE("wrong dtypes and out-of-range indices") {
  Tensor table = Tensor::zeros({5, 2});
  CHECK_FAILS(gather_rows(table, Tensor::zeros({3})), "gather_rows: ids must be int32");
  CHECK_FAILS(gather_rows(table, Tensor::from_vector(std::vector<int32_t>{0, 5}, {2})),
              "value 5 at flat position 1 is outside [0, 5)");
  CHECK_FAILS(gather_rows(table, Tensor::from_vector(std::vector<int32_t>{-1}, {1})),
              "value -1");
  // gather counts negative indices from the end, so only [-5, 5) is valid on an axis of 5.
  CHECK_FAILS(gather(table, Tensor::from_vector(std::vector<int32_t>{4, -6}, {2}), 0),
              "gather: indices value -6 at flat position 1 is outside [-5, 5)");
  CHECK_FAILS(gather(table, Tensor::from_vector(std::vector<int32_t>{2}, {1}), 1),
              "gather: indices value 2 at flat position 0 is outside [-2, 2)");
  CHECK_FAILS(gather(table, Tensor::zeros({1}), 0), "gather: indices must be int32");
  CHECK_FAILS(gather(table, Tensor::from_vector(std::vector<int32_t>{0}, {1}), 2),
              "axis 2 is out of range");
  Tensor logits = Tensor::zeros({2, 4});
  CHECK_FAILS(cross_entropy(logits, Tensor::from_vector(std::vector<int32_t>{1, 7}, {2})),
              "target 7");
  CHECK_FAILS(cross_entropy(logits, Tensor::from_vector(std::vector<int32_t>{1}, {1})),
              "do not match logits");
  Tensor ids = Tensor::from_vector(std::vector<int32_t>{1, 2}, {2});
  CHECK_FAILS(exp(ids), "exp: input must be a float tensor");
  CHECK_FAILS(add(Tensor::zeros({2}), Tensor::zeros({2}, DType::F64)), "add: dtype mismatch");
  CHECK_FAILS(pow(Tensor::zeros({2}), Tensor::zeros({2}, DType::F64)),
              "pow: dtype mismatch: float32 [2] vs float64 [2]");
  CHECK_FAILS(pow(ids, Tensor::zeros({2})), "pow: left operand must be a float tensor");
  CHECK_FAILS(pow(Tensor::zeros({2}), ids), "pow: right operand must be a float tensor");
  CHECK_FAILS(prod(ids), "prod: input must be a float tensor, got int32 of shape [2]");
  CHECK_FAILS(ids.set_requires_grad(), "int32 tensors cannot require grad");
  CHECK_FAILS(topk(logits, 5), "topk: k = 5");
}

TEST_CASE("empty tensors and bad arguments") {
  CHECK_FAILS(max(Tensor::zeros({0, 3}), 0), "max: axis 0");
  CHECK_FAILS(argmax(Tensor::zeros({2, 0})), "argmax: needs a non-empty last axis");
  CHECK_FAILS(mean(Tensor::zeros({0})), "mean: reducing over an empty axis");
  CHECK_FAILS(Tensor::empty({-1, 2}), "negative dimension");
  CHECK_FAILS(Tensor::from_vector(std::vector<float>{1, 2, 3}, {2, 2}), "3 values do not fill");
  CHECK_FAILS(Tensor::zeros({3}).item(), "item: needs a one-element tensor");
  CHECK_FAILS(dropout(Tensor::zeros({3}), 1.0, 0), "dropout: rate 1");
  CHECK_FAILS(Tensor().shape(), "undefined tensor");
  // Empty-but-valid shapes flow through without error.
  CHECK(add(Tensor::zeros({0, 3}), Tensor::zeros({3})).shape() == Shape{0, 3});
  CHECK(sum(Tensor::zeros({0, 3}), {0}).to_vector() == std::vector<float>{0, 0, 0});
  CHECK(prod(Tensor::zeros({0, 3}), {0}).to_vector() == std::vector<float>{1, 1, 1});
  CHECK(pow(Tensor::zeros({0, 3}), Tensor::zeros({3})).shape() == Shape{0, 3});
}

TEST_CASE("cuda requests fail clearly without a CUDA device") {
  if (cuda_available()) {
    MESSAGE("a CUDA device is present; nothing to check here");
    return;
  }
  CHECK_THROWS_WITH(Tensor::zeros({2}, DType::F32, Device::CUDA), doctest::Contains("cuda"));
}
