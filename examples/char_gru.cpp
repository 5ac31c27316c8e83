// examples/char_gru.cpp — a character-level language model: read a text, learn to predict each
// next character from the ones before it, then write new text one character at a time.
//
//   Embedding (one vector per character) -> GRU (a memory that runs along the text) -> Dense
//   (a score for every possible next character), trained with softmax cross-entropy and Adam on
//   random windows of the text. Generation feeds one character at a time and carries the GRU's
//   state by hand, as the captioner's decoding loop does (models/decoding.cpp).
//
//   build/examples/example_char_gru [--steps N] [--text FILE]
//   (default text: examples/data/gettysburg.txt, public domain; exit status 1 if the loss did
//   not fall well below that of guessing uniformly)
#include <glimpse/glimpse.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>
#include <string>

using namespace glimpse;

int main(int argc, char** argv) {
  int steps = 400;
  std::string path = "examples/data/gettysburg.txt";
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--steps") steps = std::atoi(argv[i + 1]);
    else if (flag == "--text") path = argv[i + 1];
  }
  std::ifstream file(path);
  if (!file) {
    std::cerr << "example_char_gru: cannot read " << path << " (give --text FILE)\n";
    return 2;
  }
  std::stringstream buffer;
  buffer << file.rdbuf();
  const std::string text = buffer.str();

  // The vocabulary: every distinct byte of the text, numbered in sorted order.
  std::string chars = text;
  std::sort(chars.begin(), chars.end());
  chars.erase(std::unique(chars.begin(), chars.end()), chars.end());
  std::map<char, int32_t> id_of;
  for (size_t i = 0; i < chars.size(); ++i) id_of[chars[i]] = static_cast<int32_t>(i);
  const int64_t vocab = static_cast<int64_t>(chars.size());
  const int64_t window = 48, batch = 16;
  if (static_cast<int64_t>(text.size()) < window + 2) {
    std::cerr << "example_char_gru: " << path << " is too short (" << text.size() << " bytes)\n";
    return 2;
  }
  std::cout << text.size() << " characters, " << vocab << " distinct\n";

  Generator gen(7);
  nn::Embedding embed("embedding", vocab, 24, gen);
  nn::GRU gru("gru", 24, 96, gen);
  nn::Dense head("head", 96, vocab, gen);
  std::vector<nn::NamedTensor> parameters;
  for (nn::Module* m : std::vector<nn::Module*>{&embed, &gru, &head})
    for (const nn::NamedTensor& t : m->named_parameters()) parameters.push_back(t);
  nn::Adam adam(parameters, std::make_shared<nn::ConstantLr>(0.01));

  // Logits for every position of a batch of id sequences [B, T], and the GRU's final state.
  auto run = [&](const Tensor& ids, const Tensor& state) {
    auto [sequence, final_state] = gru.forward(embed.forward(ids), state);
    return std::make_pair(head.forward(sequence), final_state);
  };

  const double uniform_loss = std::log(static_cast<double>(vocab));
  double recent = 0;  // mean loss of the last 10 steps
  for (int step = 0; step < steps; ++step) {
    // Random windows: inputs text[s, s+T), targets text[s+1, s+T+1) — the next character.
    std::vector<int32_t> inputs, targets;
    for (int64_t b = 0; b < batch; ++b) {
      const size_t start = gen.below(text.size() - window - 1);
      for (int64_t t = 0; t < window; ++t) {
        inputs.push_back(id_of[text[start + t]]);
        targets.push_back(id_of[text[start + t + 1]]);
      }
    }
    auto [logits, unused_state] = run(Tensor::from_vector(inputs, {batch, window}), Tensor());
    Tensor loss = cross_entropy(logits, Tensor::from_vector(targets, {batch, window}), /*ignore_index=*/-1);
    adam.zero_grad();
    loss.backward();
    adam.step();
    const double value = loss.item();
    if (step >= steps - 10) recent += value / std::min(steps, 10);
    if (step % 50 == 0 || step == steps - 1)
      std::cout << "step " << step << ": loss " << value << " (uniform guessing: " << uniform_loss << ")\n";
  }

  // Generation: the prompt sets the state, then each sampled character is fed back in.
  NoGradGuard no_grad;
  std::string prompt = "Four score", written = prompt;
  std::vector<int32_t> prompt_ids;
  for (char c : prompt) prompt_ids.push_back(id_of.count(c) ? id_of[c] : 0);
  auto [logits, state] = run(Tensor::from_vector(prompt_ids, {1, static_cast<int64_t>(prompt_ids.size())}), Tensor());
  Tensor last = slice(logits, 1, logits.dim(1) - 1, logits.dim(1));  // [1, 1, V]
  for (int i = 0; i < 200; ++i) {
    // Sample from softmax(logits / 0.7): a temperature below 1 favours likely characters.
    std::vector<float> p = softmax(mul_scalar(reshape(last, {vocab}), 1.0 / 0.7)).to_vector();
    double r = gen.uniform(), cumulative = 0;
    int32_t next = static_cast<int32_t>(vocab - 1);
    for (int64_t k = 0; k < vocab; ++k) {
      cumulative += p[k];
      if (r < cumulative) {
        next = static_cast<int32_t>(k);
        break;
      }
    }
    written += chars[next];
    std::tie(last, state) = run(Tensor::from_vector(std::vector<int32_t>{next}, {1, 1}), state);
  }
  std::cout << "--- sampled text ---\n" << written << "\n---\n";
  const bool learned = recent < 0.7 * uniform_loss;
  std::cout << "mean loss of the last steps " << recent << (learned ? " (learned)" : " (did not learn)") << "\n";
  return learned ? 0 : 1;
}
