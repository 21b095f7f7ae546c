// Transformer runs against closed forms (docs/theory.md, "Transformers at initialisation"): with
// zero queries attention averages the tokens, so its entropy, the token statistics and the mean
// token's growth are known exactly; a pre-norm ReLU FFN stream grows linearly in depth, and a
// post-norm stream keeps unit rms. Every run is in float64.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <type_traits>
#include <vector>

#include "gradscope/engine/engine.hpp"
#include "gradscope/io/config.hpp"

namespace gradscope {
namespace {

// Appends its pieces (std::string, literals or numbers) into one string.
template <class... Parts>
std::string cat(const Parts&... parts) {
  std::string out;
  const auto append = [&out](const auto& part) {
    if constexpr (std::is_arithmetic_v<std::decay_t<decltype(part)>>) {
      out += std::to_string(part);
    } else {
      out += part;
    }
  };
  (append(parts), ...);
  return out;
}

// A float64 run of `layers` (a JSON array) on a (width, batch, tokens) Gaussian input.
Report run(int width, int batch, int tokens, int seed, const std::string& layers,
           RunData* save = nullptr) {
  const std::string json =
      cat(R"({"seed": )", seed, R"(, "precision": "float64", "input": {"width": )", width,
          R"(, "batch": )", batch, R"(, "tokens": )", tokens, R"(}, "layers": )", layers, "}");
  RunOptions options;
  options.save = save;
  return run_diagnostic(parse_run_spec(json, "theory.json", "theory"), options);
}

// An attention item whose queries are zero (every logit 0: uniform rows), with value and output
// weights gain * a Haar orthogonal matrix, so that ||W_o W_v m|| = gain^2 ||m|| exactly.
std::string zero_query_attention(int heads, bool causal, double gain) {
  const std::string orth = cat(R"({"name": "orthogonal", "gain": )", gain, "}");
  return cat(R"({"attention": {"heads": )", heads, R"(, "causal": )", causal ? "true" : "false",
             R"(, "init": {"query": "zeros", "value": )", orth, R"(, "output": )", orth, "}}}");
}

// The reported layers of one kind, in order.
std::vector<const LayerReport*> layers_of(const Report& r, OpKind kind) {
  std::vector<const LayerReport*> out;
  for (const LayerReport& l : r.layers) {
    if (l.kind == kind) out.push_back(&l);
  }
  return out;
}

// The mean token's power per unit, (1 / (B d)) sum_b ||m_b||^2, from an op's statistics: summing
// ||y_bt||^2 = ||y_bt - m_b||^2 + ||m_b||^2 + 2 (y_bt - m_b).m_b over t kills the cross term, so
// rms^2 = centered_rms^2 + that power.
double mean_token_power(const ForwardStats& f) {
  return f.act.rms * f.act.rms - f.token_centered_rms * f.token_centered_rms;
}

// Each example's mean token m_b of a (d, B T) matrix, example-major columns.
Eigen::MatrixXd mean_tokens(const Eigen::MatrixXd& x, int tokens) {
  const Eigen::Index examples = x.cols() / tokens;
  Eigen::MatrixXd m(x.rows(), examples);
  for (Eigen::Index b = 0; b < examples; ++b)
    m.col(b) = x.middleCols(b * tokens, tokens).rowwise().mean();
  return m;
}

// The saved (4d, d) weights of the attention ops, in order.
std::vector<Eigen::MatrixXd> attention_weights(const RunData& data, int d) {
  std::vector<Eigen::MatrixXd> out;
  for (const Eigen::MatrixXd& w : data.weight) {
    if (w.rows() == 4 * d && w.cols() == d) out.push_back(w);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// a. Residual attention-only blocks with zero queries: y_t = x_t + beta W_o W_v m.

TEST(TransformerTheory, TokenStatisticsSplitTheRmsIntoCentredAndMeanTokenParts) {
  const int d = 32, batch = 3, tokens = 5;
  RunData data;
  const Report r = run(d, batch, tokens, 4, R"([{"activation": "linear"}])", &data);
  const ForwardStats& f = r.layers.at(0).forward;
  const Eigen::MatrixXd& x = data.input;
  const Eigen::MatrixXd m = mean_tokens(x, tokens);
  double centered = 0.0;
  for (Eigen::Index c = 0; c < x.cols(); ++c)
    centered += (x.col(c) - m.col(c / tokens)).squaredNorm();
  const double n = static_cast<double>(x.size());
  // Sums of a few hundred doubles of order 1: rounding is far below 1e-13 relative.
  EXPECT_NEAR(f.act.rms, std::sqrt(x.squaredNorm() / n), 1e-13);
  EXPECT_NEAR(f.token_centered_rms, std::sqrt(centered / n), 1e-13);
  EXPECT_NEAR(mean_token_power(f), m.squaredNorm() / (batch * d), 1e-13);
}

TEST(TransformerTheory, ZeroQueriesGiveEntropyLnTAndTheMeanTokenEvolvesAlone) {
  const int d = 64, batch = 4, tokens = 16, blocks = 6;
  const double beta = 0.75, gain = 1.2;  // sigma = gain^2 = 1.44
  RunData data;
  const Report r =
      run(d, batch, tokens, 11,
          cat(R"([{"activation": "linear"}, {"repeat": )", blocks, R"(, "residual": {"scale": )",
              beta, R"(}, "block": [)", zero_query_attention(4, false, gain), "]}]"),
          &data);
  const ForwardStats& input = r.layers.at(0).forward;
  const auto attention = layers_of(r, OpKind::kAttention);
  const auto residual = layers_of(r, OpKind::kResidualEnd);
  ASSERT_EQ(attention.size(), static_cast<std::size_t>(blocks));
  ASSERT_EQ(residual.size(), static_cast<std::size_t>(blocks));
  const std::vector<Eigen::MatrixXd> w = attention_weights(data, d);
  ASSERT_EQ(w.size(), static_cast<std::size_t>(blocks));

  // The mean token by the closed form m <- m + beta W_o W_v m, from the saved input and weights.
  Eigen::MatrixXd m = mean_tokens(data.input, tokens);
  double power_in = mean_token_power(input);
  for (int l = 0; l < blocks; ++l) {
    const ForwardStats& a = attention[static_cast<std::size_t>(l)]->forward;
    const ForwardStats& y = residual[static_cast<std::size_t>(l)]->forward;
    // Every logit is exactly 0, so each row is exactly 1/T; -sum (1/T) ln(1/T) rounds in the
    // last bits only.
    EXPECT_NEAR(a.attention_entropy, std::log(tokens), 1e-14) << "block " << l;
    EXPECT_EQ(a.attention_peaked_fraction, 0.0);
    // Attention's output is W_o W_v m_b for every token: identical tokens up to the rounding of
    // the product (relative 1e-16 of the tokens' size).
    EXPECT_NEAR(a.token_mean_cosine, 1.0, 1e-13) << "block " << l;
    EXPECT_LT(a.token_centered_rms, 1e-13 * a.act.rms) << "block " << l;
    // ||W_o W_v m|| = gain^2 ||m|| exactly for orthogonal W_v, W_o of that gain; the two powers
    // come from sums of ~1000 squares (relative rounding ~1e-15).
    EXPECT_NEAR(a.act.rms * a.act.rms / (std::pow(gain, 4) * power_in), 1.0, 1e-12)
        << "block " << l;
    // Adding the same vector to every token leaves the centred tokens alone: the only change is
    // the rounding of x_t + c - mean(x + c), relative 1e-16 of |c| (at most ~10x the centred
    // part here).
    EXPECT_NEAR(y.token_centered_rms / input.token_centered_rms, 1.0, 1e-12) << "block " << l;
    const Eigen::MatrixXd wv = w[static_cast<std::size_t>(l)].middleRows(2 * d, d);
    const Eigen::MatrixXd wo = w[static_cast<std::size_t>(l)].bottomRows(d);
    m += beta * (wo * (wv * m));
    power_in = mean_token_power(y);
    // The measured mean-token power is the closed form's, to rounding (differences of squares of
    // order 1: 1e-12 relative).
    EXPECT_NEAR(power_in / (m.squaredNorm() / (batch * d)), 1.0, 1e-12) << "block " << l;
  }
}

TEST(TransformerTheory, MeanTokenPowerGrowsByOnePlusBetaSquaredSigmaSquaredPerBlockOnAverage) {
  // ||m + beta A m||^2 = (1 + beta^2 sigma^2) ||m||^2 + 2 beta m.A m with A = sigma times a Haar
  // rotation, independent of m: the cross term has mean 0, so E[M_L / M_0] = (1 + beta^2
  // sigma^2)^L, 64 at beta = sigma = 1 over 6 blocks.
  const int d = 256, batch = 8, tokens = 8, blocks = 6, seeds = 8;
  const double beta = 1.0;
  double sum = 0.0;
  for (int seed = 1; seed <= seeds; ++seed) {
    const Report r =
        run(d, batch, tokens, seed,
            cat(R"([{"activation": "linear"}, {"repeat": )", blocks,
                R"(, "residual": true, "block": [)", zero_query_attention(4, false, 1.0), "]}]"));
    const auto residual = layers_of(r, OpKind::kResidualEnd);
    sum += mean_token_power(residual.back()->forward) / mean_token_power(r.layers.at(0).forward);
  }
  const double predicted = std::pow(1.0 + beta * beta, blocks);
  // The cross term over a block is 2 beta tr(A S) / tr(S), S = sum_b m_b m_b^T of rank B: its
  // standard deviation is about 2 / sqrt(d B) = 0.044 against 2, so a seed's 6-block ratio
  // spreads by ~5.5% and the mean of 8 by ~2%: 8% is four spreads.
  EXPECT_NEAR(sum / seeds / predicted, 1.0, 0.08) << "mean growth " << sum / seeds;
}

// ---------------------------------------------------------------------------------------------
// b. Attention alone (no skip): one block makes every token the mean.

TEST(TransformerTheory, WithoutTheSkipOneBlockCollapsesTheTokensToTheirMean) {
  const int d = 64, batch = 4, tokens = 16, blocks = 4;
  const Report r = run(d, batch, tokens, 5,
                       cat(R"([{"activation": "linear"}, {"repeat": )", blocks, R"(, "block": [)",
                           zero_query_attention(4, false, 1.0), "]}]"));
  const double power = mean_token_power(r.layers.at(0).forward);
  const auto attention = layers_of(r, OpKind::kAttention);
  ASSERT_EQ(attention.size(), static_cast<std::size_t>(blocks));
  for (const LayerReport* a : attention) {
    const ForwardStats& f = a->forward;
    // Identical tokens up to the rounding of the averaging product.
    EXPECT_NEAR(f.token_mean_cosine, 1.0, 1e-13) << "layer " << a->index;
    EXPECT_LT(f.token_centered_rms, 1e-13 * f.act.rms) << "layer " << a->index;
    // Orthogonal W_v, W_o of gain 1 keep ||m||: the rms is the input's mean-token rms (sums of
    // squares rounded at 1e-15 relative).
    EXPECT_NEAR(f.act.rms * f.act.rms / power, 1.0, 1e-12) << "layer " << a->index;
    EXPECT_NEAR(f.attention_entropy, std::log(tokens), 1e-14);
  }
}

// ---------------------------------------------------------------------------------------------
// c. Pre-norm ReLU FFN blocks: x <- x + W_2 relu(W_1 LN(x)).

TEST(TransformerTheory, PreNormReluStreamGrowsLinearlyInDepth) {
  // LN(x) has ||z||^2 = d var/(var + eps) ~ d; He W_1 (2/d) gives pre-activations of variance 2,
  // so E relu^2 = 1 per hidden unit; W_2 of variance w/H adds E||W_2 r||^2 = w d, uncorrelated
  // with x (W_2 is independent of it): E rms_l^2 = rms_0^2 + l w.
  const int d = 256, hidden = 1024, batch = 16, tokens = 4, blocks = 8, seeds = 8;
  const double w = 0.5;
  std::vector<double> mean_growth(blocks, 0.0);
  for (int seed = 1; seed <= seeds; ++seed) {
    const Report r =
        run(d, batch, tokens, 20 + seed,
            cat(R"([{"activation": "linear"}, {"repeat": )", blocks,
                R"(, "residual": true, "block": [{"norm": "layer_norm"}, {"width": )", hidden,
                R"(, "activation": "relu", "init": "he_normal"}, {"width": )", d,
                R"(, "activation": "linear", "init": {"name": "variance", "weight_var": )", w,
                "}}]}]"));
    const double rms0 = r.layers.at(0).forward.act.rms;
    const auto residual = layers_of(r, OpKind::kResidualEnd);
    ASSERT_EQ(residual.size(), static_cast<std::size_t>(blocks));
    for (int l = 0; l < blocks; ++l) {
      const double rms = residual[static_cast<std::size_t>(l)]->forward.act.rms;
      mean_growth[static_cast<std::size_t>(l)] += (rms * rms - rms0 * rms0) / seeds;
    }
  }
  for (int l = 0; l < blocks; ++l) {
    // A seed's l-block growth spreads by about 4% (a third of relu's power, 1/pi, lies along one
    // direction whose image under W_2 fluctuates by sqrt(2/d) = 9%, plus the cross term with the
    // stream's mean token; 4.0% measured over 160 seeds, whose mean is within 1% of l w at
    // every l); the mean of 8 seeds spreads by 1.4%: 6% is four spreads.
    EXPECT_NEAR(mean_growth[static_cast<std::size_t>(l)] / ((l + 1) * w), 1.0, 0.06)
        << "block " << l + 1;
  }
}

// ---------------------------------------------------------------------------------------------
// d. Post-norm: norm(x + F(x)) has rms^2 = mean over tokens of var / (var + eps).

TEST(TransformerTheory, PostNormOutputsHaveUnitRms) {
  const int d = 128, batch = 8, tokens = 4, blocks = 6;
  const Report r =
      run(d, batch, tokens, 8,
          cat(R"([{"repeat": )", blocks,
              R"(, "residual": {"placement": "post_norm", "norm": "layer_norm"}, "block": [
                  {"width": 512, "activation": "relu", "init": "he_normal"}, {"width": )",
              d, R"(, "activation": "linear", "init": "xavier_normal"}]}])"));
  const auto norms = layers_of(r, OpKind::kNorm);
  ASSERT_EQ(norms.size(), static_cast<std::size_t>(blocks));
  for (const LayerReport* n : norms) {
    const ForwardStats& f = n->forward;
    // Each token's var is about 1 + Var(F) > 1/2 (a unit-variance x plus a nearly uncorrelated
    // F), so 1 - rms^2 = mean eps / (var + eps) lies in [0, 2 eps], eps = 1e-5; the rounding of
    // the normalisation is 1e-15.
    const double deficit = 1.0 - f.act.rms * f.act.rms;
    EXPECT_GT(deficit, -1e-14) << "layer " << n->index;
    EXPECT_LT(deficit, 2e-5) << "layer " << n->index;
    // Every token has zero mean, so the whole batch does (rounding of d sums: 1e-15).
    EXPECT_NEAR(f.act.mean, 0.0, 1e-14) << "layer " << n->index;
  }
}

// ---------------------------------------------------------------------------------------------
// e. Causal attention with zero queries: row t is uniform over t + 1 keys.

TEST(TransformerTheory, CausalZeroQueriesGiveTheMeanOfLnTPlusOne) {
  const int d = 32, batch = 2, tokens = 12;
  const Report r = run(d, batch, tokens, 9,
                       cat(R"([{"repeat": 2, "residual": true, "block": [)",
                           zero_query_attention(2, true, 1.0), "]}]"));
  // (1/T) sum_{t=1..T} ln t = ln(T!) / T.
  const double expected = std::lgamma(tokens + 1.0) / tokens;
  const auto attention = layers_of(r, OpKind::kAttention);
  ASSERT_EQ(attention.size(), 2U);
  for (const LayerReport* a : attention) {
    // Weights 1/(t+1) rounded to the last bit, summed over 12 keys and 48 rows: 1e-14.
    EXPECT_NEAR(a->forward.attention_entropy, expected, 1e-14) << "layer " << a->index;
    // Row 0 sees one key and is not counted; every other row spreads 1/(t+1) <= 1/2 per key.
    EXPECT_EQ(a->forward.attention_peaked_fraction, 0.0);
  }
}

}  // namespace
}  // namespace gradscope
