// Optimizers, clipping and schedules (see optim.h).
#include "nn/optim.h"

#include <cmath>
#include <stdexcept>

#include "tensor/autograd.h"
#include "tensor/kernels.h"
#include "tensor/ops.h"
#include "tensor/profiler.h"

namespace glimpse::nn {

WarmupCosineLr::WarmupCosineLr(double peak, int64_t warmup, int64_t total, double final_lr)
    : peak_(peak), final_(final_lr), warmup_(warmup), total_(total) {
  if (warmup < 0 || total <= 0 || warmup > total)
    throw std::invalid_argument("WarmupCosineLr: need 0 <= warmup_steps <= total_steps, total > 0");
}

double WarmupCosineLr::at(int64_t step) const {
  if (step < warmup_) return peak_ * static_cast<double>(step + 1) / static_cast<double>(warmup_);
  if (step >= total_) return final_;
  const double progress =
      static_cast<double>(step - warmup_) / static_cast<double>(std::max<int64_t>(1, total_ - warmup_));
  return final_ + 0.5 * (peak_ - final_) * (1.0 + std::cos(M_PI * progress));
}

double global_grad_norm(const std::vector<Tensor*>& parameters) {
  NoGradGuard no_grad;
  double total = 0;
  for (Tensor* p : parameters) {
    Tensor g = p->grad();
    if (g.defined()) total += sum(square(g)).item();
  }
  return std::sqrt(total);
}

double clip_grad_norm(const std::vector<Tensor*>& parameters, double max_norm) {
  if (max_norm <= 0) throw std::invalid_argument("clip_grad_norm: max_norm must be positive");
  const double norm = global_grad_norm(parameters);
  if (norm > max_norm && std::isfinite(norm)) {
    NoGradGuard no_grad;
    const double factor = max_norm / norm;
    for (Tensor* p : parameters) {
      Tensor g = p->grad();
      if (!g.defined()) continue;
      // Scale in place: the gradient buffer belongs to the parameter.
      Tensor scaled = mul_scalar(g, factor);
      g.copy_(scaled);
    }
  }
  return norm;
}

Optimizer::Optimizer(std::vector<NamedTensor> parameters, std::shared_ptr<LrSchedule> schedule)
    : params_(std::move(parameters)), schedule_(std::move(schedule)) {
  if (!schedule_) throw std::invalid_argument("Optimizer: a learning-rate schedule is required");
}

std::vector<Tensor> Optimizer::zeros_like_parameters() const {
  std::vector<Tensor> out;
  for (const NamedTensor& p : params_)
    out.push_back(Tensor::zeros(p.tensor->shape(), p.tensor->dtype(), p.tensor->device()));
  return out;
}

void Optimizer::move_next_to_parameters(std::vector<Tensor>& state) const {
  for (size_t i = 0; i < params_.size(); ++i) {
    const Device d = params_[i].tensor->device();
    if (state[i].device() != d) state[i] = state[i].to(d);
  }
}

void Optimizer::zero_grad() {
  for (const NamedTensor& p : params_) p.tensor->zero_grad();
}

Adam::Adam(std::vector<NamedTensor> parameters, std::shared_ptr<LrSchedule> schedule, double b1,
           double b2, double eps)
    : Optimizer(std::move(parameters), std::move(schedule)), beta1(b1), beta2(b2), epsilon(eps),
      m_(zeros_like_parameters()), v_(zeros_like_parameters()) {}

namespace {

// The parameters of one Adam step that have a gradient, with their state.
struct AdamWork {
  std::vector<Tensor*> w;
  std::vector<Tensor> g;  // contiguous
  std::vector<Tensor*> m, v;
};

bool same_layout(const Tensor& w, const Tensor& other) {
  return other.defined() && other.dtype() == w.dtype() && other.device() == w.device() &&
         other.shape() == w.shape() && other.is_contiguous();
}

// The fused path takes every tensor in one kernel call, so it needs them all on one device with
// one float dtype, and each operand laid out as the kernel expects. Anything else goes through
// adam_update_ one tensor at a time, whose checks name what is wrong.
bool can_fuse(const AdamWork& work) {
  if (work.w.empty()) return false;
  const Tensor& first = *work.w[0];
  if (first.dtype() != DType::F32 && first.dtype() != DType::F64) return false;
  for (size_t i = 0; i < work.w.size(); ++i) {
    const Tensor& w = *work.w[i];
    if (w.dtype() != first.dtype() || w.device() != first.device() || !w.is_contiguous())
      return false;
    if (!same_layout(w, work.g[i]) || !same_layout(w, *work.m[i]) || !same_layout(w, *work.v[i]))
      return false;
  }
  return true;
}

template <class T>
void fused_adam_update(const Kernels<T>& kernels, const AdamWork& work, double lr_t, double beta1,
                       double beta2, double eps) {
  const size_t count = work.w.size();
  std::vector<T*> w(count), m(count), v(count);
  std::vector<const T*> g(count);
  std::vector<int64_t> n(count);
  for (size_t i = 0; i < count; ++i) {
    w[i] = work.w[i]->data<T>();
    g[i] = work.g[i].data<T>();
    m[i] = work.m[i]->data<T>();
    v[i] = work.v[i]->data<T>();
    n[i] = work.w[i]->numel();
  }
  kernels.adam_update_multi(w.data(), g.data(), m.data(), v.data(), n.data(),
                            static_cast<int64_t>(count), static_cast<T>(lr_t),
                            static_cast<T>(beta1), static_cast<T>(beta2), static_cast<T>(eps));
}

}  // namespace

void Adam::step() {
  trace::StepEnd step_end("Adam.step");  // a training step ends here (glimpse::trace windows)
  NoGradGuard no_grad;
  const double lr = schedule_->at(iterations_);
  const double t = static_cast<double>(iterations_ + 1);
  const double lr_t = lr * std::sqrt(1.0 - std::pow(beta2, t)) / (1.0 - std::pow(beta1, t));
  AdamWork work;
  for (size_t i = 0; i < params_.size(); ++i) {
    Tensor g = params_[i].tensor->grad();
    if (!g.defined()) continue;
    work.w.push_back(params_[i].tensor);
    work.g.push_back(g.contiguous());
    work.m.push_back(&m_[i]);
    work.v.push_back(&v_[i]);
  }
  // Adam fused over all parameters: one kernel call (on the GPU one launch) for the whole model.
  // Each element gets the same arithmetic as adam_update_, so the results are identical.
  if (can_fuse(work)) {
    const Device device = work.w[0]->device();
    if (work.w[0]->dtype() == DType::F32) {
      fused_adam_update(kernels_f32(device), work, lr_t, beta1, beta2, epsilon);
    } else {
      fused_adam_update(kernels_f64(device), work, lr_t, beta1, beta2, epsilon);
    }
  } else {
    for (size_t i = 0; i < work.w.size(); ++i) {
      adam_update_(*work.w[i], work.g[i], *work.m[i], *work.v[i], lr_t, beta1, beta2, epsilon);
    }
  }
  ++iterations_;
}

std::vector<NamedTensor> Adam::state() {
  std::vector<NamedTensor> out;
  for (size_t i = 0; i < params_.size(); ++i) {
    out.push_back({"adam/m/" + params_[i].name, &m_[i], true});
    out.push_back({"adam/v/" + params_[i].name, &v_[i], true});
  }
  return out;
}

void Adam::sync_devices() {
  move_next_to_parameters(m_);
  move_next_to_parameters(v_);
}

SGD::SGD(std::vector<NamedTensor> parameters, std::shared_ptr<LrSchedule> schedule, double m,
         bool nest)
    : Optimizer(std::move(parameters), std::move(schedule)), momentum(m), nesterov(nest),
      velocity_(zeros_like_parameters()) {}

void SGD::step() {
  trace::StepEnd step_end("SGD.step");
  NoGradGuard no_grad;
  const double lr = schedule_->at(iterations_);
  for (size_t i = 0; i < params_.size(); ++i) {
    Tensor g = params_[i].tensor->grad();
    if (!g.defined()) continue;
    sgd_update_(*params_[i].tensor, g, velocity_[i], lr, momentum, nesterov);
  }
  ++iterations_;
}

std::vector<NamedTensor> SGD::state() {
  std::vector<NamedTensor> out;
  for (size_t i = 0; i < params_.size(); ++i)
    out.push_back({"sgd/velocity/" + params_[i].name, &velocity_[i], true});
  return out;
}

void SGD::sync_devices() { move_next_to_parameters(velocity_); }

}  // namespace glimpse::nn
