#!/usr/bin/env bash
# Cross-checks gradscope against PyTorch: runs small networks of every kind (each activation, norm,
# residual form and loss; sequences through transformers of every scaling, attention and GLU;
# image networks of conv, batch norm and pooling (scripts/torch_conv_check.py); in float64 and
# float32) with --save-weights and recomputes every per-layer, token, attention and
# parameter statistic with autograd (scripts/torch_crosscheck.py); then networks built in PyTorch,
# read by gradscope from safetensors and ONNX (torch_models.py, and onnx_images.py for image
# networks). Exit 77 (skipped) without torch.
#   usage: bash tests/torch/crosscheck.sh PATH/TO/gradscope
set -uo pipefail

GRADSCOPE=${1:?usage: crosscheck.sh PATH/TO/gradscope}
PYTHON=${GRADSCOPE_TORCH_PYTHON:-/usr/bin/python3}  # Debian's has python3-torch; PATH's may not
SCRIPT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/scripts/torch_crosscheck.py"

if ! "$PYTHON" -c 'import torch, numpy' 2>/dev/null; then
  echo "crosscheck: skipped: $PYTHON cannot import torch and numpy (apt install python3-torch)"
  exit 77
fi

DIR=$(mktemp -d)
trap 'rm -rf "$DIR"' EXIT
mkdir -p "$DIR/cfg" "$DIR/out"
failures=0
fail() {
  echo "crosscheck: FAIL: $*"
  failures=$((failures + 1))
}

"$PYTHON" "$SCRIPT" --self-test || fail "the script's self-test"

# config NAME BODY: writes NAME-f64.json and NAME-f32.json, BODY being the keys after name and
# precision. Sizes stay small (widths <= 16, batch <= 16) so the whole check takes seconds, and
# depths stay where float32 gradients keep far inside float32's range (PyTorch cannot rescale).
NAMES=()
config() {
  local name=$1 body=$2 p
  for p in 64 32; do
    printf '{"name": "%s-f%s", "precision": "float%s", %s}\n' "$name" "$p" "$p" "$body" \
      >"$DIR/cfg/$name-f$p.json"
    NAMES+=("$name-f$p")
  done
}

# Every activation in a small stack, with an output layer; each init suits its activation.
for spec in 'linear|"linear"|xavier_normal' 'relu|"relu"|he_normal' \
  'leaky_relu|{"name": "leaky_relu", "slope": 0.2}|he_normal' \
  'elu|{"name": "elu", "alpha": 0.5}|he_normal' 'selu|"selu"|lecun_normal' \
  'gelu|"gelu"|he_normal' 'gelu_tanh|"gelu_tanh"|he_normal' 'silu|"swish"|he_normal' \
  'mish|"mish"|he_normal' 'softplus|"softplus"|he_normal' 'sigmoid|"sigmoid"|xavier_normal' \
  'tanh|"tanh"|xavier_normal' 'hard_tanh|"hard_tanh"|xavier_normal'; do
  IFS='|' read -r name act init <<<"$spec"
  config "act-$name" "\"seed\": 11, \"input\": {\"width\": 12, \"batch\": 16},
    \"stack\": {\"depth\": 4, \"width\": 12, \"activation\": $act, \"init\": \"$init\",
                \"bias_init\": {\"name\": \"normal\", \"std\": 0.1}},
    \"output\": {\"width\": 6, \"activation\": \"linear\", \"init\": \"xavier_normal\"}"
done

# A softmax output under the probe; biases and weights from PyTorch's default init.
config softmax-output '"seed": 5, "input": {"width": 10, "batch": 12, "distribution": "uniform"},
  "stack": {"depth": 3, "width": 10, "activation": "tanh", "init": "torch_default"},
  "output": {"width": 5, "activation": "softmax"}'

# Dead and saturated units: ReLU with a negative bias (up to 14 of 16 units dead per layer),
# hard_tanh with a large gain, so the dead-unit count is compared where it is not zero; and a
# ReLU stack dead to its last unit, whose gradients are exact zeros and whose gains are 0 / 0.
config relu-dead '"seed": 2, "input": {"width": 16, "batch": 8},
  "stack": {"depth": 4, "width": 16, "activation": "relu", "init": "he_normal",
            "bias_init": {"name": "constant", "value": -0.7}}'
