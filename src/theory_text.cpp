// The text of `gradscope theory`: what the numbers say, in a few labelled lines, and the phase
// diagram as a table.
#include <fmt/format.h>

#include <cmath>

#include "gradscope/theory_report.hpp"

namespace gradscope {

namespace {

std::string num(double v) {
  if (std::isnan(v)) return "n/a";
  if (std::isinf(v)) return v > 0 ? "infinite" : "-infinite";
  return fmt::format("{:.6g}", v);
}

}  // namespace

std::string theory_to_text(const TheoryReport& r) {
  std::string out;
  const ActivationInfo& info = activation_info(r.query.activation.kind);
  std::string act(info.name);
  if (!info.param_name.empty())
    act += fmt::format(" ({}={})", info.param_name, r.query.activation.param);
  out += fmt::format("mean-field theory: {} with sw2 = {}, sb2 = {}\n", act, num(r.query.sw2),
                     num(r.query.sb2));
  out += fmt::format("  phase                      {}\n", phase_name(r.phase));
  if (r.fixed_point.exists) {
    out += fmt::format("  fixed point q*             {}{}\n", num(r.fixed_point.q),
                       r.fixed_point.unique ? "" : " (not unique: every q is a fixed point)");
  } else {
    out += fmt::format("  fixed point q*             none: {}\n", r.fixed_point.reason);
  }
  if (r.has_scales) {
    out +=
        fmt::format("  chi1 = sw2 E[phi'^2] at q* {}  (< 1: gradients vanish; > 1: they explode)\n",
                    num(r.scales.chi1));
    out += fmt::format("  depth scale xi_c           {} layers\n", num(r.scales.xi_c));
    out += fmt::format("  depth scale xi_q           {} layers\n", num(r.scales.xi_q));
    out += fmt::format("  correlation fixed point c* {}\n", num(r.c_star));
  } else if (r.fixed_point.exists) {
    out += "  chi1, depth scales, c*     not defined: the signal collapses to q* = 0\n";
  }
  if (r.critical.exists) {
    out += fmt::format("  edge of chaos at this sb2  sw2 = {} (q* = {})\n", num(r.critical.sw2),
                       num(r.critical.q_star));
  } else {
    out += fmt::format("  edge of chaos at this sb2  none: {}\n", r.critical.reason);
  }
  if (r.preserving.exists) {
    out +=
        fmt::format("  sw2 keeping E[x^2] = {}     {}\n", num(r.query.q0), num(r.preserving.sw2));
  } else {
    out += fmt::format("  sw2 keeping E[x^2] = {}     none: {}\n", num(r.query.q0),
                       r.preserving.reason);
  }
  if (!r.grid.empty()) {
    out += "\nphase diagram (o ordered, c critical, x chaotic, ^ unbounded)\n";
    out += fmt::format("  {:>8}  {:>12}", "sb2", "critical sw2");
    for (const PhaseSample& s : r.grid.front().samples) out += fmt::format("  {:>5}", num(s.sw2));
    out += "\n";
    for (const PhasePoint& p : r.grid) {
      out += fmt::format("  {:>8}  {:>12}", num(p.sb2),
                         p.critical.exists ? num(p.critical.sw2) : "none");
      for (const PhaseSample& s : p.samples) {
        const char* mark = s.phase == Phase::kOrdered    ? "o"
                           : s.phase == Phase::kCritical ? "c"
                           : s.phase == Phase::kChaotic  ? "x"
                                                         : "^";
        out += fmt::format("  {:>5}", mark);
      }
      out += "\n";
    }
  }
  return out;
}

}  // namespace gradscope
