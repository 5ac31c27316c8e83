// Optimizers with Keras's update rules, gradient clipping and learning-rate schedules.
//
// An optimizer holds pointers to the live parameter tensors and its own state as named tensors
// ("adam/m/decoder/gru/kernel", ...) so a checkpoint can save and restore it exactly.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "nn/module.h"

namespace glimpse::nn {

// Learning rate as a function of the (0-based) step about to be taken.
class LrSchedule {
 public:
  virtual ~LrSchedule() = default;
  virtual double at(int64_t step) const = 0;
};

class ConstantLr : public LrSchedule {
 public:
  explicit ConstantLr(double lr) : lr_(lr) {}
  double at(int64_t) const override { return lr_; }

 private:
  double lr_;
};

// Linear warmup from 0 to peak over `warmup_steps`, then cosine decay to `final_lr` at total_steps.
class WarmupCosineLr : public LrSchedule {
 public:
  WarmupCosineLr(double peak, int64_t warmup_steps, int64_t total_steps, double final_lr = 0.0);
  double at(int64_t step) const override;

 private:
  double peak_, final_;
  int64_t warmup_, total_;
};

// Scales every gradient so that their global L2 norm is at most max_norm; returns the norm
// before clipping.
double clip_grad_norm(const std::vector<Tensor*>& parameters, double max_norm);
double global_grad_norm(const std::vector<Tensor*>& parameters);

class Optimizer {
 public:
  Optimizer(std::vector<NamedTensor> parameters, std::shared_ptr<LrSchedule> schedule);
  virtual ~Optimizer() = default;
  // Applies one update from the parameters' .grad (parameters without a gradient are skipped).
  virtual void step() = 0;
  void zero_grad();
  int64_t iterations() const { return iterations_; }
  void set_iterations(int64_t n) { iterations_ = n; }
  double current_lr() const { return schedule_->at(iterations_); }
  // The state to checkpoint, by name (does not include the iteration counter).
  virtual std::vector<NamedTensor> state() = 0;
  // Moves state tensors next to their parameters (after Module::to).
  virtual void sync_devices() = 0;

 protected:
  std::vector<NamedTensor> params_;
  std::shared_ptr<LrSchedule> schedule_;
  int64_t iterations_ = 0;
  // For subclasses' per-parameter state: zeros shaped like each parameter, and a move of such a
  // list next to the parameters.
  std::vector<Tensor> zeros_like_parameters() const;
  void move_next_to_parameters(std::vector<Tensor>& state) const;
};

// Keras Adam: m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2;
// w -= lr sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps), t = 1, 2, ...
// step() updates every parameter in one kernel call (adam_update_multi: one launch on the GPU)
// when they all share a device and dtype, else tensor by tensor; the results are the same.
class Adam : public Optimizer {
 public:
  Adam(std::vector<NamedTensor> parameters, std::shared_ptr<LrSchedule> schedule,
       double beta1 = 0.9, double beta2 = 0.999, double epsilon = 1e-7);
  void step() override;
  std::vector<NamedTensor> state() override;
  void sync_devices() override;

  double beta1, beta2, epsilon;

 private:
  std::vector<Tensor> m_, v_;  // first and second moments, one per parameter
};

// Keras SGD with momentum: v = momentum v - lr g; w += v (Nesterov: w += momentum v - lr g).
class SGD : public Optimizer {
 public:
  SGD(std::vector<NamedTensor> parameters, std::shared_ptr<LrSchedule> schedule,
      double momentum = 0.0, bool nesterov = false);
  void step() override;
  std::vector<NamedTensor> state() override;
  void sync_devices() override;

  double momentum;
  bool nesterov;

 private:
  std::vector<Tensor> velocity_;  // one per parameter
};

}  // namespace glimpse::nn
