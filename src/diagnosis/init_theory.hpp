// Mean-field theory of a uniform chain of dense layers, for the init the diagnosis advises: the
// predicted drift of the signal and the gradient, and the weight variance that keeps them steady.
#pragma once

#include <algorithm>
#include <cmath>
#include <string>

#include "diagnosis/measures.hpp"

namespace gradscope::diagnosis_detail {

struct ChainPrediction {
  double grad_decades = 0.0;  // log10 rms(dL/dh first) / rms(dL/dh last)
  double act_decades = 0.0;   // log10 rms(y last) / rms(x)
  double worst() const { return std::max(std::abs(grad_decades), std::abs(act_decades)); }
};

struct InitAdvice {
  bool valid = false;
  double sw2_now = 0.0;
  double sw2 = 0.0;  // the advised sw2 (named inits rounded onto theirs)
  InitSpec spec;     // the advised init
  std::string name;  // how to say it
  ChainPrediction now;
  ChainPrediction advised;
};

// Whether theory's best init is worth advising: predicted healthy, or (for an unbounded
// activation) clearly better than the current one.
bool init_advice_stands(const InitAdvice& init, const Shape& s, const DiagnosisSpec& d);

// A chain prediction in words: "a first-to-last gradient ratio of 4.2e-8 and an output rms 3.0e-8
// of the input's"; never a non-finite number.
std::string chain_words(const ChainPrediction& p);

// The weight variance that keeps both the signal and the gradient closest to constant over the
// hidden layers, and the named init that gives it when one is within 2%; invalid when the network
// is not a uniform chain of dense layers.
InitAdvice theory_init(const Report& r, const Shape& s);

}  // namespace gradscope::diagnosis_detail
