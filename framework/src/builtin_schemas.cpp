// The schemas of the framework's own tables: [experiment], [frontend], [train].
// Defaults follow AST's Speech Commands recipe (docs/reference.md §2, §4) where one exists.
#include "patchbay/config.hpp"

namespace patchbay {

const OptionSchema& experiment_schema() {
  static const OptionSchema schema = [] {
    OptionSchema s;
    s.add_string("name", "", "experiment name; names the results file (default: the file's stem)");
    s.add_string("description", "", "one line saying what the experiment asks");
    return s;
  }();
  return schema;
}

const OptionSchema& frontend_schema() {
  static const OptionSchema schema = [] {
    OptionSchema s;
    s.add_int("sample_rate", 16000, "audio is resampled to this rate (Hz)", Range::at_least(1000));
    s.add_int("num_mel_bins", 128, "mel filters, the spectrogram's F", Range::between(1, 1024));
    s.add_int("target_frames", 128, "frames after padding / cropping, the spectrogram's T "
              "(128 for 1 s clips, 1024 for 10 s)", Range::between(1, 100000));
    s.add_real("frame_length_ms", 25.0, "analysis window length (ms)", Range::between(1, 1000));
    s.add_real("frame_shift_ms", 10.0, "hop between frames (ms)", Range::between(1, 1000));
    s.add_real("low_freq", 20.0, "lowest mel filter edge (Hz)", Range::at_least(0));
    s.add_real("high_freq", 0.0, "highest mel filter edge (Hz); 0 or negative: offset from Nyquist");
    s.add_real("preemphasis", 0.97, "pre-emphasis coefficient", Range::between(0, 1));
    s.add_real("dither", 0.0, "dither amplitude (0: none, as AST)", Range::at_least(0));
    s.add_choice("channel", "first", {"first", "mean"},
                 "a multi-channel clip becomes mono by taking channel 0 (torchaudio's kaldi.fbank, "
                 "as AST) or by averaging the channels");
    s.add_choice("window", "hanning", {"hanning", "hamming", "povey", "rectangular", "blackman"},
                 "analysis window");
    s.add_choice("normalize", "train_split", {"train_split", "fixed", "none"},
                 "(x - mean) / (2 std) with statistics of the training split, the fixed "
                 "norm_mean / norm_std, or no normalisation");
    s.add_real("norm_mean", -6.845978, "mean for normalize = \"fixed\" (AST's Speech Commands value)");
    s.add_real("norm_std", 5.5654526, "standard deviation for normalize = \"fixed\"",
               Range::at_least(1e-12));
    s.add_string("cache_dir", "", "feature cache folder (default: beside the dataset)");
    return s;
  }();
  return schema;
}

const OptionSchema& train_schema() {
  static const OptionSchema schema = [] {
    OptionSchema s;
    s.add_int("epochs", 10, "passes over the training split", Range::at_least(1));
    s.add_int("batch_size", 32, "examples per step", Range::at_least(1));
    s.add_choice("optimizer", "adamw", {"adamw", "adam"}, "optimiser");
    s.add_real("lr", 2.5e-4, "peak learning rate", Range::at_least(0));
    s.add_real("weight_decay", 5e-7, "weight decay", Range::at_least(0));
    s.add_real_list("betas", {0.95, 0.999}, "Adam betas (AST's)", Range::between(0, 1));
    s.add_choice("schedule", "cosine", {"cosine", "step", "constant"},
                 "linear warm-up then cosine decay; AST's step decay; or constant");
    s.add_int("warmup_steps", 0, "linear warm-up steps", Range::at_least(0));
    s.add_int("step_start_epoch", 5, "schedule = \"step\": AST's lrscheduler_start, the first "
              "milestone; as AST's MultiStepLR stepped after each epoch, the first decayed "
              "epoch is the one after it", Range::at_least(1));
    s.add_int("step_every", 1, "schedule = \"step\": decay every this many epochs", Range::at_least(1));
    s.add_real("step_decay", 0.85, "schedule = \"step\": factor applied at each decay",
               Range::between(0, 1));
    s.add_real("grad_clip", 0.0, "clip the gradient norm to this (0: off)", Range::at_least(0));
    s.add_real("label_smoothing", 0.0, "label smoothing for single-label cross-entropy",
               Range::between(0, 1));
    s.add_choice("sampler", "shuffle", {"shuffle", "balanced"},
                 "which clips an epoch visits: each once in a fresh random order, or AudioSet-style "
                 "class-balanced draws with replacement (a clip weighs the sum over its labels of "
                 "1 / the class's training clips, as AST's gen_weight_file.py)");
    s.add_int("epoch_size", 0, "training examples per epoch (0: the training split's size); "
              "\"shuffle\" concatenates permutations to reach it, \"balanced\" draws this many",
              Range::at_least(0));
    s.add_real("mixup", 0.0, "probability that a training example is mixed with a partner drawn "
               "from the whole training split (AST's per-example mixup)", Range::between(0, 1));
    s.add_real("mixup_alpha", 10.0, "mixup lambda ~ Beta(alpha, alpha)", Range::at_least(1e-6));
    s.add_choice("mixup_on", "spectrogram", {"spectrogram", "waveform"},
                 "mix the (cached) log-mel spectrograms, or decode and mix the waveforms and "
                 "compute the mixture's fbank as AST does (slower: mixed examples are decoded, "
                 "on the loader threads); either way the masker sees the mixture");
    s.add_choice("select", "auto", {"auto", "accuracy", "mAP"},
                 "validation metric that picks the best epoch (auto: mAP for multi-label "
                 "datasets, accuracy otherwise)");
    s.add_int("early_stop_patience", 0, "stop training after this many epochs in a row without a "
              "better validation score than the best so far (0: off, train every epoch); the "
              "learning-rate schedule still spans train.epochs, and the run records "
              "stopped_early and epochs_trained", Range::at_least(0));
    s.add_real("ema_decay", 0.0, "keep an exponential moving average of the weights, updated "
               "after every optimiser step with this decay (timm's ModelEmaV2; 0: off), and "
               "evaluate it after training (ema_* results)", Range::between(0, 0.999999));
    s.add_int_pair("average_epochs", {0, 0}, "average the weights after each of epochs "
                   "[first, last] (1-based, inclusive; AST's wa_start / wa_end) and evaluate the "
                   "mean after training (avg_* results); [0, 0]: off", Range::at_least(0));
    s.add_int("eval_batch_size", 64, "examples per evaluation batch", Range::at_least(1));
    s.add_int("seed", 0, "seed of every random choice in the run", Range::at_least(0));
    s.add_int("threads", 0, "intra-op threads (0: all cores)", Range::at_least(0));
    s.add_int("loader_threads", 1, "background data-loading threads", Range::at_least(0));
    s.add_real("checkpoint_every_s", 60.0, "seconds between epoch checkpoints (0: after every "
               "epoch; the last epoch is always written); a killed run resumes from the last one",
               Range::at_least(0));
    s.add_choice("precision", "fp32", {"fp32", "bf16", "fp16"},
                 "number format of the forward passes: fp32, bf16 (autocast on the model's device: matrix products "
                 "in bfloat16, norms and losses in float32; parameters and optimiser state stay "
                 "float32), or fp16 (CUDA only, with a dynamic loss scale)");
    s.add_string("device", "cpu", "where the model computes: \"cpu\", \"cuda\" or \"cuda:N\" (a CUDA "
                 "LibTorch; README, \"GPUs\"); data, masks and metrics stay on the CPU");
    s.add_string("init_weights", "", "start from these weights instead of random initialisation: a "
                 "weights file (patchbay weights export / import) or a torch.save checkpoint (.pth), "
                 "relative to the experiment file; \"\": none");
    s.add_bool("init_strict", false, "init_weights must fit exactly (every tensor by name and shape); "
               "false: the positional and patch embeddings adapt to this geometry and a head of "
               "another class count starts fresh (docs/weights.md)");
    s.add_string("init_exclude", "", "comma-separated globs of init_weights' tensor names to leave "
                 "out (those of the model start fresh; init_strict too), e.g. \"mlp_head.*\"");
    return s;
  }();
  return schema;
}

}  // namespace patchbay
