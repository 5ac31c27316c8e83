// The models: Inception-ResNet-v2's size and shapes, the captioner's forward/backward, the
// one-token decoding loop against the teacher-forced decoder, decoding strategies, checkpoints.
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "io/checkpoint.h"
#include "io/tokenizer.h"
#include "models/caption_image.h"
#include "models/captioner.h"
#include "models/decoding.h"
#include "models/training.h"
#include "tensor/autograd.h"

using namespace glimpse;
using namespace glimpse::models;
namespace fs = std::filesystem;

namespace {
double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  REQUIRE(a.size() == b.size());
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, std::fabs(double(a[i]) - b[i]));
  return m;
}

CaptionerConfig small_config(const std::string& decoder = "gru") {
  CaptionerConfig c = CaptionerConfig::tiny_shapes();
  c.vocab_size = 12;
  c.units = c.embedding_dim = 16;
  c.max_caption_len = 6;
  // "gru-fed": the GRU decoder with input feeding
  c.decoder = parse_decoder(decoder == "gru-fed" ? "gru" : decoder);
  c.input_feeding = decoder == "gru-fed";
  c.decoder_layers = 2;
  c.heads = 4;
  c.ff_dim = 24;
  return c;
}

// Each decoder test runs for every decoder.
const char* const kDecoders[] = {"gru", "gru-fed", "transformer"};

fs::path temp_dir(const std::string& name) {
  fs::path p = fs::temp_directory_path() / ("glimpse_test_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(p);
  fs::create_directories(p);
  return p;
}
}  // namespace

TEST_CASE("Inception-ResNet-v2 has Keras's 54,336,736 parameters and an 8x8x1536 output at 299") {
  Generator gen(1);
  InceptionResNetV2 net(InceptionConfig::full(), gen);
  CHECK(net.count_parameters() + net.count_buffers() == 54336736);
  CHECK(net.count_buffers() == 60544);  // BN moving statistics
  CHECK(net.grid_size() == 8);
  CHECK(net.output_channels() == 1536);
  int convs = 0, bns = 0;
  for (ConvBN* u : net.layers_in_order()) {
    ++convs;
    bns += u->bn ? 1 : 0;
  }
  CHECK(convs == 244);
  CHECK(bns == 204);
  CHECK(net.summary().find("Total params: 54,336,736") != std::string::npos);
  // The smallest input Keras accepts (75x75) gives a 1x1 grid.
  InceptionConfig small = InceptionConfig::full();
  small.image_size = 75;
  small.repeats_block35 = small.repeats_block17 = small.repeats_block8 = 1;
  Generator gen2(2);
  InceptionResNetV2 tiny_depth(small, gen2);
  NoGradGuard no_grad;
  tiny_depth.eval();
  Tensor y = tiny_depth.forward(Tensor::zeros({1, 75, 75, 3}));
  CHECK(y.shape() == Shape{1, 1, 1, 1536});
}

TEST_CASE("the tiny encoder keeps a 4x4 grid at 128x128") {
  Generator gen(3);
  InceptionResNetV2 net(InceptionConfig::tiny(), gen);
  CHECK(net.grid_size() == 4);
  Tensor y = net.forward(random_uniform({2, 128, 128, 3}, -1, 1, gen));
  CHECK(y.shape() == Shape{2, 4, 4, net.output_channels()});
  CHECK_THROWS_WITH(net.forward(Tensor::zeros({2, 128, 128})), doctest::Contains("expected images"));
}

