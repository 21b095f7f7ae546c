// The rules every RunSpec keeps, whether a config file or code built it: their one home. A broken
// rule is reported by the config path of the item or key it concerns ("layers[3].activation").
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "gradscope/core/spec.hpp"

namespace gradscope {

// The limits of a spec. The config reader refuses a value beyond them as it reads it, so that its
// message can quote the value as the file wrote it.
namespace spec_limits {
// 2^24 keeps every index and element count far inside 64 bits.
inline constexpr int kMaxWidth = 16'777'216;  // widths, the batch, loss classes
inline constexpr int kMaxDepth = 1'000'000;   // stack depth, a block's repeat, deep_layers
// Nested repeats multiply: the cap keeps a typo such as "repeat": 1e6 inside "repeat": 1e6 from
// expanding to 10^12 ops. A stack may have 1,000,000 layers; twice that leaves room for norms.
inline constexpr std::uint64_t kMaxOps = 2'000'000;
// The input-output Jacobian is width^3 per layer and example: a handful of examples says enough.
inline constexpr int kMaxJacobianExamples = 64;
}  // namespace spec_limits

// The diagnosis's real-valued thresholds, as the config's "diagnosis" section names them. Each is
// a positive number; a fraction lies in (0, 1).
struct DiagnosisThreshold {
  std::string_view key;
  double DiagnosisSpec::*member;
  bool fraction;
};
std::span<const DiagnosisThreshold> diagnosis_thresholds();

// A rule that a spec breaks.
struct SpecProblem {
  // The config path at fault ("layers[1].residual", "loss.classes", "input"); empty for the
  // config as a whole.
  std::string path;
  // Other config paths the rule ties `path` to: a fix may be at any of them (the config reader
  // names the command-line flag that set one of them, when one did).
  std::vector<std::string> also;
  std::string what;  // "softmax may only be the network's very last op, but layers[1] follows it"
  std::string hint;  // what to do
  // The op of expand_ops(spec) it concerns, when there is one (for names other than config
  // paths, such as an ONNX node's).
  std::optional<std::size_t> op;
  // The fault is the name a named value gives ("softmax" in a hidden layer): with the object
  // form {"name": ...} a reader points at path + ".name".
  bool at_name = false;
};

// The first rule `spec` breaks, or none. The rules: the input's width and batch in [1, 2^24] and
// its distribution finite, with uniform low < high; every width in [1, 2^24]; stack depth and
// repeats in [1, 10^6], at most 2,000,000 ops, blocks shaped as a config can write them;
// activation, init and bias parameters finite (spreads >= 0); softmax only as the network's very
// last op; norm eps finite and > 0; dropout in [0, 1); residual scales finite and, without a
// projection, the same width (and image shape) on both paths; an image input's channels, height
// and width in [1, 2^24] with width = C H W and one token; convolutions, poolings and flattens
// only on images and attention and GLUs only on vectors, conv groups dividing the input's and the
// output's channels, every window within the padded image (pool padding at most kernel / 2, as
// PyTorch) and every image within 2^24 features; softmax cross-entropy over >= 2 outputs and as
// many classes, and losses on logits after no squashing activation; optimizer, stats and
// diagnosis values in their ranges, error thresholds at least the warning ones. The run's name is a
// file name, which the config reader and the CLI check where they choose it.
std::optional<SpecProblem> find_spec_problem(const RunSpec& spec);

// Throws Error (exit code 2) for find_spec_problem's answer: "path: what", with the hint.
void validate_run_spec(const RunSpec& spec);

// The width of the network's output: the last dense op's, or the input's when there is none; for
// an image input, the features of the last op (a convolution's or pooling's C H W). Counted on
// the items, not expanded, so it is cheap for any repeat.
int output_width(const RunSpec& spec);

}  // namespace gradscope
