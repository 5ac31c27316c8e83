// The backward pass: topological order, gradient accumulation, graph release.
#include "tensor/autograd.h"

#include <unordered_map>
#include <unordered_set>

#include "tensor/op_helpers.h"
#include "tensor/ops.h"
#include "tensor/profiler.h"

namespace glimpse {

namespace {
thread_local bool g_grad_mode = true;
}

bool grad_mode_enabled() { return g_grad_mode; }
NoGradGuard::NoGradGuard() : previous_(g_grad_mode) { g_grad_mode = false; }
NoGradGuard::~NoGradGuard() { g_grad_mode = previous_; }

bool any_requires_grad(const std::vector<Tensor>& inputs) {
  if (!g_grad_mode) return false;
  for (const Tensor& t : inputs)
    if (t.defined() && t.requires_grad()) return true;
  return false;
}

void record_node(const std::string& op_name, const std::vector<Tensor>& inputs,
                 const std::vector<Tensor>& outputs, Node::BackwardFn backward) {
  auto node = std::make_shared<Node>();
  node->op_name = op_name;
  node->inputs = inputs;
  node->backward = std::move(backward);
  for (size_t i = 0; i < outputs.size(); ++i) {
    TensorImpl* out = outputs[i].impl();
    node->output_shapes.push_back(out->shape);
    node->output_dtype = out->dtype;
    node->output_device = out->storage->device;
    out->requires_grad = true;
    out->grad_fn = node;
    out->output_index = static_cast<int>(i);
  }
}

namespace {

// Adds `g` into `slot` (the first contribution is kept as is, later ones are summed).
void accumulate(Tensor& slot, const Tensor& g) {
  if (!slot.defined()) {
    slot = g;
  } else {
    slot = add(slot, g);
  }
}

// Depth-first post-order over the nodes reachable from `root`: every node comes after all the
// nodes that consume its outputs when the list is read backwards.
// Holds shared_ptrs: releasing a node's inputs during the pass may drop the last other reference
// to the nodes upstream of it, which must stay alive until their turn.
std::vector<std::shared_ptr<Node>> topological_order(const std::shared_ptr<Node>& root) {
  std::vector<std::shared_ptr<Node>> order;
  std::unordered_set<Node*> visited;
  // An explicit stack: graphs of long unrolled sequences would overflow a recursive walk.
  std::vector<std::pair<std::shared_ptr<Node>, size_t>> stack{{root, 0}};
  visited.insert(root.get());
  while (!stack.empty()) {
    Node* node = stack.back().first.get();
    size_t& next_input = stack.back().second;
    if (next_input < node->inputs.size()) {
      const Tensor& input = node->inputs[next_input++];
      if (input.defined() && input.impl()->grad_fn) {
        const std::shared_ptr<Node>& producer = input.impl()->grad_fn;
        if (visited.insert(producer.get()).second) stack.push_back({producer, 0});
      }
    } else {
      order.push_back(std::move(stack.back().first));
      stack.pop_back();
    }
  }
  return order;
}

}  // namespace

void run_backward(const Tensor& root, const Tensor& grad_root) {
  using detail::fail;
  if (!root.defined()) fail("backward", "called on an undefined tensor");
  if (!root.requires_grad())
    fail("backward", "the tensor does not require grad (no input of its graph requires grad)");
  if (grad_root.shape() != root.shape())
    fail("backward", "gradient shape ", shape_str(grad_root.shape()), " does not match tensor ",
         shape_str(root.shape()));
  // The backward pass itself is not recorded (no higher-order gradients).
  NoGradGuard no_grad;

  TensorImpl* root_impl = root.impl();
  if (!root_impl->grad_fn) {  // a leaf: its gradient is the seed
    Tensor slot = root_impl->grad ? Tensor(root_impl->grad) : Tensor();
    accumulate(slot, grad_root);
    root_impl->grad = slot.impl_ptr();
    return;
  }

  Node* root_node = root_impl->grad_fn.get();
  if (root_node->released)
    fail("backward", "the graph of op '", root_node->op_name,
         "' was already freed by an earlier backward()");

  std::unordered_map<Node*, std::vector<Tensor>> pending;  // output gradients per node
  pending[root_node].resize(root_node->output_shapes.size());
  pending[root_node][root_impl->output_index] = grad_root;

  profiler::Frame pass(profiler::FrameKind::Region, "backward", {}, root);
  std::vector<std::shared_ptr<Node>> order = topological_order(root_impl->grad_fn);
  for (auto it = order.rbegin(); it != order.rend(); ++it) {
    Node* node = it->get();
    if (node->released)
      fail("backward", "the graph of op '", node->op_name, "' was already freed");
    std::vector<Tensor> grad_outputs = std::move(pending[node]);
    pending.erase(node);
    grad_outputs.resize(node->output_shapes.size());
    for (size_t i = 0; i < grad_outputs.size(); ++i)
      if (!grad_outputs[i].defined())
        grad_outputs[i] = Tensor::zeros(node->output_shapes[i], node->output_dtype,
                                        node->output_device);

    // The node's closure and the accumulation of what it returns, as one frame (GLIMPSE_DEBUG=2,
    // traces): "<op>.backward".
    profiler::Frame frame(profiler::FrameKind::Backward, node->op_name, ".backward", grad_outputs);
    std::vector<Tensor> grad_inputs = node->backward(grad_outputs);
    frame.outputs(grad_inputs);
    if (grad_inputs.size() != node->inputs.size())
      fail("backward", "op '", node->op_name, "' returned ", grad_inputs.size(),
           " gradients for ", node->inputs.size(), " inputs");

    for (size_t i = 0; i < node->inputs.size(); ++i) {
      const Tensor& input = node->inputs[i];
      const Tensor& g = grad_inputs[i];
      if (!input.defined() || !input.requires_grad() || !g.defined()) continue;
      if (g.shape() != input.shape())
        fail("backward", "op '", node->op_name, "' produced a gradient of shape ",
             shape_str(g.shape()), " for input ", i, " of shape ", shape_str(input.shape()));
      TensorImpl* in = input.impl();
      if (in->grad_fn) {
        auto& slots = pending[in->grad_fn.get()];
        slots.resize(in->grad_fn->output_shapes.size());
        accumulate(slots[in->output_index], g);
      } else {
        Tensor slot = in->grad ? Tensor(in->grad) : Tensor();
        // Leaves own their gradient buffer: copy the first contribution so later in-place
        // optimizer steps never alias a tensor the graph still uses.
        accumulate(slot, slot.defined() ? g : g.clone());
        in->grad = slot.impl_ptr();
      }
    }
    // Free what the node saved: the closure holds activations, `inputs` holds the graph.
    node->backward = nullptr;
    node->inputs.clear();
    node->released = true;
  }
}

}  // namespace glimpse
