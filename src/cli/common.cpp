// What several subcommands share: flags that become config overrides (run and sweep), sizes,
// the choice of what stdout gets, and writing a finished result's files (run and compare).
#include <fmt/format.h>

#include <string>

#include "cli/commands.hpp"
#include "gradscope/app/output.hpp"
#include "gradscope/core/error.hpp"
#include "gradscope/engine/engine.hpp"

namespace gradscope {

namespace {

constexpr KeyFlag kKeyFlags[] = {
    {"--name", "name", "report name (default: the config's name, its file stem, or 'default')",
     true},
    {"--seed", "seed", "random seed (non-negative integer)", false},
    {"--precision", "precision", "float32 or float64", true},
    {"--loss", "loss",
     "what the backward pass starts from: probe (a random direction, the default), mse, "
     "sigmoid_bce or softmax_cross_entropy",
     false},
    {"--depth", "stack.depth", "number of hidden layers", false},
    {"--width", "stack.width", "units per hidden layer", false},
    {"--activation", "stack.activation",
     "hidden activation, e.g. relu, gelu, sigmoid (see `gradscope list`)", false},
    {"--init", "stack.init", "weight init, e.g. he_normal, xavier_normal, orthogonal", false},
    {"--bias-init", "stack.bias_init", "bias init: zeros, constant, normal, torch_default", false},
    {"--batch", "input.batch", "examples in the batch", false},
    {"--input-width", "input.width", "width of the input (default: the stack's width)", false},
    {"--jacobian", "stats.jacobian_examples",
     "singular values of the input-output Jacobian at N examples (costs 2 n_0 sum n_l n_(l-1) "
     "flops each; refused above 2e11)",
     false},
    {"--saturation-threshold", "stats.saturation_threshold",
     "saturated when |phi'| < this fraction of the activation's largest slope", false},
};

std::string json_quote(const std::string& s) {
  std::string q = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') q += '\\';
    q += c;
  }
  return q + "\"";
}

}  // namespace

std::span<const KeyFlag> key_flags() { return kKeyFlags; }

std::vector<ConfigOverride> overrides_from(
    const std::vector<std::pair<std::string, std::string>>& flag_values,
    const std::vector<std::string>& sets, const std::vector<std::string>& thresholds) {
  for (const std::string& t : thresholds) {
    const auto eq = t.find('=');
    if (eq == std::string::npos || eq == 0) {
      throw Error("--threshold " + t + ": expected KEY=VALUE",
                  "for example --threshold gradient_warning_decades=3; the README's diagnosis "
                  "section lists the keys");
    }
  }
  std::vector<ConfigOverride> out;
  for (const auto& [flag, value] : flag_values) {
    for (const KeyFlag& k : kKeyFlags) {
      if (flag == k.flag) out.push_back({k.path, k.quote ? json_quote(value) : value, flag});
    }
  }
  for (const std::string& s : sets) {
    const auto eq = s.find('=');
    if (eq == std::string::npos || eq == 0) {
      throw Error("--set " + s + ": expected PATH=VALUE",
                  "for example --set stack.init.gain=0.5 or --set input.distribution=uniform");
    }
    out.push_back({s.substr(0, eq), s.substr(eq + 1), "--set " + s.substr(0, eq)});
  }
  for (const std::string& t : thresholds) {
    const auto eq = t.find('=');
    out.push_back(
        {"diagnosis." + t.substr(0, eq), t.substr(eq + 1), "--threshold " + t.substr(0, eq)});
  }
  return out;
}

std::int64_t memory_budget(const std::string& text) {
  if (text.empty()) return 0;
  const std::optional<std::int64_t> bytes = parse_byte_size(text);
  if (!bytes) {
    throw Error("--memory-budget: \"" + text + "\" is not a size",
                "write a size such as 4GiB, 512M or 2GB (K, M, G, T and KiB .. TiB are powers of "
                "1024; KB, MB, GB, TB powers of 1000)");
  }
  return *bytes;
}

Format stdout_format(Format asked, bool stdout_is_terminal) {
  return asked == Format::kJson || !stdout_is_terminal ? asked : Format::kText;
}

void write_or_print(const std::vector<std::pair<std::filesystem::path, std::string>>& files,
                    const std::function<void()>& print, std::string_view what) {
  try {
    write_files_atomically(files);
  } catch (const Error& e) {
    print();
    throw Error(fmt::format("{}; the {} is printed on stdout instead", e.what(), what), e.hint());
  }
}

}  // namespace gradscope
