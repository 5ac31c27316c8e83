"""The notebook decoder's training step in Keras 3 (TensorFlow backend) on the CPU.

The notebook's own layers: Embedding -> GRU(return_sequences, return_state; reset_after=True) ->
Attention()([gru_output, features]) -> Add -> LayerNormalization(epsilon=1e-3) -> Dense(V), the
masked sparse categorical cross-entropy (sum/sum over real targets) and Adam(1e-3, eps 1e-7),
in a tf.function train step without XLA (jit_compile=False).

    python3 bench/decoder_keras.py [--threads N] [--steps 5] [--warmup 2] [--batch 32] ...

Threads: intra-op and inter-op pools are both set to --threads.
"""
import argparse
import os
import sys

import bench_common as common


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=common.default_threads())
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--vocab", type=int, default=20000)
    parser.add_argument("--units", type=int, default=512)
    args = parser.parse_args()

    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")  # a CPU benchmark, even on a GPU machine
    import tensorflow as tf

    # Must happen before TensorFlow creates its thread pools (before the first op).
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    import keras
    from keras import layers

    keras.utils.set_random_seed(0)
    rss_before_model = common.peak_rss_mib()

    tokens_in = keras.Input((args.tokens,), dtype="int32", name="tokens")
    features_in = keras.Input((64, args.units), name="features")
    embedded = layers.Embedding(args.vocab, args.units)(tokens_in)
    sequence, _ = layers.GRU(args.units, return_sequences=True, return_state=True)(embedded)
    context = layers.Attention()([sequence, features_in])
    normalised = layers.LayerNormalization(epsilon=1e-3)(layers.Add()([sequence, context]))
    logits = layers.Dense(args.vocab)(normalised)
    model = keras.Model([tokens_in, features_in], logits)

    optimizer = keras.optimizers.Adam(learning_rate=1e-3)
    per_token_loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction=None)

    @tf.function(jit_compile=False)
    def train_step(tokens, targets, features):
        with tf.GradientTape() as tape:
            out = model([tokens, features], training=True)
            loss = per_token_loss(targets, out)
            mask = tf.cast(tf.not_equal(targets, 0), loss.dtype)
            loss = tf.reduce_sum(loss * mask) / tf.reduce_sum(mask)
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    ids, target_ids = common.caption_batch(args.batch, args.tokens, args.vocab)
    tokens = tf.constant(ids, dtype=tf.int32)
    targets = tf.constant(target_ids, dtype=tf.int32)
    features = tf.random.uniform((args.batch, 64, args.units), seed=1)

    step_ms, cpu_ms, losses = [], [], []
    for i in range(args.warmup + args.steps):
        clock = common.Stopwatch()
        losses.append(float(train_step(tokens, targets, features).numpy()))  # .numpy() waits
        if i >= args.warmup:
            step_ms.append(clock.ms())
            cpu_ms.append(clock.cpu_ms())
    rss_peak = common.peak_rss_mib()

    print("decoder_keras: keras %s, tensorflow %s, B=%d T=%d V=%d units=%d, threads=%d "
          "(intra-op and inter-op)" % (keras.__version__, tf.__version__, args.batch, args.tokens,
                                       args.vocab, args.units, args.threads))
    print("loss: first %.4f, last %.4f; %d warmup + %d timed steps (the first step traces)" % (
        losses[0], losses[-1], args.warmup, args.steps))
    common.print_decoder_row(
        "keras", args.threads, common.median(step_ms), None, None, None, common.median(cpu_ms),
        rss_peak, rss_peak - rss_before_model,
        common.forward_gemm_flops(args.batch, args.tokens, args.vocab, args.units))


if __name__ == "__main__":
    sys.exit(main())
