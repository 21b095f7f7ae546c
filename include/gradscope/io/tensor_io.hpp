// Reading the tensors users already have (safetensors weights, NumPy .npy and CSV batches) and
// writing safetensors. Files come from strangers: anything wrong is a gradscope::Error.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace gradscope {

// Element types as a file stores them. Every one converts exactly to double.
// Integer tensors (I64, I32) are read too: a state_dict holds batch norm's num_batches_tracked.
enum class DType : int { kF32, kF64, kF16, kBF16, kI64, kI32 };

// The safetensors spelling: "F32", "F64", "F16", "BF16", "I64", "I32".
std::string_view dtype_name(DType);

struct Tensor {
  std::string name;
  DType dtype = DType::kF64;        // as stored in the file
  std::vector<std::int64_t> shape;  // row-major (C order), as PyTorch/NumPy see it
  std::vector<double> values;       // converted exactly to double (F16/BF16/F32 all fit)
};

// Every reader below validates the whole file before it returns: on a lying or damaged file it
// throws a gradscope::Error (exit code 2) naming the file and the problem, and returns nothing.
// No allocation is sized by a number the file claims before that number has been checked against
// the bytes actually present. Values must be finite: a NaN or Inf is an error naming the tensor
// and the index of the first one.

// safetensors (https://huggingface.co/docs/safetensors): the file `safetensors.torch.save_file`
// writes. Tensors come in the header's order. Like the reference implementation, the tensors'
// bytes must tile the data area exactly: overlaps, holes and trailing bytes are errors.
// `source` names the bytes in messages (usually the path).
std::vector<Tensor> read_safetensors(const std::string& path);
std::vector<Tensor> parse_safetensors(std::string_view bytes, const std::string& source);

// A safetensors file: header keys in the order given ("__metadata__" first when there is any),
// the header padded with spaces so the data starts 8-byte aligned, data little-endian.
// `dtype` must be F32 or F64; values are rounded once to it (a value that overflows F32, NaN or
// Inf is an error). Names must be unique and non-empty; values.size() must match the shape.
std::string safetensors_bytes(
    const std::vector<Tensor>& tensors, DType dtype,
    const std::vector<std::pair<std::string, std::string>>& metadata = {});

// .npy (format versions 1, 2 and 3), as numpy.save writes it: float32 or float64, little-endian
// ('<f4', '<f8'; '|'-less or '=' only when the machine is little-endian), C or Fortran order,
// 1-D or 2-D. The header is read by a small strict parser (nothing is evaluated). Fortran-order
// data is returned in C order. The tensor's name is the file name without its extension.
Tensor read_npy(const std::string& path);
Tensor parse_npy(std::string_view bytes, const std::string& source);

// CSV: rows of numbers separated by commas, every row the same length; an optional first row of
// non-numbers (column names) is skipped, as are blank lines. Returns a 2-D F64 tensor
// (rows, columns) named after the file. Errors name file:line.
Tensor read_csv(const std::string& path);

}  // namespace gradscope