config relu-all-dead '"seed": 2, "input": {"width": 12, "batch": 8},
  "stack": {"depth": 4, "width": 12, "activation": "relu", "init": "he_normal",
            "bias_init": {"name": "constant", "value": -1.0}}'
config hard-tanh-saturated '"seed": 2, "input": {"width": 12, "batch": 4},
  "stack": {"depth": 3, "width": 12, "activation": "hard_tanh",
            "init": {"name": "xavier_normal", "gain": 6}}'

# Norms, before and after the activation, and as items of their own.
config batch-norm '"seed": 3, "input": {"width": 12, "batch": 16},
  "layers": [{"width": 12, "activation": "relu", "norm": "batch_norm"},
             {"width": 12, "activation": "relu", "norm": {"name": "batch_norm", "eps": 1e-3}},
             {"width": 12, "activation": "tanh", "norm": "batch_norm",
              "norm_position": "after_activation"},
             {"width": 6, "activation": "linear", "init": "xavier_normal"}]'
config layer-norm '"seed": 4, "input": {"width": 12, "batch": 16},
  "layers": [{"width": 12, "activation": "gelu", "norm": "layer_norm"},
             {"norm": {"name": "layer_norm", "eps": 1e-2}},
             {"width": 12, "activation": "silu", "norm": "layer_norm",
              "norm_position": "after_activation"},
             {"width": 6, "activation": "linear", "init": "xavier_normal"}]'
config rms-norm '"seed": 6, "input": {"width": 12, "batch": 16},
  "layers": [{"width": 12, "activation": "relu", "norm": "rms_norm"},
             {"width": 12, "activation": "linear", "norm": {"name": "rms_norm", "eps": 1e-6}},
             {"activation": "mish"},
             {"width": 12, "activation": "elu", "norm": "rms_norm",
              "norm_position": "after_activation"},
             {"width": 6, "activation": "linear", "init": "xavier_normal"}]'

# Residual blocks: pre-norm with a scale, post-norm, projected (a width change, and a projection
# init of its own), nested, and a dropout of rate 0 (the identity; any other rate is refused).
config residual-pre-norm '"seed": 7, "input": {"width": 12, "batch": 16},
  "layers": [{"width": 12, "activation": "gelu"},
             {"repeat": 3, "residual": {"scale": 0.5},
              "block": [{"norm": "layer_norm"}, {"width": 16, "activation": "gelu"},
                        {"width": 12, "activation": "linear", "init": "xavier_normal"}]},
             {"norm": "layer_norm"},
             {"width": 6, "activation": "linear", "init": "xavier_normal"}]'
config residual-post-norm '"seed": 8, "input": {"width": 12, "batch": 16},
  "layers": [{"width": 12, "activation": "relu"},
             {"repeat": 2,
              "residual": {"placement": "post_norm", "norm": "layer_norm", "scale": 1.5},
              "block": [{"width": 12, "activation": "relu"},
                        {"width": 12, "activation": "linear", "init": "xavier_normal"}]},
             {"width": 6, "activation": "linear", "init": "xavier_normal"}]'
config residual-projected '"seed": 9, "input": {"width": 12, "batch": 16},
  "layers": [{"width": 12, "activation": "tanh", "init": "xavier_normal"},
             {"residual": {"projection": true},
              "block": [{"width": 8, "activation": "tanh", "init": "xavier_normal"}]},
             {"residual": {"projection": {"name": "orthogonal", "gain": 0.5},
                           "placement": "post_norm", "norm": "rms_norm"},
              "block": [{"norm": "batch_norm"}, {"width": 16, "activation": "sigmoid"}]},
             {"width": 6, "activation": "linear", "init": "xavier_normal"}]'