TEST_CASE("captioner: a training step produces gradients for every trainable parameter") {
  for (const char* decoder : kDecoders) {
  CAPTURE(decoder);
  Captioner model(small_config(decoder), 7);
  Generator gen(4);
  Tensor images = random_uniform({2, 128, 128, 3}, -1, 1, gen);
  Tensor tokens = Tensor::from_vector(std::vector<int32_t>{3, 5, 6, 4, 0, 0, 3, 7, 4, 0, 0, 0}, {2, 6});
  Tensor targets = Tensor::from_vector(std::vector<int32_t>{5, 6, 4, 0, 0, 0, 7, 4, 0, 0, 0, 0}, {2, 6});
  Tensor attention;
  Tensor logits = model.decode(model.encode(images), tokens, &attention);
  CHECK(logits.shape() == Shape{2, 6, 12});
  CHECK(attention.shape() == Shape{2, 6, 16});
  Tensor loss = cross_entropy(logits, targets, 0);
  CHECK(std::isfinite(loss.item()));
  CHECK(loss.item() > 0);
  loss.backward();
  for (const nn::NamedTensor& p : model.named_parameters(true))
    CHECK_MESSAGE(p.tensor->grad().defined(), p.name << " got no gradient");
  }
}

TEST_CASE("the one-token decoding loop reproduces the teacher-forced decoder exactly") {
  for (const char* decoder : kDecoders) {
  CAPTURE(decoder);
  Captioner model(small_config(decoder), 9);
  model.eval();
  NoGradGuard no_grad;
  Generator gen(5);
  Tensor features = model.encode(random_uniform({1, 128, 128, 3}, -1, 1, gen));
  std::vector<int32_t> ids{3, 8, 2, 9, 4};
  Tensor attention;
  Tensor full = model.decode(features, Tensor::from_vector(ids, {1, 5}), &attention);
  DecoderState state = model.initial_state(1);
  for (int t = 0; t < 5; ++t) {
    Captioner::Step s = model.step(features, Tensor::from_vector(std::vector<int32_t>{ids[t]}, {1}), state);
    state = s.state;
    CHECK(state.length == t + 1);
    std::vector<float> expected = slice(full, 1, t, t + 1).contiguous().to_vector();
    CHECK(max_abs_diff(s.logits.to_vector(), expected) < 1e-5);
    std::vector<float> att = slice(attention, 1, t, t + 1).contiguous().to_vector();
    CHECK(max_abs_diff(s.attention.to_vector(), att) < 1e-6);
  }
  if (std::string(decoder) == "transformer") {
    // The cache grew one position per step: keys [1, heads, 5, head_dim] in every layer.
    REQUIRE(state.tensors.size() == 4);
    CHECK(state.tensors[0].shape() == Shape{1, 4, 5, 4});
    // Past the position embeddings, a clear error rather than a silent wrap-around.
    Captioner::Step s = model.step(features, Tensor::from_vector(std::vector<int32_t>{5}, {1}), state);
    CHECK_THROWS_WITH(model.step(features, Tensor::from_vector(std::vector<int32_t>{5}, {1}), s.state),
                      doctest::Contains("position embeddings for 6 tokens"));
  }
  }
}

TEST_CASE("input feeding: the GRU state depends on the image only when contexts are fed") {
  Generator gen(21);
  const Tensor image_a = random_uniform({1, 128, 128, 3}, -1, 1, gen);
  const Tensor image_b = random_uniform({1, 128, 128, 3}, -1, 1, gen);
  const Tensor token = Tensor::from_vector(std::vector<int32_t>{3}, {1});
  for (bool feeding : {false, true}) {
    CAPTURE(feeding);
    Captioner model(small_config(feeding ? "gru-fed" : "gru"), 17);
    NoGradGuard no_grad;
    // Two steps: the second step's GRU input holds the first step's context.
    auto state_after_two = [&](const Tensor& image) {
      Tensor features = model.encode(image);
      Captioner::Step s = model.step(features, token, model.initial_state(1));
      return model.step(features, token, s.state).state;
    };
    DecoderState a = state_after_two(image_a), b = state_after_two(image_b);
    REQUIRE(a.tensors.size() == (feeding ? 2u : 1u));
    const double h_diff = max_abs_diff(a.tensors[0].to_vector(), b.tensors[0].to_vector());
    if (feeding) {
      CHECK(h_diff > 1e-4);
      // The carried context is the attention output over each image's own features.
      CHECK(max_abs_diff(a.tensors[1].to_vector(), b.tensors[1].to_vector()) > 1e-4);
    } else {
      CHECK(h_diff == 0);  // the notebook's GRU sees tokens only
    }
  }
  CaptionerConfig bad = small_config("transformer");
  bad.input_feeding = true;
  CHECK_THROWS_WITH(Captioner(bad, 1), doctest::Contains("GRU decoder only"));
}

