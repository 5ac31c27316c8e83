// Greedy, top-k sampling and beam-search decoding (see decoding.h).
#include "models/decoding.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "tensor/autograd.h"

namespace glimpse::models {

namespace {

Tensor token_tensor(const std::vector<int32_t>& ids, Device device) {
  return Tensor::from_vector(ids, {static_cast<int64_t>(ids.size())}).to(device);
}

std::vector<double> log_softmax_row(const std::vector<float>& logits) {
  const double m = *std::max_element(logits.begin(), logits.end());
  double s = 0;
  for (float v : logits) s += std::exp(v - m);
  const double lse = m + std::log(s);
  std::vector<double> out(logits.size());
  for (size_t i = 0; i < logits.size(); ++i) out[i] = logits[i] - lse;
  return out;
}

DecodedCaption greedy_or_sample(Captioner& model, const Tensor& features,
                                const DecodeOptions& opt, Generator& gen) {
  DecodedCaption out;
  DecoderState state = model.initial_state(1);
  int32_t token = opt.start_id;
  for (int t = 0; t < opt.max_length; ++t) {
    Captioner::Step s = model.step(features, token_tensor({token}, features.device()), state);
    state = s.state;
    int32_t next;
    std::vector<float> logits = s.logits.to_vector();
    std::vector<double> logp = log_softmax_row(logits);
    if (opt.strategy == DecodeOptions::Strategy::Greedy) {
      next = static_cast<int32_t>(argmax(s.logits).to_vector_i32()[0]);
    } else {
      // The notebook: keep the k largest logits, sample from their softmax at a temperature.
      const int k = std::min<int>(opt.top_k, static_cast<int>(logits.size()));
      auto [values, indices] = topk(s.logits, k);
      std::vector<float> v = values.to_vector();
      std::vector<int32_t> idx = indices.to_vector_i32();
      std::vector<double> p(k);
      double total = 0;
      for (int i = 0; i < k; ++i) total += p[i] = std::exp((v[i] - v[0]) / opt.temperature);
      double u = gen.uniform() * total;
      next = idx[k - 1];
      for (int i = 0; i < k; ++i) {
        if (u < p[i]) {
          next = idx[i];
          break;
        }
        u -= p[i];
      }
    }
    out.log_probability += logp[next];
    if (next == opt.end_id) break;
    out.tokens.push_back(next);
    out.attention.push_back(s.attention.to_vector());
    token = next;
  }
  return out;
}

struct Hypothesis {
  std::vector<int32_t> tokens;
  std::vector<std::vector<float>> attention;
  double log_probability = 0;
  DecoderState state;  // batch of one
  bool finished = false;
};

double normalised_score(const Hypothesis& h, double alpha) {
  const double length = static_cast<double>(h.tokens.size() + (h.finished ? 1 : 0));
  return h.log_probability / std::pow(std::max(1.0, length), alpha);
}

DecodedCaption beam_search(Captioner& model, const Tensor& features, const DecodeOptions& opt) {
  const int beam = std::max(1, opt.beam_size);
  std::vector<Hypothesis> live(1);
  live[0].state = model.initial_state(1);
  std::vector<Hypothesis> done;
  for (int t = 0; t < opt.max_length && !live.empty(); ++t) {
    // Step every live hypothesis at once: a batch of beams sharing the image features.
    const int64_t n = static_cast<int64_t>(live.size());
    std::vector<int32_t> last;
    std::vector<DecoderState> states;
    for (const Hypothesis& h : live) {
      last.push_back(h.tokens.empty() ? opt.start_id : h.tokens.back());
      states.push_back(h.state);
    }
    Tensor batch_features = concat(std::vector<Tensor>(n, features), 0);
    Captioner::Step s =
        model.step(batch_features, token_tensor(last, features.device()), DecoderState::concat(states));
    std::vector<float> logits = s.logits.to_vector();
    std::vector<float> attention = s.attention.to_vector();
    const int64_t V = s.logits.shape()[1], cells = s.attention.shape()[1];
    struct Candidate {
      double score;
      int64_t parent;
      int32_t token;
    };
    std::vector<Candidate> candidates;
    for (int64_t b = 0; b < n; ++b) {
      std::vector<float> row(logits.begin() + b * V, logits.begin() + (b + 1) * V);
      std::vector<double> logp = log_softmax_row(row);
      std::vector<int32_t> order(V);
      for (int32_t i = 0; i < V; ++i) order[i] = i;
      std::partial_sort(order.begin(), order.begin() + std::min<int64_t>(beam, V), order.end(),
                        [&](int32_t a, int32_t c) { return logp[a] > logp[c]; });
      for (int64_t i = 0; i < std::min<int64_t>(beam, V); ++i)
        candidates.push_back({live[b].log_probability + logp[order[i]], b, order[i]});
    }
    std::sort(candidates.begin(), candidates.end(),
              [](const Candidate& a, const Candidate& c) { return a.score > c.score; });
    std::vector<Hypothesis> next;
    for (const Candidate& c : candidates) {
      if (static_cast<int>(next.size()) >= beam) break;
      Hypothesis h;
      h.tokens = live[c.parent].tokens;
      h.attention = live[c.parent].attention;
      h.log_probability = c.score;
      if (c.token == opt.end_id) {
        h.finished = true;
        done.push_back(std::move(h));
        continue;
      }
      h.tokens.push_back(c.token);
      h.attention.emplace_back(attention.begin() + c.parent * cells,
                               attention.begin() + (c.parent + 1) * cells);
      h.state = s.state.row(c.parent);
      next.push_back(std::move(h));
    }
    live = std::move(next);
    // Stop once beam_size captions have finished: the rule of most captioning code, simpler than
    // proving that no live hypothesis can still beat the best finished one.
    if (static_cast<int>(done.size()) >= beam) break;
  }
  for (Hypothesis& h : live) done.push_back(std::move(h));
  const Hypothesis* best = nullptr;
  for (const Hypothesis& h : done)
    if (!best || normalised_score(h, opt.length_penalty) > normalised_score(*best, opt.length_penalty))
      best = &h;
  DecodedCaption out;
  if (best) {
    out.tokens = best->tokens;
    out.attention = best->attention;
    out.log_probability = best->log_probability;
  }
  return out;
}

}  // namespace

DecodedCaption decode_caption(Captioner& model, const Tensor& features, const DecodeOptions& options,
                              Generator& gen) {
  if (features.rank() != 3 || features.shape()[0] != 1)
    throw std::invalid_argument("decode_caption: features must be [1, cells, units], got " +
                                shape_str(features.shape()));
  NoGradGuard no_grad;
  DecodeOptions opt = options;
  // A Transformer decoder has position embeddings for max_caption_len tokens and no further.
  if (model.config().decoder == DecoderKind::Transformer)
    opt.max_length = std::min<int>(opt.max_length, static_cast<int>(model.config().max_caption_len));
  if (opt.strategy == DecodeOptions::Strategy::Beam) return beam_search(model, features, opt);
  return greedy_or_sample(model, features, opt, gen);
}

}  // namespace glimpse::models
