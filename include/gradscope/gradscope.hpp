// gradscope as a library: one include for the public API of gradscope::core, gradscope::json and
// gradscope::text. Build or read a RunSpec, run_diagnostic() it (measurements, theory, diagnosis),
// and write the Report with report_to_json(), report_to_text() or report_to_markdown(). ONNX is
// <gradscope/onnx_import.hpp>, in gradscope::onnx where gradscope was built with it.
#pragma once

#include "gradscope/activation.hpp"
#include "gradscope/compare.hpp"
#include "gradscope/config.hpp"
#include "gradscope/diagnosis.hpp"
#include "gradscope/engine.hpp"
#include "gradscope/error.hpp"
#include "gradscope/html.hpp"
#include "gradscope/init.hpp"
#include "gradscope/jacobian.hpp"
#include "gradscope/loss.hpp"
#include "gradscope/memory.hpp"
#include "gradscope/network.hpp"
#include "gradscope/norm.hpp"
#include "gradscope/plots.hpp"
#include "gradscope/prediction.hpp"
#include "gradscope/report.hpp"
#include "gradscope/report_json.hpp"
#include "gradscope/report_md.hpp"
#include "gradscope/report_text.hpp"
#include "gradscope/rng.hpp"
#include "gradscope/spec.hpp"
#include "gradscope/stats.hpp"
#include "gradscope/sweep.hpp"
#include "gradscope/tensor_io.hpp"
#include "gradscope/theory.hpp"
#include "gradscope/theory_report.hpp"
#include "gradscope/version.hpp"
#include "gradscope/weights.hpp"
