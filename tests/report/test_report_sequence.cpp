// The text, Markdown and HTML reports of a real small transformer run: the batch of sequences in
// the header, the token statistics in the layer table, the attention section beside the uniform
// entropy, the per-parameter table with its elision, and the two charts; and none of it in the
// report of a stack of dense layers.
#include <gtest/gtest.h>

#include <cmath>
#include <cstddef>
#include <sstream>
#include <string>
#include <vector>

#include "gradscope/engine/engine.hpp"
#include "gradscope/io/config.hpp"
#include "gradscope/report/html.hpp"
#include "gradscope/report/report_md.hpp"
#include "gradscope/report/report_text.hpp"
#include "xml_check.hpp"

namespace gradscope {
namespace {

// Two pre-norm blocks of causal attention (4 heads) and a GELU MLP over 8 tokens of width 32,
// with Adam for the update column.
const Report& transformer_run() {
  static const Report r = run_diagnostic(parse_run_spec(R"({
    "name": "tiny-transformer", "seed": 3, "input": {"width": 32, "batch": 4, "tokens": 8},
    "layers": [{"transformer": {"blocks": 2, "heads": 4}}],
    "optimizer": "adam"
  })",
                                                        "tiny-transformer.json", "tiny"));
  return r;
}

// One attention op without a mask over 16 tokens, no optimizer.
const Report& full_attention_run() {
  static const Report r = run_diagnostic(parse_run_spec(R"({
    "name": "full-attention", "seed": 5, "input": {"width": 16, "batch": 3, "tokens": 16},
    "layers": [{"attention": {"heads": 2, "causal": false}}]
  })",
                                                        "full.json", "full"));
  return r;
}

const Report& dense_run() {
  static const Report r = run_diagnostic(parse_run_spec(R"({
    "name": "dense", "seed": 1, "input": {"width": 16, "batch": 8},
    "stack": {"depth": 4, "width": 16, "activation": "tanh", "init": "xavier_normal"}
  })",
                                                        "dense.json", "dense"));
  return r;
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

// The index of the first line that starts with `prefix` after leading blanks, at or after `from`;
// the number of lines when there is none.
std::size_t find_line(const std::vector<std::string>& lines, const std::string& prefix,
                      std::size_t from = 0) {
  for (std::size_t i = from; i < lines.size(); ++i) {
    const std::size_t at = lines[i].find_first_not_of(' ');
    if (at != std::string::npos && lines[i].compare(at, prefix.size(), prefix) == 0) return i;
  }
  return lines.size();
}

std::vector<std::string> fields(const std::string& line) {
  std::istringstream in(line);
  std::vector<std::string> out;
  for (std::string f; in >> f;) out.push_back(f);
  return out;
}

std::vector<const LayerReport*> attention_ops(const Report& r) {
  std::vector<const LayerReport*> ops;
  for (const LayerReport& l : r.layers) {
    if (l.kind == OpKind::kAttention) ops.push_back(&l);
  }
  return ops;
}

// The reports print three significant digits (two decimals for a cosine): a value read back is
// within half a unit of its last printed digit.
void expect_printed(const std::string& printed, double value, double half_unit) {
  EXPECT_NEAR(std::stod(printed), value, half_unit) << printed;
}
double three_digits(double v) { return 5e-3 * std::abs(v) + 1e-12; }

TEST(SequenceText, HeaderSaysTheTokens) {
  const std::vector<std::string> lines = lines_of(report_to_text(transformer_run()));
  const std::size_t at = find_line(lines, "precision");
  ASSERT_LT(at, lines.size());
  EXPECT_TRUE(contains(lines[at], "| batch 4 x 8 tokens")) << lines[at];
}

