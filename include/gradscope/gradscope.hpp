// gradscope as a library: one include for the public API of gradscope::core, gradscope::json and
// gradscope::text. Build or read a RunSpec, run_diagnostic() it (measurements, theory, diagnosis),
// and write the Report with report_to_json(), report_to_text() or report_to_markdown(). ONNX is
// <gradscope/io/onnx_import.hpp>, in gradscope::onnx where gradscope was built with it.
#pragma once

#include "gradscope/core/activation.hpp"
#include "gradscope/io/compare.hpp"
#include "gradscope/io/config.hpp"
#include "gradscope/diagnosis/diagnosis.hpp"
#include "gradscope/engine/engine.hpp"
#include "gradscope/core/error.hpp"
#include "gradscope/report/html.hpp"
#include "gradscope/core/init.hpp"
#include "gradscope/theory/jacobian.hpp"
#include "gradscope/core/loss.hpp"
#include "gradscope/engine/memory.hpp"
#include "gradscope/core/network.hpp"
#include "gradscope/core/norm.hpp"
#include "gradscope/report/plots.hpp"
#include "gradscope/theory/prediction.hpp"
#include "gradscope/core/report.hpp"
#include "gradscope/io/report_json.hpp"
#include "gradscope/report/report_md.hpp"
#include "gradscope/report/report_text.hpp"
#include "gradscope/core/rng.hpp"
#include "gradscope/core/spec.hpp"
#include "gradscope/core/stats.hpp"
#include "gradscope/core/sweep.hpp"
#include "gradscope/io/tensor_io.hpp"
#include "gradscope/theory/theory.hpp"
#include "gradscope/theory/theory_report.hpp"
#include "gradscope/version.hpp"
#include "gradscope/io/weights.hpp"
