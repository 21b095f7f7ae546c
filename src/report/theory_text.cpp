// The text of `gradscope theory`: what the numbers say, in a few labelled lines, and the phase
// diagram as a table.
#include "gradscope/report/theory_text.hpp"

#include <fmt/format.h>

#include <cmath>

#include "gradscope/core/number_format.hpp"

namespace gradscope {

namespace {

std::string num(double v) {
  if (std::isnan(v)) return "n/a";
  if (std::isinf(v)) return v > 0 ? "infinite" : "-infinite";
  return format_significant(v, 6);
}

// A depth scale in layers; an infinite one with the reason it is infinite.
std::string depth(double xi, const char* why_infinite) {
  if (std::isinf(xi) && xi > 0) return fmt::format("infinite ({})", why_infinite);
  if (std::isnan(xi)) return num(xi);
  return num(xi) + " layers";
}

// The query, its phase and its fixed point q*.
std::string fixed_point_lines(const TheoryReport& r) {
  std::string out;
  const ActivationInfo& info = activation_info(r.query.activation.kind);
  std::string act(info.name);
  if (!info.param_name.empty())
    act += fmt::format(" ({}={})", info.param_name, r.query.activation.param);
  out += fmt::format("mean-field theory: {} with sw2 = {}, sb2 = {}\n", act, num(r.query.sw2),
                     num(r.query.sb2));
  out += fmt::format("  phase                      {}\n", phase_name(r.phase));
  if (!r.fixed_point.exists) {
    out += fmt::format("  fixed point q*             none: {}\n", r.fixed_point.reason);
  } else if (!r.fixed_point.unique) {
    const std::string stays = r.fixed_point.q == r.query.q0
                                  ? fmt::format(", so q stays at q0 = {}", num(r.query.q0))
                                  : std::string();
    out += fmt::format("  fixed point q*             {} (not unique: every q is a fixed point{})\n",
                       num(r.fixed_point.q), stays);
  } else if (r.fixed_point.q == 0.0) {
    out += "  fixed point q*             0 (signals shrink to zero with depth)\n";
  } else {
    out += fmt::format("  fixed point q*             {}\n", num(r.fixed_point.q));
  }
  return out;
}

// chi1, the depth scales and the correlation fixed point c*, where q* defines them.
std::string scale_lines(const TheoryReport& r) {
  std::string out;
  if (r.has_scales) {
    // Off the critical line but within six digits of 1, show how far: "1" beside "ordered" reads
    // as a contradiction.
    std::string chi1 = num(r.scales.chi1);
    if (chi1 == "1" && r.phase != Phase::kCritical) {
      chi1 = fmt::format("1 {} {:.3g}", r.scales.chi1 < 1.0 ? "-" : "+",
                         std::abs(r.scales.chi1 - 1.0));
    }
    out += fmt::format(
        "  chi1 = sw2 E[phi'^2] at q* {}  (< 1: gradients vanish; > 1: they explode)\n", chi1);
    out += fmt::format("  depth scale xi_c           {}\n",
                       depth(r.scales.xi_c, "critical: chi1 = 1"));
    out += fmt::format("  depth scale xi_q           {}\n",
                       depth(r.scales.xi_q, "the length map's slope at q* is 1"));
  } else {
    out += "  chi1, depth scales, c*     not defined: there is no fixed point q*\n";
  }
  if (r.has_c_star) {
    out += fmt::format("  correlation fixed point c* {}{}\n", num(r.c_star),
                       r.c_star_unique ? ""
                                       : " (not unique: the correlation map is the identity, so "
                                         "every c is kept)");
  } else if (r.has_scales) {
    out +=
        "  correlation fixed point c* not defined: signals shrinking to zero have no correlation\n";
  }
  return out;
}

// Where the edge of chaos and the variance-keeping sw2 lie at this sb2.
std::string critical_lines(const TheoryReport& r) {
  std::string out;
  if (r.critical.exists) {
    // The critical point's own fixed point, labelled so that it is not read as this run's q*.
    const bool here = std::abs(r.critical.sw2 - r.query.sw2) <= 1e-9 * r.query.sw2;
    out += fmt::format("  edge of chaos at this sb2  sw2 = {}{}, {}\n", num(r.critical.sw2),
                       here ? " (this sw2)" : "",
                       r.critical.q_star_unique
                           ? fmt::format("with q* = {} at that sw2", num(r.critical.q_star))
                           : std::string("where every q is a fixed point"));
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
  return out;
}

// The phase diagram as a table: a row per sb2, a column per sampled sw2.
std::string phase_table(const TheoryReport& r) {
  std::string out;
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

}  // namespace

std::string theory_to_text(const TheoryReport& r) {
  return fixed_point_lines(r) + scale_lines(r) + critical_lines(r) + phase_table(r);
}

}  // namespace gradscope
