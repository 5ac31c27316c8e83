// glimpse in one include: what a program that builds, trains, saves and loads models needs.
//
//   #include <glimpse/glimpse.h>
//
// A CMake project gets it with find_package(glimpse) and target_link_libraries(app glimpse::glimpse)
// (README.md, "Using glimpse as a library"; examples/ has small programs to start from). The
// headers below can also be included one by one; this file only collects them, layer by layer,
// in the order the code is built: tensor -> nn -> io -> models.
#pragma once

// tensor/: the Tensor, its ops (each differentiable), autograd, random numbers.
#include "tensor/autograd.h"  // NoGradGuard, backward()
#include "tensor/ops.h"
#include "tensor/profiler.h"  // GLIMPSE_DEBUG levels, trace::start / stop (Chrome/Perfetto traces)
#include "tensor/random.h"
#include "tensor/tensor.h"

// nn/: layers with Keras's semantics, losses, optimizers and learning-rate schedules.
#include "nn/attention.h"
#include "nn/gru.h"
#include "nn/init.h"
#include "nn/layers.h"
#include "nn/losses.h"
#include "nn/module.h"
#include "nn/optim.h"
#include "nn/transformer.h"

// io/: images, HDF5 files, checkpoints, caption datasets and the tokenizer, the shapes dataset.
#include "io/captions.h"
#include "io/checkpoint.h"
#include "io/hdf5.h"
#include "io/image.h"
#include "io/shapes_dataset.h"
#include "io/tokenizer.h"

// models/: Inception-ResNet-v2, the captioner, decoding, metrics and the training loop.
#include "models/caption_metrics.h"
#include "models/captioner.h"
#include "models/decoding.h"
#include "models/inception_resnet_v2.h"
#include "models/keras_import.h"
#include "models/training.h"
