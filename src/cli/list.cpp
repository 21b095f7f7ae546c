// `gradscope list`: every activation, weight init, bias init and finding code, one line each, from
// their registries.
#include <fmt/format.h>
#include <fmt/ostream.h>

#include <string>

#include "cli/commands.hpp"
#include "gradscope/core/activation.hpp"
#include "gradscope/core/init.hpp"
#include "gradscope/diagnosis/diagnosis.hpp"

namespace gradscope {

CLI::App* add_list(CLI::App& app) {
  return app.add_subcommand(
      "list",
      "Name every activation, weight init, bias init and finding code, one line "
      "each");
}

int do_list(std::ostream& out) {
  fmt::print(out, "Activations (stack.activation, output.activation):\n");
  for (const ActivationInfo& a : activation_table()) {
    std::string name(a.name);
    if (!a.param_name.empty()) name += fmt::format(" ({}={})", a.param_name, a.param_default);
    fmt::print(out, "  {:<24} {}\n", name, a.description);
  }
  fmt::print(out, "  (swish is an alias of silu; softmax is for the output layer only)\n\n");
  fmt::print(out, "Weight inits (stack.init; every init also takes gain):\n");
  for (const InitInfo& i : init_table()) {
    std::string name(i.name);
    if (!i.params.empty()) name += fmt::format(" ({})", i.params);
    fmt::print(out, "  {:<24} {}\n", name, i.description);
    if (!i.citation.empty()) fmt::print(out, "  {:<24} [{}]\n", "", i.citation);
  }
  fmt::print(out, "\nBias inits (stack.bias_init):\n");
  for (const BiasInitInfo& b : bias_init_table()) {
    std::string name(b.name);
    if (!b.params.empty()) name += fmt::format(" ({})", b.params);
    fmt::print(out, "  {:<24} {}\n", name, b.description);
  }
  fmt::print(out, "\nFinding codes (for --fail-on; severities: info, warning, error):\n");
  for (const FindingInfo& f : finding_table()) {
    fmt::print(out, "  {:<30} {}\n", f.name, f.description);
  }
  return 0;
}

}  // namespace gradscope
