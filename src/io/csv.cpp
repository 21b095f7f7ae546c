// Reads a batch from CSV: rows of comma-separated numbers, an optional first row of column names.
// Every error names file:line, because a CSV is edited by hand and by spreadsheets.
#include <charconv>
#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "gradscope/core/error.hpp"
#include "gradscope/io/tensor_io.hpp"
#include "io/tensor_io_detail.hpp"

namespace gradscope {
namespace {

namespace detail = tensor_io_detail;
using detail::in_quotes;

constexpr std::string_view kCsvHint =
    "each line holds the same number of numbers separated by commas, e.g. 0.5,-1.25,3e-2; only "
    "the first line may hold column names instead";
constexpr std::string_view kUtf8Bom = "\xef\xbb\xbf";  // spreadsheets often write one

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r'))
    s.remove_suffix(1);
  return s;
}

std::vector<std::string_view> split_fields(std::string_view line) {
  std::vector<std::string_view> fields;
  std::size_t begin = 0;
  while (true) {
    const std::size_t comma = line.find(',', begin);
    fields.push_back(trim(line.substr(begin, comma - begin)));
    if (comma == std::string_view::npos) break;
    begin = comma + 1;
  }
  return fields;
}

enum class Parsed { kNumber, kNotANumber, kOutOfRange };

// The whole field must be one number in C syntax ("1", "-2.5", "+3e-4", "nan", "inf"); NaN and
// Inf parse here and are refused by the caller with their own message.
Parsed parse_number(std::string_view field, double& out) {
  if (field.size() > 1 && field[0] == '+' && field[1] != '-' && field[1] != '+') {
    field.remove_prefix(1);  // from_chars does not take a leading '+', as Python's float does
  }
  if (field.empty()) return Parsed::kNotANumber;
  const char* end = field.data() + field.size();
  const std::from_chars_result r = std::from_chars(field.data(), end, out);
  if (r.ptr != end) return Parsed::kNotANumber;
  if (r.ec == std::errc::result_out_of_range) return Parsed::kOutOfRange;
  return r.ec == std::errc() ? Parsed::kNumber : Parsed::kNotANumber;
}

// Why this is long: one pass over a stranger's text, each refusal (ragged row, not a number, out
// of range, too many values) with its own line:column message at the place it is found.
Tensor parse_csv(std::string_view text, const std::string& source) {
  if (text.starts_with(kUtf8Bom)) text.remove_prefix(kUtf8Bom.size());
  const auto fail = [&](std::size_t line, const std::string& what,
                        std::string_view hint = kCsvHint) {
    throw Error(source + ":" + std::to_string(line) + ": " + what, std::string(hint));
  };

  Tensor t;
  t.name = detail::name_from_source(source);
  t.dtype = DType::kF64;
  std::size_t columns = 0;     // fields per line, fixed by the first non-blank line
  std::size_t first_line = 0;  // that line's number
  std::int64_t rows = 0;
  std::size_t line_no = 0;
  std::size_t begin = 0;
  while (begin < text.size()) {
    const std::size_t newline = text.find('\n', begin);
    const std::string_view line = text.substr(
        begin, newline == std::string_view::npos ? std::string_view::npos : newline - begin);
    begin = newline == std::string_view::npos ? text.size() : newline + 1;
    ++line_no;
    if (trim(line).empty()) continue;

    const std::vector<std::string_view> fields = split_fields(line);
    const bool first = columns == 0;
    if (first) {
      columns = fields.size();
      first_line = line_no;
    } else if (fields.size() != columns) {
      fail(line_no, std::to_string(fields.size()) + " fields, but line " +
                        std::to_string(first_line) + " has " + std::to_string(columns));
    }

    // A first line without a single number is the column names.
    if (first) {
      bool any_number = false;
      for (const std::string_view f : fields) {
        double ignored = 0.0;
        any_number = any_number || parse_number(f, ignored) != Parsed::kNotANumber;
      }
      if (!any_number) continue;
    }
    for (std::size_t c = 0; c < fields.size(); ++c) {
      const auto column = [c] { return "column " + std::to_string(c + 1); };
      double v = 0.0;
      switch (parse_number(fields[c], v)) {
        case Parsed::kNotANumber:
          if (fields[c].empty()) fail(line_no, column() + " is empty");
          if (fields[c].find_first_of("\t;") != std::string_view::npos) {
            fail(line_no, column() + ": " + in_quotes(fields[c]) + " is not a number",
                 "separate fields with commas; tabs and semicolons are not separators here");
          }
          fail(line_no, column() + ": " + in_quotes(fields[c]) + " is not a number");
          break;
        case Parsed::kOutOfRange:
          fail(line_no, column() + ": " + in_quotes(fields[c]) +
                            " is outside the range of a double (magnitudes from about 5e-324 to "
                            "1.8e308, or 0)");
          break;
        case Parsed::kNumber:
          if (!std::isfinite(v)) {
            fail(line_no,
                 column() + ": " + detail::non_finite_word(v) + " (index [" + std::to_string(rows) +
                     ", " + std::to_string(c) + "])",
                 "gradscope needs finite inputs: fill or drop the missing values first, e.g. "
                 "df.fillna(0) or df.dropna()");
          }
          t.values.push_back(v);
          break;
      }
    }
    ++rows;
  }
  if (rows == 0) {
    throw Error(source + ": no rows of numbers" +
                    (columns == 0 ? std::string(" (the file is empty)")
                                  : " (line " + std::to_string(first_line) +
                                        " holds no number and was taken for column names)"),
                std::string(kCsvHint));
  }
  t.shape = {rows, static_cast<std::int64_t>(columns)};
  return t;
}

}  // namespace

Tensor read_csv(const std::string& path) {
  return parse_csv(detail::read_file_bytes(path, "CSV file"), path);
}

}  // namespace gradscope