config residual-nested '"seed": 10, "input": {"width": 12, "batch": 16},
  "layers": [{"width": 12, "activation": "selu", "init": "lecun_normal"},
             {"repeat": 2, "residual": true,
              "block": [{"width": 12, "activation": "selu", "init": "lecun_normal"},
                        {"repeat": 2, "residual": {"scale": 0.25},
                         "block": [{"norm": "rms_norm"}, {"width": 12, "activation": "softplus"}]},
                        {"dropout": 0}]},
             {"width": 6, "activation": "linear", "init": "xavier_normal"}]'

# Each loss (the probe is the default above), with an output that fits it.
config loss-mse '"seed": 12, "input": {"width": 12, "batch": 16},
  "stack": {"depth": 3, "width": 12, "activation": "relu"},
  "output": {"width": 6, "activation": "linear", "init": "xavier_normal"}, "loss": "mse"'
config loss-softmax-ce '"seed": 13, "input": {"width": 12, "batch": 16},
  "stack": {"depth": 3, "width": 12, "activation": "gelu"},
  "output": {"width": 5, "activation": "linear", "init": "xavier_normal"},
  "loss": {"name": "softmax_cross_entropy", "classes": 5}'
config loss-sigmoid-bce '"seed": 14, "input": {"width": 12, "batch": 16},
  "stack": {"depth": 3, "width": 12, "activation": "tanh", "init": "xavier_normal"},
  "output": {"width": 4, "activation": "linear", "init": {"name": "xavier_normal", "gain": 3}},
  "loss": "sigmoid_bce"'
# A sigmoid output under softmax cross-entropy: refused by no one, diagnosed by gradscope.
config loss-ce-sigmoid-output '"seed": 15, "input": {"width": 12, "batch": 16},
  "stack": {"depth": 2, "width": 12, "activation": "relu"},
  "output": {"width": 3, "activation": "sigmoid", "init": "xavier_normal"},
  "loss": "softmax_cross_entropy"'

