// What a run keeps besides the pass's data (each reported op's statistics and its share of the
// reports, the copies of an input read from a file), and the size of the report files on disk:
// counted before the run, so that a run whose report cannot fit is refused before it starts.
#pragma once

#include <cstdint>
#include <filesystem>

#include "gradscope/core/report.hpp"
#include "gradscope/core/spec.hpp"

namespace gradscope {

// The JSON report's bytes per reported op, as written (indented, numbers to 17 digits), its
// entries in the top-level parameter list included: measured 3,690 for a width-1 dense stack
// with the release build (a dense op lists its weight and bias, about 550 bytes more than before
// the list). An attention op lists four to eight tensors, about 1,100 bytes more than a dense op.
// A layer on the stream adds about 100 bytes for its partial Jacobian norm under `criticality`.
inline constexpr double kJsonReportBytesPerOp = 3900.0;
// The JSON document while it is built and printed, over its text: the tree of nodes (a map node,
// a key and a value for each of about 110 numbers an op) and the text growing beside it. Measured
// by counting the heap at the JSON's peak for width-1 stacks of 2,000 and 20,000 layers: 14.0 KB
// per op above the report structures, 4.5 times the 3,135 bytes of text per op.
inline constexpr double kJsonBuildFactor = 4.5;
// Per reported op, what the run holds at its peak (while the JSON report is built): the layer's
// report with its histogram, the op's spec, and the JSON document. 19.6 KB; with the planner's
// 10% allocator slack, 21.6 KB. Measured (before the parameter list and the criticality) on an AMD
// EPYC (2 cores, 23 GiB; Debian 12, g++ 12, glibc 2.36): peak resident memory grew 17.2 KB per op
// from 1,000 to 100,000 width-1 layers (28 MiB, 175 MiB, 1.61 GiB), 18.8 KB per op for width 8,
// batch 8.
inline constexpr double kReportMemoryBytesPerOp =
    static_cast<double>(sizeof(LayerReport) + sizeof(OpSpec)) +
    kActHistogramBins * static_cast<double>(sizeof(std::int64_t)) +
    kJsonBuildFactor * kJsonReportBytesPerOp;

// What a run keeps besides the data of its memory plan: the same under every plan.
struct KeptEstimate {
  std::int64_t reported_ops = 0;
  std::int64_t report_bytes = 0;        // statistics and reports: kReportMemoryBytesPerOp per op
  std::int64_t input_copies_bytes = 0;  // an input from a file, beyond the network's own copy
  std::int64_t total_bytes() const { return report_bytes + input_copies_bytes; }
};

// The ops a report has a row for (every op but residual blocks' opening markers); a stack is
// counted without expanding it.
std::int64_t reported_op_count(const RunSpec& spec);

// What `spec` keeps besides its plan. `file_input_entries`: the entries of an input batch read
// from a file (0: generated), which the run holds in double twice (the values as read, and the
// matrix handed to the engine) beside the network's copy the cache counts.
// `extra_held_bytes`: anything else the caller holds through the run.
KeptEstimate estimate_kept_memory(const RunSpec& spec, std::int64_t file_input_entries = 0,
                                  std::int64_t extra_held_bytes = 0);

// The files a run writes.
struct ReportFiles {
  bool markdown = false;      // --format md: OUT/<name>.md
  bool html = false;          // --format html: OUT/<name>.html
  bool svg = false;           // --svg: three charts
  int max_rows = 40;          // the text report's --max-rows
  bool save_weights = false;  // --save-weights: the weights, the input and the targets
};

// The bytes of those files, estimated from the op count (each file's measured bytes per op, and
// its fixed part): a little over what is written, never a fraction of it.
std::int64_t estimate_report_file_bytes(const RunSpec& spec, const ReportFiles& files);

// Bytes an unprivileged user may still write on the filesystem holding `dir`, or its nearest
// existing parent (statvfs); -1 if unknown.
std::int64_t available_disk_bytes(const std::filesystem::path& dir);

// Throws gradscope::Error (exit code 2) when `bytes` of reports will not fit in the free space of
// `dir` (or its nearest existing parent), naming both. Nothing when the free space is unknown.
void check_disk_space(const std::filesystem::path& dir, std::int64_t bytes);

}  // namespace gradscope
