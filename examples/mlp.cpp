// examples/mlp.cpp — the first program to write with glimpse: gradient descent by hand, then the
// same idea with layers and an optimizer.
//
//   Part 1. Linear regression with bare tensors. The data are y = 3·x0 − 2·x1 + 0.5 plus noise;
//           w and b start at zero, and each step computes the mean squared error, asks autograd
//           for d(loss)/dw and d(loss)/db (loss.backward()), and moves w and b against them.
//   Part 2. A two-layer perceptron (nn::Dense) trained with Adam to tell points inside a circle
//           from points outside it — a boundary no straight line can draw.
//
//   build/examples/example_mlp [--steps N]     (exit status 1 if either part did not learn)
#include <glimpse/glimpse.h>

#include <cmath>
#include <cstdlib>
#include <iostream>
#include <string>

using namespace glimpse;

int main(int argc, char** argv) {
  int steps = 300;
  if (argc == 3 && std::string(argv[1]) == "--steps") steps = std::atoi(argv[2]);
  Generator gen(42);  // every random number below comes from this seed: the run is reproducible

  // ---- Part 1: y = x·w + b, fitted by hand ------------------------------------------------
  const int64_t n = 256;
  Tensor x = random_uniform({n, 2}, -1.0, 1.0, gen);
  Tensor noise = random_normal({n, 1}, 0.0, 0.05, gen);
  Tensor true_w = Tensor::from_vector(std::vector<float>{3.0f, -2.0f}, {2, 1});
  Tensor y = add_scalar(add(matmul(x, true_w), noise), 0.5);

  // Leaves that require a gradient: backward() fills their .grad().
  Tensor w = Tensor::zeros({2, 1}).set_requires_grad();
  Tensor b = Tensor::zeros({1}).set_requires_grad();
  const double lr = 0.5;
  for (int step = 0; step < steps; ++step) {
    Tensor prediction = add(matmul(x, w), b);   // [n, 1]; b broadcasts over the rows
    Tensor loss = mean(square(sub(prediction, y)));
    loss.backward();
    {
      // The update itself must not be recorded as part of the next step's graph.
      NoGradGuard no_grad;
      w.copy_(sub(w, mul_scalar(w.grad(), lr)));
      b.copy_(sub(b, mul_scalar(b.grad(), lr)));
    }
    w.zero_grad();  // gradients add up across backward() calls until dropped
    b.zero_grad();
    if (step % 100 == 0 || step == steps - 1) std::cout << "regression step " << step << ": loss " << loss.item() << "\n";
  }
  const std::vector<float> wv = w.to_vector();
  const float bv = b.item();
  std::cout << "fitted w = (" << wv[0] << ", " << wv[1] << "), b = " << bv << "   (true: 3, -2, 0.5)\n";
  const bool line_ok = std::fabs(wv[0] - 3) < 0.05 && std::fabs(wv[1] + 2) < 0.05 && std::fabs(bv - 0.5) < 0.05;

  // ---- Part 2: inside or outside the circle of radius 0.7 ----------------------------------
  Tensor points = random_uniform({512, 2}, -1.0, 1.0, gen);
  std::vector<float> p = points.to_vector();
  std::vector<int32_t> labels(512);
  for (size_t i = 0; i < labels.size(); ++i) labels[i] = p[2 * i] * p[2 * i] + p[2 * i + 1] * p[2 * i + 1] < 0.49f;
  Tensor targets = Tensor::from_vector(labels, {512});

  nn::Dense hidden("hidden", 2, 16, gen, nn::Activation::Tanh);
  nn::Dense output("output", 16, 2, gen);  // two logits: outside, inside
  std::vector<nn::NamedTensor> parameters = hidden.named_parameters();
  for (const nn::NamedTensor& t : output.named_parameters()) parameters.push_back(t);
  nn::Adam adam(parameters, std::make_shared<nn::ConstantLr>(0.05));

  double accuracy = 0;
  for (int step = 0; step < steps; ++step) {
    Tensor logits = output.forward(hidden.forward(points));
    // Softmax cross-entropy over the two classes; ignore_index -1: no label is padding here.
    Tensor loss = cross_entropy(logits, targets, /*ignore_index=*/-1);
    adam.zero_grad();
    loss.backward();
    adam.step();
    if (step % 100 == 0 || step == steps - 1) {
      NoGradGuard no_grad;
      std::vector<int32_t> predicted = argmax(logits).to_vector_i32();
      int right = 0;
      for (size_t i = 0; i < labels.size(); ++i) right += predicted[i] == labels[i];
      accuracy = static_cast<double>(right) / labels.size();
      std::cout << "circle step " << step << ": loss " << loss.item() << ", accuracy " << accuracy << "\n";
    }
  }
  const bool circle_ok = accuracy >= 0.9;
  std::cout << (line_ok && circle_ok ? "both models learned" : "a model did not learn") << "\n";
  return line_ok && circle_ok ? 0 : 1;
}