TEST(SequenceText, LayerTableShowsEachOpsTokenStatistics) {
  const Report& r = transformer_run();
  const std::string text = report_to_text(r);
  const std::vector<std::string> lines = lines_of(text);
  for (const std::string& line : lines) EXPECT_LE(line.size(), 120u) << line;
  const std::size_t head = find_line(lines, "layer  width");
  ASSERT_LT(head, lines.size());
  EXPECT_TRUE(contains(lines[head - 1], "tokens")) << lines[head - 1];
  const std::vector<std::string> names = fields(lines[head]);
  // layer width activation act rms zero % dead sat % cos crms measured gain upd/w ...
  ASSERT_GE(names.size(), 13u);
  EXPECT_EQ(names[10], "cos");
  EXPECT_EQ(names[11], "crms");
  EXPECT_EQ(names[12], "measured");
  EXPECT_FALSE(contains(lines[head], "corr"));
  EXPECT_FALSE(contains(lines[head], "theory"));
  // Each row's cos and crms: the two fields after sat %, counted from the end of the kind label
  // (an attention op's "attn 4h causal" is three words).
  for (std::size_t k = 0; k < r.layers.size(); ++k) {
    const LayerReport& l = r.layers[k];
    ASSERT_TRUE(l.forward.has_tokens);
    const std::vector<std::string> row = fields(lines[head + 1 + k]);
    ASSERT_EQ(row[0], std::to_string(l.index));
    const std::size_t label_words = l.kind == OpKind::kAttention ? 3 : 1;
    const std::size_t cos_at = 2 + label_words + 4;  // after act rms, zero %, dead, sat %
    expect_printed(row[cos_at], l.forward.token_mean_cosine, 0.005 + 1e-12);
    expect_printed(row[cos_at + 1], l.forward.token_centered_rms,
                   three_digits(l.forward.token_centered_rms));
  }
  const std::size_t cos_line = find_line(lines, "tokens cos:");
  ASSERT_LT(cos_line, lines.size());
  EXPECT_TRUE(contains(lines[cos_line], "rank collapse"));
  EXPECT_LT(find_line(lines, "tokens crms:"), lines.size());
  EXPECT_EQ(find_line(lines, "corr:"), lines.size());
}

TEST(SequenceText, AttentionSectionHasOneRowPerOpBesideTheUniformEntropy) {
  const Report& r = transformer_run();
  const std::vector<std::string> lines = lines_of(report_to_text(r));
  const std::vector<const LayerReport*> ops = attention_ops(r);
  ASSERT_EQ(ops.size(), 2u);
  // Causal rows over 8 tokens: query t sees t + 1 keys, and the mean over t of ln(t + 1) is
  // ln(8!) / 8 = ln(40320) / 8 = 1.3257.
  const double uniform = std::log(40320.0) / 8.0;
  const std::size_t title = find_line(lines, "attention (2 ops, 8 tokens");
  ASSERT_LT(title, lines.size());
  EXPECT_TRUE(contains(lines[title], "causal, mean over queries t of ln(t + 1) = 1.33"))
      << lines[title];
  const std::size_t head = title + 1;
  EXPECT_EQ(fields(lines[head]).front(), "layer");
  EXPECT_TRUE(contains(lines[head], "max logit"));
  for (std::size_t k = 0; k < ops.size(); ++k) {
    const ForwardStats& f = ops[k]->forward;
    const std::vector<std::string> row = fields(lines[head + 1 + k]);
    ASSERT_GE(row.size(), 7u);
    EXPECT_EQ(row[0], std::to_string(ops[k]->index));
    EXPECT_EQ(row[1], "4");
    EXPECT_EQ(row[2], "causal");
    expect_printed(row[3], f.attention_entropy, three_digits(f.attention_entropy));
    expect_printed(row[4], uniform, three_digits(uniform));
    expect_printed(row[5], f.attention_max_logit, three_digits(f.attention_max_logit));
    expect_printed(row[6], 100.0 * f.attention_peaked_fraction, 0.05 + 1e-12);
    // A row's entropy is at most its uniform value, so the mean over rows is too; at
    // initialisation the rows are spread out, far from one-hot.
    EXPECT_LE(f.attention_entropy, uniform + 1e-9);
    EXPECT_GT(f.attention_entropy, 0.5 * uniform);
  }
  const std::size_t entropy = find_line(lines, "entropy:");
  ASSERT_LT(entropy, lines.size());
  EXPECT_TRUE(contains(lines[entropy], "entropy collapse"));
  EXPECT_TRUE(contains(lines[entropy + 1], "rank collapse"));
  EXPECT_LT(find_line(lines, "max logit:"), lines.size());
}

TEST(SequenceText, FullMaskUniformEntropyIsLnT) {
  const Report& r = full_attention_run();
  const std::vector<std::string> lines = lines_of(report_to_text(r));
  const std::size_t title = find_line(lines, "attention (1 op, 16 tokens");
  ASSERT_LT(title, lines.size());
  EXPECT_TRUE(contains(lines[title], "full mask, ln T = ln 16 = 2.77")) << lines[title];
  EXPECT_FALSE(contains(lines[title], "causal"));
  const std::vector<std::string> row = fields(lines[title + 2]);
  ASSERT_GE(row.size(), 7u);
  EXPECT_EQ(row[2], "full");
  expect_printed(row[4], std::log(16.0), three_digits(std::log(16.0)));
  // No optimizer: the parameter table has no update column.
  const std::size_t params = find_line(lines, "name ");
  ASSERT_LT(params, lines.size());
  EXPECT_FALSE(contains(lines[params], "update"));
}