# Sequences (tokens > 1): the transformer shorthand pre- and post-norm, SwiGLU, every depth
# scaling, attention written out (biases, 2-4 heads, causal and not, each scale, no output
# projection), batch norm over batch x tokens, and a loss per token. Widths 16-24, 4-8 tokens,
# batch 2-3: the runs take milliseconds, PyTorch a fraction of a second.
tf() {  # tf NAME SEED TRANSFORMER-KEYS [EXTRA-KEYS]
  config "$1" "\"seed\": $2, \"input\": {\"width\": 16, \"batch\": 2, \"tokens\": 6},
    \"layers\": [{\"transformer\": {\"blocks\": 2, \"heads\": 2, $3}},
               {\"width\": 8, \"activation\": \"linear\", \"init\": \"xavier_normal\"}]${4:+, $4}"
}
tf tf-pre-gelu 21 '"activation": "gelu"' '"optimizer": "adam"'
tf tf-post-gelu 22 '"activation": "gelu", "placement": "post_norm", "causal": false,
  "norm": "rms_norm"' '"optimizer": {"name": "sgd", "learning_rate": 0.01}'
tf tf-swiglu 23 '"activation": "swiglu", "mlp_ratio": 2' '"optimizer": "adam"'
tf tf-gpt2 24 '"scaling": "gpt2", "activation": "gelu_tanh"'
tf tf-deepnorm 25 '"scaling": "deepnorm", "placement": "post_norm", "activation": "relu"'
tf tf-subln 26 '"scaling": "subln", "activation": "gelu"' '"optimizer": "sgd"'
tf tf-tfixup 27 '"scaling": "tfixup", "activation": "swiglu", "mlp_ratio": 2'
tf tf-rezero 28 '"scaling": "rezero", "activation": "gelu"' '"optimizer": "adam"'
config attention-items '"seed": 29, "input": {"width": 24, "batch": 3, "tokens": 5},
  "layers": [{"attention": {"heads": 4, "causal": false, "bias": true, "scale": "1/d_head"}},
             {"glu": {"hidden": 16, "activation": "gelu", "bias": true}},
             {"residual": {"scale": 0.5, "skip": 0.8},
              "block": [{"norm": "layer_norm"},
                        {"attention": {"heads": 3, "bias": true, "scale": 0.4,
                                       "output_projection": false}}]},
             {"attention": {"heads": 2, "causal": true, "init": "xavier_uniform"}},
             {"width": 6, "activation": "linear", "init": "xavier_normal"}],
  "loss": "mse", "optimizer": {"name": "adam", "learning_rate": 0.01}'
config tokens-batch-norm '"seed": 30, "input": {"width": 16, "batch": 3, "tokens": 4},
  "layers": [{"width": 16, "activation": "relu", "norm": "batch_norm"},
             {"attention": {"heads": 2}},
             {"width": 16, "activation": "tanh", "norm": "batch_norm",
              "norm_position": "after_activation"},
             {"width": 5, "activation": "linear", "init": "xavier_normal"}],
  "loss": {"name": "softmax_cross_entropy", "classes": 5}'

# Each run writes OUT/<name>.json, the report; the script takes every (file, report) pair at once
# (PyTorch's import is most of a run's cost).
pairs=()
for name in "${NAMES[@]}"; do
  out="$DIR/out/$name"
  if "$GRADSCOPE" run "$DIR/cfg/$name.json" --out "$DIR/out" --quiet \
    --save-weights "$out.safetensors" >"$out.log" 2>&1; then
    pairs+=("$out.safetensors" "$out.json")
  else
    fail "gradscope run $name (exit $?): $(head -c 600 "$out.log")"
  fi
done

# Generated attention and GLU biases are zeros; nonzero ones (the key bias's gradient then is
# rounding alone: softmax ignores a constant per row) come from the file with its biases redrawn,
# loaded back with --weights (the input is drawn from the seed again, the same batch).
mkdir -p "$DIR/biased"
for p in 64 32; do
  name=attention-items-f$p
  [ -f "$DIR/out/$name.safetensors" ] || continue
  "$PYTHON" - "$SCRIPT" "$DIR/out/$name.safetensors" "$DIR/biased/in.safetensors" <<'PY'
import os
import sys
import numpy as np
sys.path.insert(0, os.path.dirname(sys.argv[1]))
import torch_crosscheck as xc
meta, tensors = xc.read_safetensors(sys.argv[2])
rng = np.random.default_rng(31)
for key, a in tensors.items():
    if key.endswith(".bias"):
        tensors[key] = (0.3 * rng.standard_normal(a.shape)).astype(a.dtype)
xc.write_safetensors(sys.argv[3], tensors, meta)
PY
  if "$GRADSCOPE" run "$DIR/cfg/$name.json" --weights "$DIR/biased/in.safetensors" \
    --out "$DIR/biased" --quiet --save-weights "$DIR/biased/$name.safetensors" >"$DIR/biased/$name.log" 2>&1; then
    pairs+=("$DIR/biased/$name.safetensors" "$DIR/biased/$name.json")
  else
    fail "gradscope run $name --weights (biases redrawn): $(head -c 600 "$DIR/biased/$name.log")"
  fi
done

echo "crosscheck: $((${#pairs[@]} / 2)) runs against PyTorch"
"$PYTHON" "$SCRIPT" "${pairs[@]}" || fail "a statistic differs from PyTorch's (tables above)"

# The dead-unit comparison sees dead units, and gradients that are not all zero.
for name in relu-dead-f64 relu-dead-f32 hard-tanh-saturated-f64 hard-tanh-saturated-f32; do
  "$PYTHON" -c 'import json, sys
s = json.load(open(sys.argv[1]))["summary"]
sys.exit(0 if s["dead_units"] > 0 and s["log10_grad_ratio_first_to_last"] is not None else 1)' \
    "$DIR/out/$name.json" || fail "$name: no dead units, or no gradient: the config needs retuning"
done

# The check can fail: a report whose first gradient is moved by 1% is caught (exit 1).
if [ "${#pairs[@]}" -gt 0 ]; then
  "$PYTHON" - "${pairs[1]}" "$DIR/tampered.json" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
g = r["layers"][0]["backward"]["grad_preact"]
g["log10_rms"] += 0.0043  # log10(1.01)
json.dump(r, open(sys.argv[2], "w"))
EOF
  "$PYTHON" "$SCRIPT" "${pairs[0]}" "$DIR/tampered.json" >"$DIR/tampered.log" 2>&1
  rc=$?
  [ "$rc" -eq 1 ] || fail "a report with a gradient off by 1% was not caught (exit $rc, not 1)"
fi

# ... and so is each sequence statistic of a float64 transformer moved by 1e-8 relative (the
# tolerance is 1e-10): the token cosine and centred rms, the attention entropy and largest logit,
# one tensor's gradient norm and update ratio, a peaked row more (one call: 7 runs, 7 FAILs).
f64=$DIR/out/tf-pre-gelu-f64
if [ -f "$f64.json" ]; then
  "$PYTHON" - "$f64.json" "$DIR/tampered" <<'EOF'
import json, sys
for what in ("cosine", "centered", "entropy", "logit", "grad", "update", "peaked"):
    r = json.load(open(sys.argv[1]))
    attention = next(l for l in r["layers"] if l["kind"] == "attention")
    p = next(p for p in r["parameters"] if p["role"] == "value.weight")
    target = {"cosine": (r["layers"][0]["forward"]["tokens"], "mean_cosine"),
              "centered": (r["layers"][0]["forward"]["tokens"], "centered_rms"),
              "entropy": (attention["forward"]["attention"], "entropy"),
              "logit": (attention["forward"]["attention"], "max_logit"),
              "grad": (p, "log10_grad_norm"), "update": (p, "log10_update_to_weight")}
    if what == "peaked":
        a = attention["forward"]["attention"]
        rows = 2 * 2 * 6  # batch, heads, tokens of tf-pre-gelu
        a["peaked_fraction"] = (round(a["peaked_fraction"] * rows) + 1) / rows
    else:
        obj, key = target[what]
        # log10(1 + 1e-8) on a log10, else 1e-8 of the value (at least 1e-8 absolute).
        obj[key] += 4.3e-9 if key.startswith("log10") else 1e-8 * max(1.0, abs(obj[key]))
    json.dump(r, open(f"{sys.argv[2]}-{what}.json", "w"))
EOF
  tampered=()
  for what in cosine centered entropy logit grad update peaked; do
    tampered+=("$f64.safetensors" "$DIR/tampered-$what.json")
  done
  "$PYTHON" "$SCRIPT" "${tampered[@]}" >"$DIR/tampered.log" 2>&1
  rc=$?
  caught=$(grep -c '^FAIL:' "$DIR/tampered.log")
  [ "$rc" -eq 1 ] && [ "$caught" -eq 7 ] ||
    fail "of 7 sequence statistics moved past tolerance, $caught were caught (exit $rc, not 1)"
fi

# Dropout above 0 is refused with exit 2: its masks are not in the file.
printf '{"name": "dropout", "precision": "float64", "input": {"width": 6, "batch": 4},
  "layers": [{"width": 6}, {"dropout": 0.5}, {"width": 3, "activation": "linear"}]}\n' \
  >"$DIR/cfg/dropout.json"
