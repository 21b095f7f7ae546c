// `gradscope merge`: the shards of a sweep combined into the sweep's directory, byte for byte what
// the unsharded sweep writes, and its summary printed as `sweep` prints it.
#include <algorithm>
#include <filesystem>

#include "cli/commands.hpp"
#include "gradscope/app/coordcheck.hpp"
#include "gradscope/app/output.hpp"
#include "gradscope/core/error.hpp"

namespace gradscope {

CLI::App* add_merge(CLI::App& app, MergeArgs& args) {
  CLI::App* merge = app.add_subcommand(
      "merge",
      "Combine the shards of a sweep (`gradscope sweep ... --shard I/N`) into the sweep's "
      "directory: check that the shards describe one sweep (config, --vary, --set, --seeds, N), "
      "that each shard 0..N-1 is there once and that every run is present, parses and is the run "
      "of its config; then write OUT/NAME/runs/, sweep.json, sweep.txt, sweep.md, sweep.html and "
      "gradients.svg byte for byte as the unsharded sweep would, and print the summary. Errors "
      "name the shard and print the command that repairs it. A coordinate check's shards "
      "(`gradscope coordcheck ... --shard I/N`, in OUT/NAME-PARAM-coordcheck-runs) merge the "
      "same way into the check's result files.");
  merge->add_option("dirs", args.dirs,
                    "shard directories (OUT/NAME/shards/I-of-N, from one machine or copied from "
                    "many), the sweep's directory OUT/NAME whose shards/ holds them all, or OUT "
                    "itself when it holds one sweep's; default: the --out directory");
  merge->add_option("-o,--out", args.out_dir, "directory the sweep's directory goes in")
      ->capture_default_str();
  merge->add_option("--name", args.name,
                    "the sweep's directory name (default: the name the shards were run with)");
  merge
      ->add_option("--format", args.format,
                   "text, json or md on stdout (every one is written to the sweep's directory); "
                   "md prints the text summary on a terminal")
      ->check(CLI::IsMember({"text", "json", "md"}))
      ->capture_default_str();
  merge->add_flag("-q,--quiet", args.quiet, "print nothing on stdout (files are still written)");
  return merge;
}

int do_merge(const MergeArgs& a, std::ostream& out, const CliEnvironment& env) {
  // A coordinate check's shards: its runs directory (or its shards) named, or, without a
  // directory, the one such directory in --out.
  std::vector<std::string> checks;
  for (const std::string& d : a.dirs) {
    if (is_coordcheck_runs_dir(d)) checks.push_back(d);
  }
  if (a.dirs.empty()) {
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(a.out_dir, ec)) {
      const std::string n = e.path().filename().string();
      if (n.size() > 16 && n.ends_with("-coordcheck-runs") &&
          std::filesystem::is_directory(e.path() / "shards", ec) &&
          is_coordcheck_runs_dir(e.path().string())) {
        checks.push_back(e.path().string());
      }
    }
    std::sort(checks.begin(), checks.end());
    if (checks.size() > 1) {
      throw Error(a.out_dir + " holds the shards of " + std::to_string(checks.size()) +
                      " coordinate checks",
                  "give the directory of the one to merge, e.g. gradscope merge " +
                      shell_word(checks.front()));
    }
  } else if (!checks.empty() && checks.size() != a.dirs.size()) {
    throw Error("some of the directories hold a coordinate check's shards and some a sweep's",
                "merge one sweep or one check at a time");
  }
  if (!checks.empty()) return do_coordcheck_merge(a, checks, out, env);
  SweepMergeRequest request;
  // Without a directory, the shards are looked for where the merge writes: the --out the shards
  // were run with.
  request.dirs = a.dirs.empty() ? std::vector<std::string>{a.out_dir} : a.dirs;
  request.out_dir = a.out_dir;
  request.name = a.name;
  print_sweep(merge_sweep_shards(request), a.format, a.quiet, a.out_dir, out, env);
  return 0;
}

}  // namespace gradscope