TEST(SequenceText, ParameterTableListsEveryTensorWithItsRatios) {
  const Report& r = transformer_run();
  const std::vector<std::string> lines = lines_of(report_to_text(r));
  const std::size_t title = find_line(lines, "parameters (");
  ASSERT_LT(title, lines.size());
  EXPECT_EQ(lines[title], "parameters (" + std::to_string(r.parameter_list.size()) +
                              " learned tensors, input side first)");
  const std::vector<std::string> head = fields(lines[title + 1]);
  EXPECT_EQ(head, (std::vector<std::string>{"name", "layer", "shape", "norm", "grad", "norm",
                                            "grad/param", "update"}));
  // 2 blocks x (2 norms x 2 + attention 4 weights + MLP 2 x 2) + final norm x 2 = 26 <= 40 rows.
  ASSERT_EQ(r.parameter_list.size(), 26u);
  for (std::size_t k = 0; k < r.parameter_list.size(); ++k) {
    const ParameterReport& p = r.parameter_list[k];
    const std::string& line = lines[title + 2 + k];
    EXPECT_EQ(line.rfind(p.name + " ", 0), 0u) << line;
    const std::vector<std::string> row = fields(line);
    EXPECT_EQ(row[1], std::to_string(p.layer));
    const std::size_t shape_words = p.stats.shape.size();  // "(64," "64)" or "(64,)"
    const std::size_t norm_at = 2 + shape_words;
    expect_printed(row[norm_at], p.stats.norm, three_digits(p.stats.norm));
    expect_printed(row[norm_at + 1], p.stats.grad_norm.value,
                   three_digits(p.stats.grad_norm.value));
    if (p.stats.norm == 0.0) {
      EXPECT_EQ(row[norm_at + 2], "-") << line;  // a zero bias: no ratio to it
    } else {
      const double ratio = p.stats.grad_norm.value / p.stats.norm;
      expect_printed(row[norm_at + 2], ratio, three_digits(ratio));
    }
    if (p.stats.has_update && p.stats.norm != 0.0) {
      expect_printed(row[norm_at + 3], p.stats.update_to_weight.value,
                     three_digits(p.stats.update_to_weight.value));
    }
  }
  EXPECT_EQ(find_line(lines, "... "), lines.size());  // nothing elided
}

TEST(SequenceText, ParameterTableElidesBeyondRowsAndSaysHowMany) {
  const Report& r = transformer_run();
  TextOptions options;
  options.max_rows = 10;
  const std::vector<std::string> lines = lines_of(report_to_text(r, options));
  const std::size_t title = find_line(lines, "parameters (");
  ASSERT_LT(title, lines.size());
  std::size_t shown = 0, elided = 0;
  for (std::size_t i = title + 2; i < lines.size() && !lines[i].empty(); ++i) {
    if (lines[i].rfind("ops.", 0) == 0) {
      ++shown;
    } else if (lines[i].rfind("  ... ", 0) == 0) {
      const std::vector<std::string> f = fields(lines[i]);
      EXPECT_TRUE(f[2] == "parameter" || f[2] == "parameters") << lines[i];
      elided += static_cast<std::size_t>(std::stoul(f[1]));
    }
  }
  EXPECT_EQ(shown, 10u);
  EXPECT_EQ(shown + elided, r.parameter_list.size());
  // The first and last tensors are always shown.
  EXPECT_LT(find_line(lines, r.parameter_list.front().name + " ", title), lines.size());
  EXPECT_LT(find_line(lines, r.parameter_list.back().name + " ", title), lines.size());
}

TEST(SequenceText, DenseStackHasNoneOfIt) {
  const std::string text = report_to_text(dense_run());
  const std::vector<std::string> lines = lines_of(text);
  const std::size_t precision = find_line(lines, "precision");
  ASSERT_LT(precision, lines.size());
  EXPECT_FALSE(contains(lines[precision], "tokens"));
  EXPECT_TRUE(contains(lines[find_line(lines, "layer  width")], " corr "));
  EXPECT_LT(find_line(lines, "corr:"), lines.size());
  for (const char* word : {"tokens cos", "attention (", "parameters (", "grad/param"}) {
    EXPECT_FALSE(contains(text, word)) << word;
  }
  const std::string md = report_to_markdown(dense_run());
  for (const char* word : {"## Attention", "## Parameters", "tok cos", "tokens"}) {
    EXPECT_FALSE(contains(md, word)) << word;
  }
  const std::string html = report_to_html(dense_run());
  for (const char* word :
       {"<h2>Attention</h2>", "<h2>Parameters</h2>", "Token similarity", "tok cos", "tokens"}) {
    EXPECT_FALSE(contains(html, word)) << word;
  }
}

