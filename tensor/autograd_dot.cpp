// autograd_dot: the recorded graph as Graphviz dot text (see autograd.h).
#include <cstdio>
#include <deque>
#include <map>
#include <sstream>
#include <unordered_map>

#include "tensor/autograd.h"

namespace glimpse {

namespace {

// Record labels treat { } | < > and backslash as syntax, and the label is in double quotes.
std::string escape_record(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (c == '{' || c == '}' || c == '|' || c == '<' || c == '>' || c == '"' || c == '\\')
      out += '\\';
    out += c;
  }
  return out;
}

std::string values_text(const Tensor& t) {
  if (!t.defined() || t.numel() == 0 || t.numel() > 4) return "";
  std::string out;
  char buffer[32];
  for (double v : t.to_vector_f64()) {
    std::snprintf(buffer, sizeof buffer, "%.4g", v);
    out += (out.empty() ? "" : ", ") + std::string(buffer);
  }
  return out;
}

class DotWriter {
 public:
  explicit DotWriter(const std::vector<std::pair<std::string, Tensor>>& names) {
    for (const auto& [name, t] : names)
      if (t.defined()) names_[t.impl()] = name;
  }

  // The id of the tensor `t` (a leaf, or output `index` of `producer`), emitted the first time.
  std::string tensor(const Tensor* t, Node* producer, int index, const Shape& shape) {
    const void* key = producer ? static_cast<const void*>(producer) : t->impl();
    auto found = tensor_ids_.find({key, index});
    if (found != tensor_ids_.end()) {
      if (t) annotate(found->second, *t);
      return found->second.id;
    }
    TensorEntry entry;
    entry.id = "t" + std::to_string(tensor_ids_.size());
    entry.shape = shape;
    entry.leaf = producer == nullptr;
    if (t) annotate(entry, *t);
    order_.push_back({key, index});
    return tensor_ids_.emplace(std::make_pair(key, index), entry).first->second.id;
  }

  std::string op(Node* node) {
    auto found = op_ids_.find(node);
    if (found != op_ids_.end()) return found->second;
    const std::string id = "op" + std::to_string(op_ids_.size());
    op_ids_[node] = id;
    std::string label = node->op_name;
    if (node->released) label += " (freed)";
    ops_ << "  " << id << " [shape=ellipse, label=\"" << escape_record(label) << "\"];\n";
    return id;
  }

  void edge(const std::string& from, const std::string& to) {
    edges_ << "  " << from << " -> " << to << ";\n";
  }

  std::string text() const {
    std::ostringstream out;
    out << "digraph autograd {\n  rankdir=LR;\n  node [fontname=\"Helvetica\"];\n";
    for (const auto& key : order_) {
      const TensorEntry& e = tensor_ids_.at(key);
      std::string label;
      if (!e.name.empty()) label += escape_record(e.name) + " | ";
      label += escape_record(shape_str(e.shape));
      label += e.leaf ? (e.requires_grad ? " | requires_grad" : " | constant") : "";
      if (!e.values.empty()) label += " | data " + escape_record(e.values);
      if (!e.grad.empty()) label += " | grad " + escape_record(e.grad);
      out << "  " << e.id << " [shape=record, label=\"{" << label << "}\""
          << (e.leaf && !e.requires_grad ? ", style=dashed" : "") << "];\n";
    }
    out << ops_.str() << edges_.str() << "}\n";
    return out.str();
  }

 private:
  struct TensorEntry {
    std::string id, name, values, grad;
    Shape shape;
    bool leaf = false, requires_grad = false, annotated = false;
  };

  void annotate(TensorEntry& e, const Tensor& t) {
    if (e.annotated) return;
    e.annotated = true;
    auto name = names_.find(t.impl());
    if (name != names_.end()) e.name = name->second;
    e.requires_grad = t.requires_grad();
    e.values = values_text(t);
    if (e.leaf && t.grad().defined()) e.grad = values_text(t.grad());
    if (e.leaf && t.grad().defined() && e.grad.empty()) e.grad = shape_str(t.grad().shape());
  }

  std::unordered_map<const TensorImpl*, std::string> names_;
  std::map<std::pair<const void*, int>, TensorEntry> tensor_ids_;
  std::vector<std::pair<const void*, int>> order_;
  std::unordered_map<Node*, std::string> op_ids_;
  std::ostringstream ops_, edges_;
};

}  // namespace

std::string autograd_dot(const Tensor& root,
                         const std::vector<std::pair<std::string, Tensor>>& names) {
  DotWriter dot(names);
  if (!root.defined()) return dot.text();
  TensorImpl* impl = root.impl();
  if (!impl->grad_fn) {  // a leaf: the graph is the tensor alone
    dot.tensor(&root, nullptr, 0, root.shape());
    return dot.text();
  }
  // Breadth-first from the root's node; each node once.
  std::deque<Node*> queue{impl->grad_fn.get()};
  std::unordered_map<Node*, bool> seen{{impl->grad_fn.get(), true}};
  dot.tensor(&root, impl->grad_fn.get(), impl->output_index, root.shape());
  while (!queue.empty()) {
    Node* node = queue.front();
    queue.pop_front();
    const std::string op = dot.op(node);
    for (size_t i = 0; i < node->output_shapes.size(); ++i)
      dot.edge(op, dot.tensor(nullptr, node, static_cast<int>(i), node->output_shapes[i]));
    for (const Tensor& input : node->inputs) {
      if (!input.defined()) continue;
      Node* producer = input.impl()->grad_fn.get();
      const std::string id =
          producer ? dot.tensor(&input, producer, input.impl()->output_index, input.shape())
                   : dot.tensor(&input, nullptr, 0, input.shape());
      dot.edge(id, op);
      if (producer && !seen[producer]) {
        seen[producer] = true;
        queue.push_back(producer);
      }
    }
  }
  return dot.text();
}

}  // namespace glimpse
