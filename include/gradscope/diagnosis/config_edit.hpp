// The diagnosis's typed config edits (core/config_edit.hpp) spelled as `--set PATH=VALUE`, and
// applied to a RunSpec directly, as the config reader would apply that `--set` to the config.
#pragma once

#include <string>
#include <vector>

#include "gradscope/core/config_edit.hpp"
#include "gradscope/core/report.hpp"

namespace gradscope {

// The edit as the config key it sets and the value `--set` takes there: a bare name, a number, or
// JSON text for an object or a list ("null" drops a section). The spelling happens here, in the
// diagnosis layer, because diagnose() stores it in the Report for the writers, which sit above;
// the values are names and numbers joined by hand, so no JSON library is needed below io.
ConfigChange spell_edit(const ConfigEdit& edit);
std::vector<ConfigChange> spell_edits(const std::vector<ConfigEdit>& edits);

// The change as a shell argument: "--set PATH=VALUE", with PATH=VALUE in single quotes when VALUE
// holds characters a shell would interpret (JSON objects, spaces, quotes).
std::string set_argument(const ConfigChange& change);

// `spec` with the edits applied in order: the spec the config reader gives for the run's config
// with spell_edits(edits) added as `--set` overrides. The reader's defaults that follow other keys
// are followed here too: a bias that follows its init (torch_default brings its own), and an
// output layer that takes the stack's init and bias. A RunSpec does not record which keys the
// config spelled out, so a value equal to the one it would follow is taken to follow it. Widths
// are left as they are (an input width that follows the first layer's too): no edit changes one.
void apply_edit(const ConfigEdit& edit, RunSpec& spec);
RunSpec apply_edits(RunSpec spec, const std::vector<ConfigEdit>& edits);

}  // namespace gradscope