if "$GRADSCOPE" run "$DIR/cfg/dropout.json" --out "$DIR/out" --quiet \
  --save-weights "$DIR/out/dropout.safetensors" >"$DIR/dropout.log" 2>&1; then
  "$PYTHON" "$SCRIPT" "$DIR/out/dropout.safetensors" "$DIR/out/dropout.json" \
    >"$DIR/dropout.out" 2>&1
  rc=$?
  if [ "$rc" -ne 2 ] || ! grep -q dropout "$DIR/dropout.out"; then
    fail "a run with dropout 0.5 was not refused (exit $rc, not 2): $(cat "$DIR/dropout.out")"
  fi
else
  fail "gradscope run dropout: $(head -c 600 "$DIR/dropout.log")"
fi

# Image networks (scripts/torch_conv_check.py, functional conv2d, batch_norm per channel and
# pooling): a VGG-style net with max pooling and a strided, dilated and grouped conv; a residual
# conv-BN-ReLU block with average and global pooling under the probe; layer norm over C H W; a
# ResNet with downsampling stages and their learned projections.
CONV="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/scripts/torch_conv_check.py"
mkdir -p "$DIR/conv/cfg" "$DIR/conv/out"
conv_config() {
  local name=$1 body=$2 p cfg out
  for p in 64 32; do
    cfg="$DIR/conv/cfg/$name-f$p.json"
    out="$DIR/conv/out/$name-f$p"
    printf '{"name": "%s-f%s", "precision": "float%s", %s}\n' "$name" "$p" "$p" "$body" >"$cfg"
    if "$GRADSCOPE" run "$cfg" --out "$DIR/conv/out" --quiet \
      --save-weights "$out.safetensors" >"$out.log" 2>&1; then
      "$PYTHON" "$CONV" "$out.json" "$out.safetensors" \
        || fail "image network $name-f$p differs from PyTorch's (above)"
    else
      fail "gradscope run $name-f$p: $(head -c 600 "$out.log")"
    fi
  done
}
conv_config vgg '"seed": 4, "input": {"channels": 3, "height": 12, "width": 12, "batch": 6},
  "layers": [{"conv": {"channels": 8, "kernel": 3, "padding": 1}, "activation": "relu"},
             {"pool": {"kind": "max", "kernel": 2}},
             {"conv": {"channels": 8, "kernel": 3, "stride": 2, "padding": 2, "dilation": 2,
                       "groups": 2}, "activation": "tanh", "init": "xavier_normal",
              "bias_init": {"name": "normal", "std": 0.1}},
             {"flatten": {}}, {"width": 5, "activation": "linear", "init": "xavier_normal"}],
  "loss": {"name": "softmax_cross_entropy", "classes": 5}'