TEST(SequenceMarkdown, HeaderTableAttentionAndParameters) {
  const Report& r = transformer_run();
  const std::string md = report_to_markdown(r);
  EXPECT_TRUE(contains(md, "| float32 | batch 4 x 8 tokens | loss: probe"));
  EXPECT_TRUE(contains(md, "| sat % | tok cos | tok crms | grad rms (log scale) |"));
  EXPECT_TRUE(contains(md, "\nTok cos: mean cosine between two tokens' outputs"));
  EXPECT_TRUE(contains(md, "\n## Attention\n"));
  EXPECT_TRUE(contains(md, "| layer | heads | mask | entropy | uniform | max logit | peaked % |"));
  for (const LayerReport* l : attention_ops(r)) {
    EXPECT_TRUE(contains(md, "| " + std::to_string(l->index) + " | 4 | causal | ")) << l->index;
  }
  EXPECT_TRUE(contains(md, "\n## Parameters\n"));
  EXPECT_TRUE(contains(md, "| name | layer | shape | norm | grad norm | grad/param | update |"));
  for (const ParameterReport& p : r.parameter_list) {
    EXPECT_TRUE(contains(md, "| `" + p.name + "` | " + std::to_string(p.layer) + " | ")) << p.name;
  }
  // Beyond max_rows tensors: max_rows rows, and the elided rows count the rest.
  MarkdownOptions few;
  few.max_rows = 6;
  std::size_t shown = 0, elided = 0;
  for (const std::string& line : lines_of(report_to_markdown(r, few))) {
    if (line.rfind("| `ops.", 0) == 0) ++shown;
    if (line.rfind("| ... | *", 0) == 0 && contains(line, " tensor")) {
      elided += static_cast<std::size_t>(std::stoul(line.substr(9)));
    }
  }
  EXPECT_EQ(shown, 6u);
  EXPECT_EQ(shown + elided, r.parameter_list.size());
}

TEST(SequenceHtml, PageHasTheChartsAndTablesAndIsWellFormed) {
  const Report& r = transformer_run();
  const std::string html = report_to_html(r);
  const testing::XmlDocument page = testing::parse_xml(html.substr(html.find('\n') + 1));
  ASSERT_TRUE(page.errors.empty());
  // Gradients, activations, units, then token cosine and attention entropy.
  const auto svgs = page.root.find_all("svg");
  ASSERT_EQ(svgs.size(), 5u);
  EXPECT_TRUE(contains(html, "batch 4 x 8 tokens"));
  EXPECT_TRUE(contains(html, "<h2>Token similarity by layer</h2>"));
  EXPECT_TRUE(contains(html, "<h2>Attention</h2>"));
  EXPECT_TRUE(contains(html, "<h2>Parameters</h2>"));
  EXPECT_TRUE(contains(html, "<th>tok cos</th><th>tok crms</th>"));
  EXPECT_FALSE(contains(html, "<th>correlation</th>"));
  // The token chart: one point per op, its cosine as data-y, on an axis from 0 to 1.
  const auto points = [](const testing::XmlElement& e) {
    return e.find_all([](const testing::XmlElement& m) { return m.has_class("point"); });
  };
  std::size_t cosines = 0;
  for (const auto* g : svgs[3]->find_all("g", "series")) {
    for (const auto* m : points(*g)) {
      const double y = std::stod(m->get("data-y"));
      const auto index = static_cast<std::size_t>(std::stod(m->get("data-x")));
      EXPECT_EQ(y, r.layers[index - 1].forward.token_mean_cosine);
      ++cosines;
    }
  }
  EXPECT_EQ(cosines, r.layers.size());
  std::vector<double> ticks;
  for (const auto* t : svgs[3]->find_all([](const testing::XmlElement& e) {
         return e.name == "g" && e.has_class("tick") && e.has_class("y");
       })) {
    ticks.push_back(std::stod(t->get("data-value")));
  }
  ASSERT_FALSE(ticks.empty());
  EXPECT_EQ(ticks.front(), 0.0);
  EXPECT_EQ(ticks.back(), 1.0);
  // The entropy chart: the measured entropy and, dashed, the causal uniform value ln(8!) / 8.
  const auto series = svgs[4]->find_all("g", "series");
  ASSERT_EQ(series.size(), 2u);
  const std::vector<const LayerReport*> ops = attention_ops(r);
  const auto measured = points(*series[0]);
  const auto uniform = points(*series[1]);
  ASSERT_EQ(measured.size(), ops.size());
  ASSERT_EQ(uniform.size(), ops.size());
  for (std::size_t k = 0; k < ops.size(); ++k) {
    EXPECT_EQ(std::stod(measured[k]->get("data-y")), ops[k]->forward.attention_entropy);
    EXPECT_NEAR(std::stod(uniform[k]->get("data-y")), std::log(40320.0) / 8.0, 1e-12);
  }
}

}  // namespace
}  // namespace gradscope
