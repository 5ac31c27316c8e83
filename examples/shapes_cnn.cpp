// examples/shapes_cnn.cpp — a small convolutional network that learns to name the shape in a
// picture: circle, square or triangle.
//
//   The pictures come from glimpse's built-in shapes dataset (io/shapes_dataset.h), generated in
//   memory; only scenes with a single shape are used, so each picture has one right answer.
//   The network: three 3×3 convolutions with ReLU, 2×2 max pooling after the first two, the
//   largest response of each filter over all positions, and a Dense layer with one logit per shape. Trained with
//   softmax cross-entropy and Adam on random batches, then scored on pictures it never saw.
//
//   build/examples/example_shapes_cnn [--steps N]   (exit status 1 below 80% test accuracy)
#include <glimpse/glimpse.h>

#include <cstdlib>
#include <iostream>
#include <string>

using namespace glimpse;

namespace {

struct Pictures {
  std::vector<float> pixels;    // [N, S, S, 3], scaled to [-1, 1]
  std::vector<int32_t> labels;  // index into kShapeNames
  int64_t count = 0;
};

// The first `wanted` single-shape scenes of a split.
Pictures single_shape_pictures(const ShapesConfig& config, const char* split, int64_t wanted) {
  Pictures out;
  for (int index = 0; out.count < wanted; ++index) {
    ShapesSample sample = generate_shapes_sample(config, split, index);
    if (sample.scene.objects.size() != 1) continue;
    for (uint8_t v : sample.image.pixels) out.pixels.push_back(v / 127.5f - 1.0f);
    const std::string& shape = sample.scene.objects[0].shape;
    for (size_t k = 0; k < kShapeNames.size(); ++k)
      if (kShapeNames[k] == shape) out.labels.push_back(static_cast<int32_t>(k));
    ++out.count;
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  int steps = 300;
  if (argc == 3 && std::string(argv[1]) == "--steps") steps = std::atoi(argv[2]);
  ShapesConfig config;
  config.image_size = 64;
  const int64_t S = config.image_size, batch = 32;
  Pictures train = single_shape_pictures(config, "train", 480);
  Pictures test = single_shape_pictures(config, "test", 150);
  std::cout << train.count << " training and " << test.count << " test pictures of " << S << "x" << S << "\n";

  Generator gen(3);
  nn::Conv2D conv1("conv1", 3, 16, 3, 3, gen, /*stride=*/1, Padding::Same, true, nn::Activation::Relu);
  nn::Conv2D conv2("conv2", 16, 32, 3, 3, gen, /*stride=*/1, Padding::Same, true, nn::Activation::Relu);
  nn::Conv2D conv3("conv3", 32, 32, 3, 3, gen, /*stride=*/1, Padding::Same, true, nn::Activation::Relu);
  nn::Dense classify("classify", 32, static_cast<int64_t>(kShapeNames.size()), gen);
  std::vector<nn::NamedTensor> parameters;
  for (nn::Module* m : std::vector<nn::Module*>{&conv1, &conv2, &conv3, &classify})
    for (const nn::NamedTensor& t : m->named_parameters()) parameters.push_back(t);
  nn::Adam adam(parameters, std::make_shared<nn::ConstantLr>(0.003));
  auto logits_of = [&](const Tensor& images) {  // [B, S, S, 3] -> [B, 3]
    // Each 2x2 max pooling halves the resolution: 64 -> 32 -> 16.
    Tensor h = nn::max_pooling2d(conv1.forward(images), 2, 2, Padding::Valid);
    h = nn::max_pooling2d(conv2.forward(h), 2, 2, Padding::Valid);
    h = conv3.forward(h);  // [B, 16, 16, 32]
    // The strongest response of each filter anywhere in the picture: a shape is small and can
    // be anywhere, so "is this feature present" matters, not where or how much of the picture.
    h = max(reshape(h, {h.dim(0), h.dim(1) * h.dim(2), h.dim(3)}), /*axis=*/1);  // [B, 32]
    return classify.forward(h);
  };

  const size_t picture = static_cast<size_t>(S * S * 3);
  for (int step = 0; step < steps; ++step) {
    std::vector<float> pixels;
    std::vector<int32_t> labels;
    for (int64_t b = 0; b < batch; ++b) {
      const size_t i = gen.below(static_cast<uint64_t>(train.count));
      pixels.insert(pixels.end(), train.pixels.begin() + i * picture, train.pixels.begin() + (i + 1) * picture);
      labels.push_back(train.labels[i]);
    }
    Tensor loss = cross_entropy(logits_of(Tensor::from_vector(pixels, {batch, S, S, 3})),
                                Tensor::from_vector(labels, {batch}), /*ignore_index=*/-1);
    adam.zero_grad();
    loss.backward();
    adam.step();
    if (step % 50 == 0 || step == steps - 1) std::cout << "step " << step << ": loss " << loss.item() << "\n";
  }

  NoGradGuard no_grad;
  std::vector<int32_t> predicted = argmax(logits_of(Tensor::from_vector(test.pixels, {test.count, S, S, 3}))).to_vector_i32();
  int right = 0;
  for (int64_t i = 0; i < test.count; ++i) right += predicted[i] == test.labels[i];
  const double accuracy = static_cast<double>(right) / test.count;
  std::cout << "test accuracy " << accuracy << " (" << right << "/" << test.count << "; guessing: 0.33)\n";
  return accuracy >= 0.8 ? 0 : 1;
}