TEST_CASE("the transformer decoder is causal: a later token never changes earlier logits") {
  Captioner model(small_config("transformer"), 13);
  NoGradGuard no_grad;
  Generator gen(8);
  Tensor features = model.encode(random_uniform({1, 128, 128, 3}, -1, 1, gen));
  Tensor a = model.decode(features, Tensor::from_vector(std::vector<int32_t>{3, 8, 2, 9}, {1, 4}));
  Tensor b = model.decode(features, Tensor::from_vector(std::vector<int32_t>{3, 8, 2, 5}, {1, 4}));
  CHECK(max_abs_diff(slice(a, 1, 0, 3).contiguous().to_vector(),
                     slice(b, 1, 0, 3).contiguous().to_vector()) == 0);
  CHECK(max_abs_diff(slice(a, 1, 3, 4).contiguous().to_vector(),
                     slice(b, 1, 3, 4).contiguous().to_vector()) > 1e-4);
  CaptionerConfig bad = small_config("transformer");
  bad.heads = 3;
  CHECK_THROWS_WITH(Captioner(bad, 1), doctest::Contains("not divisible by 3 heads"));
  // An unknown decoder cannot reach the constructor any more: its name is refused when parsed.
  CHECK_THROWS_WITH(Captioner(small_config("lstm"), 1), doctest::Contains("unknown decoder 'lstm'"));
}

