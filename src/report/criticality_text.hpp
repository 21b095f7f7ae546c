// The partial Jacobian norm's verdict in words, shared by the text, Markdown and HTML writers
// (private to src/report/): which law J follows with depth, and a few of its values.
#pragma once

#include <cmath>
#include <string>

#include "gradscope/core/report.hpp"
#include "report/text_format.hpp"

namespace gradscope::text_format {

// One sentence: the law, its parameter, and the growth from the first layer to the last.
inline std::string criticality_sentence(const CriticalityStats& c);

// The same sentence opening with a capital, for a paragraph of its own.
inline std::string criticality_paragraph(const CriticalityStats& c) {
  std::string s = criticality_sentence(c);
  if (!s.empty() && s[0] >= 'a' && s[0] <= 'z') s[0] = static_cast<char>(s[0] - 'a' + 'A');
  return s;
}

inline std::string criticality_sentence(const CriticalityStats& c) {
  if (!c.measured()) return "not measured: " + c.reason + ".";
  // The fitted layers (every one without residual blocks); past an overflow J is NaN.
  const auto fitted = [&](std::size_t i) {
    return c.fitted.empty() || (i < c.fitted.size() && c.fitted[i]);
  };
  std::size_t first = c.apjn.size(), last = c.apjn.size(), points = 0;
  bool overflow = false;
  for (std::size_t i = 0; i < c.apjn.size() && i < c.layers.size(); ++i) {
    if (!fitted(i)) continue;
    ++points;
    if (!std::isfinite(c.apjn[i].log10)) {
      overflow = overflow || first != c.apjn.size();
      continue;
    }
    if (first == c.apjn.size()) first = i;
    last = i;
  }
  if (first == c.apjn.size()) return "not measured: every value overflows.";
  std::string span = format_magnitude(c.growth) + "x from layer " +
                     std::to_string(c.layers[first]) + " to layer " +
                     std::to_string(c.layers[last]);
  if (!c.fitted.empty()) {
    span += " (fitted where the stream enters each residual block and leaves the last, " +
            std::to_string(points) + " layers)";
  }
  if (overflow) {
    span += " (the forward values overflow after it: not measured past layer " +
            std::to_string(c.layers[last]) + ")";
  }
  switch (c.fit) {
    case ApjnFit::kPowerLaw:
      return "power law (critical): J goes as l^" + format_number(c.power_exponent) + ", " + span +
             "; an exponential fits worse (rate " + format_number(c.exponential_rate) +
             " per layer).";
    case ApjnFit::kExponential: {
      const double per_layer = std::exp(c.exponential_rate);
      // Within a decade over the whole depth the law is exponential but the network is near
      // critical: "chaotic" or "ordered" would alarm a reader of a healthy network.
      const bool mild = c.growth.value > 0.1 && c.growth.value < 10.0;
      const std::string side =
          mild ? (c.exponential_rate > 0.0 ? "mild: perturbations grow slowly"
                                           : "mild: perturbations shrink slowly")
               : (c.exponential_rate > 0.0 ? "chaotic: perturbations grow"
                                           : "ordered: perturbations shrink");
      return "exponential (" + side + "): J x" + format_number(per_layer) + " per layer, " + span +
             "; a power law fits worse (exponent " + format_number(c.power_exponent) + ").";
    }
    case ApjnFit::kNone:
      break;
  }
  return "too few layers to fit a law: " + span + ".";
}

// Up to `count` values, evenly spaced from the first layer to the last: "1: 1.02, 13: 3.1, ...".
inline std::string criticality_samples(const CriticalityStats& c, std::size_t count = 5) {
  std::string out;
  const std::size_t n = c.apjn.size();
  if (n == 0) return out;
  const std::size_t shown = std::min(count, n);
  std::size_t previous = n;
  for (std::size_t k = 0; k < shown; ++k) {
    const std::size_t i = shown == 1 ? 0 : k * (n - 1) / (shown - 1);
    if (i == previous) continue;
    previous = i;
    if (!out.empty()) out += ", ";
    out += std::to_string(c.layers[i]) + ": " + format_magnitude(c.apjn[i]);
  }
  return out;
}

}  // namespace gradscope::text_format