conv_config resnet '"seed": 6, "input": {"channels": 4, "height": 8, "width": 8, "batch": 5},
  "layers": [{"conv": {"channels": 6, "kernel": [3, 1], "padding": [1, 0]}, "activation": "relu"},
             {"repeat": 2, "residual": true,
              "block": [{"conv": {"channels": 6, "kernel": 3, "padding": 1, "bias": false},
                         "norm": "batch_norm", "activation": "relu"},
                        {"conv": {"channels": 6, "kernel": 1}, "activation": "linear"}]},
             {"pool": {"kind": "average", "kernel": 3, "stride": 2, "padding": 1}},
             {"norm": "layer_norm"},
             {"pool": {"kind": "global_average"}}, {"flatten": {}}]'
# A ResNet basic-block net with a downsampling stage: conv-BN-ReLU-conv-BN branches, an identity
# block, then blocks that halve the image with torchvision's learned shortcut (conv1x1 stride 2 +
# BatchNorm2d; one without its norm, under skip and branch scales), GAP, flatten, dense.
conv_config resnet-down '"seed": 9, "input": {"channels": 3, "height": 8, "width": 8, "batch": 6},
  "layers": [{"conv": {"channels": 4, "kernel": 3, "padding": 1, "bias": false},
              "norm": "batch_norm", "activation": "relu"},
             {"residual": true,
              "block": [{"conv": {"channels": 4, "kernel": 3, "padding": 1, "bias": false},
                         "norm": "batch_norm", "activation": "relu"},
                        {"conv": {"channels": 4, "kernel": 3, "padding": 1, "bias": false},
                         "norm": "batch_norm"}]},
             {"activation": "relu"},
             {"residual": {"projection": true},
              "block": [{"conv": {"channels": 8, "kernel": 3, "stride": 2, "padding": 1,
                                  "bias": false}, "norm": "batch_norm", "activation": "relu"},
                        {"conv": {"channels": 8, "kernel": 3, "padding": 1, "bias": false},
                         "norm": "batch_norm"}]},
             {"activation": "relu"},
             {"residual": {"scale": 0.5, "skip": 0.8,
                           "projection": {"init": "xavier_normal", "norm": false}},
              "block": [{"conv": {"channels": 6, "kernel": 3, "stride": 2, "padding": 1,
                                  "bias": false}, "norm": "batch_norm", "activation": "relu"}]},
             {"pool": {"kind": "global_average"}}, {"flatten": {}},
             {"width": 5, "activation": "linear", "init": "xavier_normal"}],
  "loss": {"name": "softmax_cross_entropy", "classes": 5}'
