// `gradscope theory`: the mean-field picture of one activation (theory/theory_report.hpp), as text
// or JSON, and its phase diagram as SVG.
#include <filesystem>
#include <string>

#include "cli/commands.hpp"
#include "gradscope/app/output.hpp"
#include "gradscope/core/activation.hpp"
#include "gradscope/core/error.hpp"
#include "gradscope/core/suggest.hpp"

namespace gradscope {

CLI::App* add_theory(CLI::App& app, TheoryArgs& args) {
  CLI::App* theory = app.add_subcommand(
      "theory",
      "Mean-field theory of one activation at a weight variance sw2 and bias variance sb2: the "
      "fixed point q*, chi1, the depth scales xi_q and xi_c, the correlation fixed point, the edge "
      "of chaos, and the sw2 that preserves the input's second moment; --grid for the phase "
      "diagram over sb2.");
  theory->add_option("--activation", args.activation, "the activation, e.g. tanh, relu")
      ->required();
  theory->add_option("--activation-param", args.param,
                     "leaky_relu's slope or elu's alpha (default: the registry's)");
  theory
      ->add_option("--weight-var", args.query.sw2,
                   "sw2: the weight variance times fan-in (He: 2, LeCun/Xavier: 1)")
      ->capture_default_str();
  theory->add_option("--bias-var", args.query.sb2, "sb2: the bias variance")->capture_default_str();
  theory
      ->add_option("--input-second-moment", args.query.q0,
                   "the input's E[x^2] per unit, for the moment-preserving sw2 and the start of "
                   "the length map")
      ->capture_default_str();
  theory->add_flag("--json", args.json, "print JSON instead of text");
  theory->add_flag("--grid", args.query.grid, "also the phase diagram over a range of sb2");
  theory->add_option("--svg", args.svg,
                     "with --grid: write the order-to-chaos phase diagram to this SVG file");
  theory->add_option("--grid-min", args.query.grid_sb2_min, "smallest sb2 of the grid")
      ->capture_default_str();
  theory->add_option("--grid-max", args.query.grid_sb2_max, "largest sb2 of the grid")
      ->capture_default_str();
  theory->add_option("--grid-points", args.query.grid_points, "rows of the grid")
      ->capture_default_str();
  return theory;
}

int do_theory(const TheoryArgs& a, std::ostream& out) {
  const std::optional<Activation> kind = activation_from_name(a.activation);
  if (!kind) {
    const std::optional<std::string> near =
        closest_name(a.activation, activation_names_and_aliases());
    throw Error("--activation: unknown activation \"" + a.activation + "\"",
                (near ? "did you mean \"" + *near + "\"? " : std::string()) +
                    "`gradscope list` shows them all");
  }
  TheoryQuery q = a.query;
  q.activation = default_spec(*kind);
  if (a.param) {
    if (activation_info(*kind).param_name.empty()) {
      throw Error("--activation-param: " + a.activation + " takes no parameter",
                  "only leaky_relu (slope) and elu (alpha) take one");
    }
    q.activation.param = *a.param;
  }
  if (!a.svg.empty() && !q.grid) {
    throw Error("--svg needs --grid", "the phase diagram is drawn from the grid over sb2");
  }
  const TheoryReport r = compute_theory(q);
  if (!a.svg.empty())
    write_files_atomically({{std::filesystem::path(a.svg), write_document(Format::kSvg, r)}});
  out << write_document(a.json ? Format::kJson : Format::kText, r);
  return 0;
}

}  // namespace gradscope