TEST_CASE("the config's choices are enums spelled as the checkpoint's strings") {
  for (EncoderKind e : {EncoderKind::Tiny, EncoderKind::InceptionResNetV2}) CHECK(parse_encoder(to_string(e)) == e);
  for (DecoderKind d : {DecoderKind::Gru, DecoderKind::Transformer}) CHECK(parse_decoder(to_string(d)) == d);
  for (PixelScaling p : {PixelScaling::Inception, PixelScaling::Unit}) CHECK(parse_pixel_scaling(to_string(p)) == p);
  CHECK(to_string(EncoderKind::InceptionResNetV2) == "inception_resnet_v2");
  CHECK(to_string(DecoderKind::Transformer) == "transformer");
  CHECK(to_string(PixelScaling::Unit) == "unit");
  // A bad name is refused with the field and the allowed values.
  CHECK_THROWS_WITH_AS(parse_encoder("resnet"), "unknown encoder 'resnet' (expected tiny or inception_resnet_v2)",
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(parse_decoder("lstm"), "unknown decoder 'lstm' (expected gru or transformer)",
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(parse_pixel_scaling("Unit"), "unknown pixel_scaling 'Unit' (expected inception or unit)",
                       std::invalid_argument);
  // The file format keeps the strings, and reads them back into the same config.
  CaptionerConfig c = small_config("transformer");
  c.pixel_scaling = PixelScaling::Unit;
  const nlohmann::json j = c.to_json();
  CHECK(j.at("encoder") == "tiny");
  CHECK(j.at("decoder") == "transformer");
  CHECK(j.at("pixel_scaling") == "unit");
  const CaptionerConfig back = CaptionerConfig::from_json(j);
  CHECK(back.encoder == EncoderKind::Tiny);
  CHECK(back.decoder == DecoderKind::Transformer);
  CHECK(back.pixel_scaling == PixelScaling::Unit);
}

TEST_CASE("decoding strategies: greedy is beam-1, sampling is seeded, beam finds higher likelihood") {
  for (const char* decoder : kDecoders) {
  CAPTURE(decoder);
  Captioner model(small_config(decoder), 11);
  model.eval();
  Generator gen(6);
  Tensor features;
  {
    NoGradGuard no_grad;
    features = model.encode(random_uniform({1, 128, 128, 3}, -1, 1, gen));
  }
  DecodeOptions greedy;
  greedy.max_length = 6;
  DecodedCaption g = decode_caption(model, features, greedy, gen);
  DecodeOptions beam1 = greedy;
  beam1.strategy = DecodeOptions::Strategy::Beam;
  beam1.beam_size = 1;
  beam1.length_penalty = 0;
  DecodedCaption b1 = decode_caption(model, features, beam1, gen);
  CHECK(b1.tokens == g.tokens);
  CHECK(b1.log_probability == doctest::Approx(g.log_probability).epsilon(1e-5));
  DecodeOptions beam4 = beam1;
  beam4.beam_size = 4;
  DecodedCaption b4 = decode_caption(model, features, beam4, gen);
  CHECK(b4.log_probability >= g.log_probability - 1e-6);
  DecodeOptions sample = greedy;
  sample.strategy = DecodeOptions::Strategy::Sample;
  Generator s1(42), s2(42);
  CHECK(decode_caption(model, features, sample, s1).tokens ==
        decode_caption(model, features, sample, s2).tokens);
  CHECK(g.attention.size() == g.tokens.size());
  }
}

TEST_CASE("caption_image is preprocess, encode, decode and detokenize, for every strategy") {
  CaptionerConfig config = small_config();
  config.pixel_scaling = PixelScaling::Unit;  // the config's scaling is the one applied
  Captioner model(config, 19);
  model.eval();
  Tokenizer tok(std::vector<std::string>{"", "[UNK]", "a", "<start>", "<end>", "b", "c", "d", "e", "f", "g", "h"}, 6);
  const DecodeOptions fitted = decode_options_for(tok);
  CHECK(fitted.start_id == 3);
  CHECK(fitted.end_id == 4);
  CHECK(fitted.max_length == 6);
  CHECK(fitted.strategy == DecodeOptions::Strategy::Greedy);
  Image image;
  image.height = 40;
  image.width = 56;
  for (int i = 0; i < image.height * image.width * 3; ++i) image.pixels.push_back(static_cast<uint8_t>(i * 37 % 251));
  for (DecodeOptions::Strategy strategy :
       {DecodeOptions::Strategy::Greedy, DecodeOptions::Strategy::Beam, DecodeOptions::Strategy::Sample}) {
    DecodeOptions options = fitted;
    options.strategy = strategy;
    Generator by_hand_gen(5), shared_gen(5);
    DecodedCaption by_hand;
    {
      NoGradGuard no_grad;
      const Tensor pixels = Tensor::from_vector(preprocess_image(image, 128, PixelScaling::Unit), {1, 128, 128, 3});
      by_hand = decode_caption(model, model.encode(pixels), options, by_hand_gen);
    }
    const ImageCaption c = caption_image(model, tok, image, options, shared_gen);
    CHECK(c.decoded.tokens == by_hand.tokens);
    CHECK(c.decoded.log_probability == by_hand.log_probability);
    CHECK(c.decoded.attention == by_hand.attention);
    CHECK(c.text == tok.decode(by_hand.tokens, true));
  }
  CHECK(grad_mode_enabled());  // the no-gradient scope ends with the call
}

TEST_CASE("checkpoints round-trip exactly, replace atomically and report every mismatch") {
  fs::path dir = temp_dir("ckpt");
  const std::string path = (dir / "model.h5").string();
  Captioner a(small_config(), 1), b(small_config(), 2);
  Tokenizer tok(std::vector<std::string>{"", "[UNK]", "a", "<start>", "<end>"}, 6);
  save_training_checkpoint(path, a, nullptr, tok, {{"epoch", 3}});
  CheckpointContents meta = read_checkpoint_meta(path);
  CHECK(meta.progress["epoch"] == 3);
  CHECK(meta.vocabulary.size() == 5);
  load_checkpoint_tensors(path, b.named_tensors());
  auto ta = a.named_tensors(), tb = b.named_tensors();
  for (size_t i = 0; i < ta.size(); ++i)
    CHECK_MESSAGE(ta[i].tensor->to_vector() == tb[i].tensor->to_vector(), ta[i].name);

  // A model of another size: every mismatch is listed by name, nothing is loaded.
  CaptionerConfig other = small_config();
  other.units = other.embedding_dim = 8;
  Captioner c(other, 3);
  std::vector<float> before = c.gru->kernel.to_vector();
  try {
    load_checkpoint_tensors(path, c.named_tensors());
    FAIL("expected a mismatch error");
  } catch (const std::runtime_error& e) {
    std::string msg = e.what();
    CHECK(msg.find("captioner/gru/kernel") != std::string::npos);
    CHECK(msg.find("captioner/layer_normalization/gamma") != std::string::npos);
    CHECK(msg.find("problems") != std::string::npos);
  }
  CHECK(c.gru->kernel.to_vector() == before);

  // A save that fails midway leaves the previous file intact and no temporary behind.
  Tensor bad = Tensor::zeros({2});
  std::vector<nn::NamedTensor> broken = a.named_tensors();
  broken.push_back({broken[0].name, &bad, false});  // a duplicate name makes the write throw
  CHECK_THROWS(save_checkpoint(path, broken, "", {}, 0, meta));
  load_checkpoint_tensors(path, b.named_tensors());
  int files = 0;
  for (const auto& e : fs::directory_iterator(dir)) files += e.is_regular_file();
  CHECK(files == 1);

  // Not a checkpoint / truncated file.
  std::ofstream(dir / "junk.h5") << "not hdf5";
  CHECK_THROWS_WITH(read_checkpoint_meta((dir / "junk.h5").string()), doctest::Contains("junk.h5"));
  fs::remove_all(dir);
}

TEST_CASE("a module's fingerprint identifies its weights") {
  Captioner a(small_config(), 21), b(small_config(), 21), c(small_config(), 22);
  CHECK(a.encoder->fingerprint() == b.encoder->fingerprint());
  CHECK(a.encoder->fingerprint().size() == 16);
  CHECK(a.encoder->fingerprint() != c.encoder->fingerprint());
  // One changed value anywhere changes it.
  std::vector<float> w = b.feature_dense->kernel.to_vector();
  const std::string before = b.fingerprint();
  w[w.size() / 2] += 1e-3f;
  b.feature_dense->kernel = Tensor::from_vector(w, b.feature_dense->kernel.shape());
  CHECK(b.fingerprint() != before);
  CHECK(a.encoder->fingerprint() == b.encoder->fingerprint());
}

TEST_CASE("a model loaded for inference folds its BatchNorms and computes the same features") {
  fs::path dir = temp_dir("fold_load");
  const std::string path = (dir / "model.h5").string();
  Captioner a(small_config(), 31);
  // Non-trivial batch-norm statistics, so that folding has something to fold.
  Generator g(3);
  for (ConvBN* unit : a.encoder->layers_in_order())
    if (unit->bn) {
      const int64_t n = unit->bn->moving_mean.numel();
      unit->bn->moving_mean = random_uniform({n}, -0.5, 0.5, g);
      unit->bn->moving_variance = random_uniform({n}, 0.5, 2.0, g);
    }
  // One word per output of small_config()'s vocab_size (12): load_captioner refuses a mismatch.
  Tokenizer tok(std::vector<std::string>{"", "[UNK]", "a", "<start>", "<end>", "b", "c", "d", "e", "f", "g", "h"}, 6);
  save_training_checkpoint(path, a, nullptr, tok, {{"epoch", 1}});
  LoadedModel loaded = load_captioner(path);
  CHECK(loaded.model->encoder->batch_norm_folded());
  NoGradGuard no_grad;
  Tensor images = random_uniform({2, 128, 128, 3}, -1, 1, g);
  std::vector<float> folded = loaded.model->encode(images).to_vector();
  loaded.model->encoder->unfold_batch_norm();
  std::vector<float> plain = loaded.model->encode(images).to_vector();
  double scale = 1e-6;
  for (float v : plain) scale = std::max(scale, static_cast<double>(std::fabs(v)));
  CHECK(max_abs_diff(folded, plain) <= 1e-5 * scale);
  fs::remove_all(dir);
}