# Scaled weight standardisation on every conv (timm's ScaledStdConv2d, NF-ResNets), with ReLU's
# gain, a residual block and a grouped, strided conv.
conv_config ws-conv '"seed": 12, "input": {"channels": 3, "height": 8, "width": 8, "batch": 5},
  "layers": [{"conv": {"channels": 6, "kernel": 3, "padding": 1,
                       "weight_standardization": true}, "activation": "relu"},
             {"residual": true,
              "block": [{"conv": {"channels": 6, "kernel": 3, "padding": 1, "bias": false,
                                  "weight_standardization": {"gain": 1.7128585504496627,
                                                             "eps": 1e-4}},
                         "activation": "relu"}]},
             {"conv": {"channels": 4, "kernel": 3, "stride": 2, "groups": 2,
                       "weight_standardization": {"gain": 0.5}}, "activation": "tanh"},
             {"pool": {"kind": "global_average"}}, {"flatten": {}},
             {"width": 3, "activation": "linear", "init": "xavier_normal"}],
  "loss": {"name": "softmax_cross_entropy", "classes": 3}'
# An NF-ResNet through the nf preset: unrolled pre-activation blocks whose WS convs carry
# gamma / beta, a transition whose activation precedes the residual and whose WS projection
# carries the gain, branches scaled by alpha.
conv_config nf-resnet '"seed": 13, "input": {"channels": 4, "height": 8, "width": 8, "batch": 4},
  "layers": [{"repeat": 2, "residual": {"preset": "nf"},
              "block": [{"activation": "relu"},
                        {"conv": {"channels": 4, "kernel": 3, "padding": 1, "bias": false},
                         "activation": "relu"},
                        {"conv": {"channels": 4, "kernel": 3, "padding": 1}}]},
             {"residual": {"preset": "nf", "alpha": 0.3, "projection": true},
              "block": [{"activation": "relu"},
                        {"conv": {"channels": 6, "kernel": 3, "stride": 2, "padding": 1,
                                  "bias": false}, "activation": "relu"},
                        {"conv": {"channels": 6, "kernel": 3, "padding": 1}}]},
             {"pool": {"kind": "global_average"}}, {"flatten": {}},
             {"width": 3, "activation": "linear", "init": "xavier_normal"}],
  "loss": {"name": "softmax_cross_entropy", "classes": 3}'
# The image check can fail: a conv's weight gradient moved by 1e-6 is caught (exit 1).
if [ -f "$DIR/conv/out/vgg-f64.json" ]; then
  "$PYTHON" -c 'import json, sys
r = json.load(open(sys.argv[1]))
r["parameters"][0]["grad_norm"] *= 1 + 1e-6
json.dump(r, open(sys.argv[2], "w"))' "$DIR/conv/out/vgg-f64.json" "$DIR/conv/moved.json"
  "$PYTHON" "$CONV" "$DIR/conv/moved.json" "$DIR/conv/out/vgg-f64.safetensors" >/dev/null
  rc=$?
  [ "$rc" -eq 1 ] || fail "a conv gradient off by 1e-6 was not caught (exit $rc, not 1)"
fi

# The other direction: networks built in PyTorch, saved as a state_dict safetensors file with a
# config and as ONNX, run by gradscope with --weights/--input/--targets or on the .onnx file.
"$PYTHON" "$(dirname "${BASH_SOURCE[0]}")/torch_models.py" "$GRADSCOPE" \
  || fail "a network built in PyTorch differs from gradscope's report (tables above)"

# Image networks built in PyTorch (a VGG-style net, ResNet BasicBlocks, ResNet-18), exported to
# ONNX in training and eval mode and run by gradscope on the .onnx file (skipped without
# torchvision).
"$PYTHON" "$(dirname "${BASH_SOURCE[0]}")/onnx_images.py" "$GRADSCOPE"
rc=$?
if [ "$rc" -ne 0 ] && [ "$rc" -ne 77 ]; then
  fail "an image network exported to ONNX differs from PyTorch (above)"
fi

if [ "$failures" -gt 0 ]; then
  echo "crosscheck: $failures failure(s)"
  exit 1
fi
echo "crosscheck: ok"
