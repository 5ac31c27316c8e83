// The define-by-run autograd engine (see docs/autograd.md).
//
// Every differentiable op that sees an input requiring grad (while grad mode is on) creates one
// Node: the inputs it read, whatever it saved for later (captured by its backward closure), and
// that closure, which maps the gradients of the op's outputs to the gradients of its inputs.
// Tensor::backward() orders the nodes topologically from the loss and runs the closures in reverse,
// summing gradients with += wherever a tensor fed several ops, then frees the graph.
#pragma once
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "tensor/tensor.h"

namespace glimpse {

struct Node {
  // Gradients of the outputs in (undefined entries were never reached: treated as zero),
  // gradients of the inputs out (an undefined entry means "no gradient for this input").
  using BackwardFn = std::function<std::vector<Tensor>(const std::vector<Tensor>& grad_outputs)>;

  std::string op_name;             // for error messages and graph printing
  std::vector<Tensor> inputs;      // the tensors this op read (keeps them alive until backward)
  std::vector<Shape> output_shapes;
  DType output_dtype = DType::F32;
  Device output_device = Device::CPU;
  BackwardFn backward;
  bool released = false;           // set once backward has run and freed the closure
};

// Grad mode: on by default, per thread. NoGradGuard turns it off for a scope (inference).
bool grad_mode_enabled();
class NoGradGuard {
 public:
  NoGradGuard();
  ~NoGradGuard();
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool previous_;
};

// True when an op reading `inputs` must record a node.
bool any_requires_grad(const std::vector<Tensor>& inputs);

// Attaches a node producing `outputs` from `inputs`. Call only when any_requires_grad(inputs).
void record_node(const std::string& op_name, const std::vector<Tensor>& inputs,
                 const std::vector<Tensor>& outputs, Node::BackwardFn backward);

// Convenience for the common one-output case.
inline void record_node(const std::string& op_name, const std::vector<Tensor>& inputs,
                        const Tensor& output, Node::BackwardFn backward) {
  record_node(op_name, inputs, std::vector<Tensor>{output}, std::move(backward));
}

// Runs the backward pass from `root` seeded with `grad_root` (see Tensor::backward).
void run_backward(const Tensor& root, const Tensor& grad_root);

// The recorded graph that produced `root`, as Graphviz dot text (render: dot -Tsvg g.dot > g.svg),
// drawn the way micrograd draws it: a box per tensor (its name when `names` has it, its shape,
// "requires_grad" or "constant", the values when it holds at most 4, and the gradient of a leaf
// that has one), an ellipse per op (the node's op_name), and edges input tensor -> op -> output
// tensor, left to right. Walks the nodes from root; call it before backward(), which frees the
// graph (a freed node is drawn with no inputs and "freed" in its label). Ids are given in the order
// of the walk, so the text is the same for the same graph.
std::string autograd_dot(const Tensor& root,
                         const std::vector<std::pair<std::string, Tensor>>& names = {});

}  // namespace glimpse
