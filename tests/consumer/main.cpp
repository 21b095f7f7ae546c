// A program of someone else's: it links the installed gradscope package (find_package(gradscope))
// and diagnoses a network through the public API alone, without the command line. It builds a
// 30-layer sigmoid stack in code, checks it as a config would be checked, runs it, and then
// checks what any user of the library would rely on: the report says the gradient vanishes, the
// JSON and text writers agree with the struct, and the JSON reads back into the same report.
// Exit 0 when all holds.
#include <cmath>
#include <cstdio>
#include <gradscope/gradscope.hpp>
#include <string>

int main() {
  using namespace gradscope;
  RunSpec spec;
  spec.name = "consumer";
  spec.seed = 7;
  spec.input.width = 64;
  spec.input.batch = 64;
  spec.stack.depth = 30;
  spec.stack.layer.width = 64;
  spec.stack.layer.activation = default_spec(Activation::kSigmoid);
  spec.stack.layer.init.kind = Init::kXavierNormal;
  validate_run_spec(spec);  // the same rules a config file passes

  const Report report = run_diagnostic(spec);
  const bool vanishes = report.summary.log10_grad_ratio_first_to_last < -10.0;
  const bool error = report.verdict == Verdict::kError;
  const std::string json = report_to_json(report);
  const std::string text = report_to_text(report);
  const bool written =
      json.find("\"vanishing_gradients\"") != std::string::npos &&
      text.find("vanishing_gradients") != std::string::npos &&
      json.find(std::string("\"version\": \"") + kVersion + "\"") != std::string::npos;
  // Reports in both directions: the JSON read back writes the very same bytes.
  const bool read_back = report_to_json(report_from_json(json, "consumer.json")) == json;
  // A spec the rules refuse is a gradscope::Error, as from a config file.
  bool refused = false;
  try {
    RunSpec bad = spec;
    bad.stack.layer.width = 0;
    validate_run_spec(bad);
  } catch (const Error& e) {
    refused = e.code() == ExitCode::kUsage;
  }
  std::printf("gradscope %s: %zu layers, log10 first/last gradient %.2f, verdict %s\n", kVersion,
              report.layers.size(), report.summary.log10_grad_ratio_first_to_last,
              error ? "error" : "not error");
  if (!(vanishes && error && written && read_back && refused)) {
    std::printf("FAIL: vanishes %d, error %d, written %d, read back %d, refused %d\n", vanishes,
                error, written, read_back, refused);
    return 1;
  }
  return 0;
}
