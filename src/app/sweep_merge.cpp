// Merging a sharded sweep: find the shards' manifests, check that they are one sweep and complete
// and that every run is the run of its config, then write the sweep's directory through the same
// summary writer as the unsharded sweep, so both are the same bytes.
#include <algorithm>
#include <cctype>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "gradscope/app/output.hpp"
#include "gradscope/app/sweep.hpp"
#include "gradscope/core/error.hpp"
#include "gradscope/io/report_json.hpp"
#include "gradscope/io/sweep_json.hpp"
#include "gradscope/report/sweep_text.hpp"
#include "gradscope/version.hpp"

namespace gradscope {

namespace {

namespace fs = std::filesystem;

struct Shard {
  fs::path dir;
  SweepManifest manifest;
};

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// The command that runs shard `index` of the sweep `m` describes (again, keeping finished runs).
std::string shard_command(const SweepManifest& m, int index) {
  std::string cmd = "gradscope sweep";
  if (m.config) cmd += " " + shell_word(*m.config);
  for (const SweepAxis& a : m.axes) {
    std::string values;
    for (const std::string& v : a.values) values += (values.empty() ? "" : ",") + v;
    cmd += " --vary " + shell_word(a.key + "=" + values);
  }
  // A --threshold is a --set of diagnosis.KEY: one form for both.
  for (const ConfigOverride& o : m.overrides) cmd += " --set " + shell_word(o.path + "=" + o.value);
  if (m.seeds != 1) cmd += " --seeds " + std::to_string(m.seeds);
  cmd += " --name " + shell_word(m.name);
  if (m.out_dir != "reports") cmd += " --out " + shell_word(m.out_dir);
  return cmd + " --shard " + std::to_string(index) + "/" + std::to_string(m.shard.count) +
         " --resume";
}

std::string rerun_hint(const SweepManifest& m, int index) {
  return "run shard " + std::to_string(index) +
         " again (its finished runs are kept): " + shard_command(m, index);
}

// "I-of-N", the name a shard's directory has.
bool looks_like_shard_dir(const fs::path& p) {
  const std::string n = p.filename().string();
  const auto of = n.find("-of-");
  const auto digits = [](const std::string& s) {
    return !s.empty() &&
           std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
  };
  return of != std::string::npos && digits(n.substr(0, of)) && digits(n.substr(of + 4));
}

// The sweep directories in `dir`: those whose shards/ holds a shard directory, in name order.
std::vector<fs::path> sweeps_in(const fs::path& dir) {
  std::vector<fs::path> sweeps;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    if (!e.is_directory(ec) || !fs::is_directory(e.path() / "shards", ec)) continue;
    for (const auto& sub : fs::directory_iterator(e.path() / "shards", ec)) {
      if (sub.is_directory(ec) && looks_like_shard_dir(sub.path())) {
        sweeps.push_back(e.path());
        break;
      }
    }
  }
  std::sort(sweeps.begin(), sweeps.end());
  return sweeps;
}

Shard read_shard(const fs::path& dir) {
  const fs::path file = dir / "manifest.json";
  return Shard{dir, sweep_manifest_from_json(read_file(file), file.string())};
}

// The shards the directories hold, and the shard directories without a manifest (unfinished).
void find_shards(const std::vector<std::string>& dirs, std::vector<Shard>& shards,
                 std::vector<fs::path>& unfinished) {
  const std::string what =
      "give the directories `gradscope sweep ... --shard I/N` wrote (OUT/NAME/shards/I-of-N), "
      "their sweep directory OUT/NAME, or OUT when it holds one sweep's";
  std::set<fs::path> seen;
  const auto add = [&](const fs::path& dir) {
    std::error_code ec;
    const fs::path canonical = fs::weakly_canonical(dir, ec);
    if (!seen.insert(ec ? dir : canonical).second) return;  // the same directory named twice
    shards.push_back(read_shard(dir));
  };
  for (const std::string& d : dirs) {
    fs::path dir(d);
    std::error_code ec;
    if (!fs::is_directory(dir, ec)) throw Error(d + ": no such directory", what);
    if (!fs::exists(dir / "manifest.json") && !fs::is_directory(dir / "shards", ec)) {
      // The directory the shards were run with as --out: fine when it holds one sweep's.
      const std::vector<fs::path> sweeps = sweeps_in(dir);
      if (sweeps.size() > 1) {
        std::string names;
        for (const fs::path& s : sweeps) names += (names.empty() ? "" : ", ") + s.string();
        throw Error(
            d + " holds the shards of " + std::to_string(sweeps.size()) + " sweeps: " + names,
            "give the directory of the one to merge, e.g. gradscope merge " +
                sweeps.front().string());
      }
      if (sweeps.size() == 1) dir = sweeps.front();
    }
    if (fs::exists(dir / "manifest.json")) {
      add(dir);
    } else if (fs::is_directory(dir / "shards", ec)) {
      std::vector<fs::path> subdirs;
      for (const auto& e : fs::directory_iterator(dir / "shards")) {
        if (e.is_directory()) subdirs.push_back(e.path());
      }
      std::sort(subdirs.begin(), subdirs.end());
      for (const fs::path& sub : subdirs) {
        if (fs::exists(sub / "manifest.json")) {
          add(sub);
        } else {
          unfinished.push_back(sub);
        }
      }
    } else if (looks_like_shard_dir(dir)) {
      throw Error(d + ": no manifest.json, so this shard has not finished",
                  "a shard writes its manifest after its last run; run it again with --resume "
                  "(its finished runs are kept)");
    } else {
      throw Error(d + ": neither a shard directory (no manifest.json) nor a sweep directory "
                      "(no shards/ in it)",
                  what);
    }
  }
  if (shards.empty()) {
    throw Error("no finished shard in " + (dirs.size() == 1 ? dirs.front() : "the directories"),
                unfinished.empty() ? what
                                   : "no shard has finished yet (none wrote its manifest.json); "
                                     "wait for them, or run them again with --resume");
  }
}

std::string join(const std::vector<std::string>& v) {
  std::string out;
  for (const std::string& s : v) out += (out.empty() ? "" : ",") + s;
  return out;
}

std::string describe_overrides(const std::vector<ConfigOverride>& overrides) {
  std::string out;
  for (const ConfigOverride& o : overrides)
    out += (out.empty() ? "" : " ") + o.path + "=" + o.value;
  return out.empty() ? "none" : out;
}

std::string describe_axes(const std::vector<SweepAxis>& axes) {
  std::string out;
  for (const SweepAxis& a : axes) out += (out.empty() ? "" : " ") + a.key + "=" + join(a.values);
  return out.empty() ? "none" : out;
}

// What differs between two shards' sweeps, the first difference found; empty when none.
std::string sweep_difference(const SweepManifest& a, const SweepManifest& b) {
  const auto differs = [](const std::string& what, const std::string& x, const std::string& y) {
    return what + " differ (" + x + " vs " + y + ")";
  };
  if (a.name != b.name) return differs("their names", a.name, b.name);
  if (a.config != b.config) {
    return differs("their config files", a.config.value_or("<default>"),
                   b.config.value_or("<default>"));
  }
  if (a.config_text != b.config_text) {
    return "their config files' contents differ (the file " + a.config.value_or("<default>") +
           " was edited between the shards, or differs between machines)";
  }
  const auto same_overrides = [](const std::vector<ConfigOverride>& x,
                                 const std::vector<ConfigOverride>& y) {
    return std::equal(x.begin(), x.end(), y.begin(), y.end(), [](const auto& p, const auto& q) {
      return p.path == q.path && p.value == q.value;
    });
  };
  if (!same_overrides(a.overrides, b.overrides)) {
    return differs("their --set and --threshold values", describe_overrides(a.overrides),
                   describe_overrides(b.overrides));
  }
  const auto same_axes = [](const std::vector<SweepAxis>& x, const std::vector<SweepAxis>& y) {
    return std::equal(x.begin(), x.end(), y.begin(), y.end(), [](const auto& p, const auto& q) {
      return p.key == q.key && p.path == q.path && p.values == q.values;
    });
  };
  if (!same_axes(a.axes, b.axes)) {
    return differs("their --vary axes", describe_axes(a.axes), describe_axes(b.axes));
  }
  if (a.seeds != b.seeds) {
    return differs("their --seeds", std::to_string(a.seeds), std::to_string(b.seeds));
  }
  if (a.runs_total != b.runs_total) {
    return differs("their run counts", std::to_string(a.runs_total), std::to_string(b.runs_total));
  }
  return {};
}

// The request the shards ran, rebuilt from a manifest (the config from its recorded text).
SweepRequest request_of(const SweepManifest& m) {
  SweepRequest req;
  req.config = m.config;
  req.config_text = m.config_text;
  req.overrides = m.overrides;
  req.axes = m.axes;
  req.seeds = m.seeds;
  req.name = m.name;
  req.out_dir = m.out_dir;
  // The shards ran the grid, with --max-points when it is above the cap: as many points as the
  // manifests say they ran (each manifest's runs are checked against the grid below).
  if (m.seeds > 0 && m.runs_total > 0) {
    req.max_points = std::max<std::uint64_t>(kMaxSweepPoints,
                                             static_cast<std::uint64_t>(m.runs_total / m.seeds));
  }
  return req;
}

}  // namespace

namespace {

// One sweep, one version, one N: every manifest against the first.
void check_one_sweep(const std::vector<Shard>& shards) {
  const Shard& first = shards.front();
  const std::string first_file = (first.dir / "manifest.json").string();
  for (const Shard& s : shards) {
    const std::string file = (s.dir / "manifest.json").string();
    if (s.manifest.version != kVersion) {
      throw Error(file + ": written by gradscope " + s.manifest.version + ", this is gradscope " +
                      kVersion + " (runs of two versions may differ)",
                  "merge with the gradscope that ran the shards, or delete " + s.dir.string() +
                      " and run that shard again with this one: " +
                      shard_command(s.manifest, s.manifest.shard.index));
    }
    if (s.manifest.shard.count != first.manifest.shard.count) {
      throw Error(file + " is shard " + std::to_string(s.manifest.shard.index) + " of " +
                      std::to_string(s.manifest.shard.count) + ", but " + first_file +
                      " is shard " + std::to_string(first.manifest.shard.index) + " of " +
                      std::to_string(first.manifest.shard.count),
                  "merge the shards of one --shard I/N split only: give their directories "
                  "(OUT/NAME/shards/*-of-N) instead of the sweep's directory, or delete the other "
                  "split's shards");
    }
    const std::string diff = sweep_difference(first.manifest, s.manifest);
    if (!diff.empty()) {
      throw Error(file + " and " + first_file + " are shards of different sweeps: " + diff,
                  "merge the shards of one sweep: every shard must be run with the same config, "
                  "--vary, --set, --threshold, --seeds and --name");
    }
  }
}

// The shards by index, each once and none missing (an unfinished one named in the hint).
std::map<int, const Shard*> shards_by_index(const std::vector<Shard>& shards,
                                            const std::vector<fs::path>& unfinished) {
  const Shard& first = shards.front();
  const int count = first.manifest.shard.count;
  std::map<int, const Shard*> by_index;
  for (const Shard& s : shards) {
    const auto [it, inserted] = by_index.emplace(s.manifest.shard.index, &s);
    if (!inserted) {
      throw Error("shard " + std::to_string(s.manifest.shard.index) + "/" + std::to_string(count) +
                      " is given twice: " + it->second->dir.string() + " and " + s.dir.string(),
                  "give each shard's directory once (delete or leave out the extra copy)");
    }
  }
  std::vector<std::string> missing;
  for (int i = 0; i < count; ++i) {
    if (by_index.count(i) == 0) missing.push_back(std::to_string(i));
  }
  if (!missing.empty()) {
    const int i = std::stoi(missing.front());
    std::string note;
    const std::string name = std::to_string(i) + "-of-" + std::to_string(count);
    for (const fs::path& u : unfinished) {
      if (u.filename() == name) note = " (" + u.string() + " has no manifest.json: not finished)";
    }
    throw Error((missing.size() == 1 ? "shard " : "shards ") + join(missing) + " of " +
                    std::to_string(count) + " missing" + note,
                rerun_hint(first.manifest, i) +
                    (missing.size() > 1 ? "; likewise for the other missing shards" : ""));
  }

  return by_index;
}

// Each shard lists exactly its slice of the plan's runs (run k belongs to shard k mod N).
void check_shard_slices(const SweepPlan& plan, const std::map<int, const Shard*>& by_index,
                        int count) {
  for (const auto& [index, shard] : by_index) {
    std::vector<SweepManifestRun> expected;
    for (const SweepJob& job : plan.jobs) {
      if (sweep_run_in_shard(job.run, shard->manifest.shard)) {
        expected.push_back({job.run, job.point, job.seed_index, job.file});
      }
    }
    const std::vector<SweepManifestRun>& listed = shard->manifest.runs;
    const bool same = std::equal(expected.begin(), expected.end(), listed.begin(), listed.end(),
                                 [](auto& a, auto& b) {
                                   return a.run == b.run && a.point == b.point &&
                                          a.seed_index == b.seed_index && a.file == b.file;
                                 });
    if (!same) {
      throw Error((shard->dir / "manifest.json").string() + ": its runs are not those of shard " +
                      std::to_string(index) + "/" + std::to_string(count) + " (run k belongs to " +
                      "shard k mod N)",
                  "the manifest was edited; delete it and " + rerun_hint(shard->manifest, index));
    }
  }
}

// Every run present, parsing, and the run of its config: the files to write into OUT/NAME.
std::vector<std::pair<fs::path, std::string>> read_runs(const SweepPlan& plan,
                                                        const std::map<int, const Shard*>& by_index,
                                                        int count, const fs::path& out) {
  std::vector<std::pair<fs::path, std::string>> files;
  for (const SweepJob& job : plan.jobs) {
    const SweepShard shard{job.run % count, count};
    const Shard& s = *by_index.at(shard.index);
    const fs::path source = s.dir / job.file;
    const std::string where = " (run " + std::to_string(job.run) + " of the sweep, in shard " +
                              std::to_string(shard.index) + "/" + std::to_string(count) + ")";
    if (!fs::is_regular_file(source)) {
      throw Error(source.string() + ": missing" + where, rerun_hint(s.manifest, shard.index));
    }
    std::string text = read_file(source);
    Report report;
    try {
      report = report_from_json(text, source.string());
    } catch (const Error& e) {
      throw Error(e.what() + where, rerun_hint(s.manifest, shard.index));
    }
    if (!report_is_run_of(report, job.spec)) {
      throw Error(source.string() + ": not the run of point " + std::to_string(job.point) +
                      " seed " + std::to_string(job.seed_index) + " (" +
                      plan.points[static_cast<std::size_t>(job.point)].label + ", run " +
                      std::to_string(job.run) + " of the sweep, in shard " +
                      std::to_string(shard.index) + "/" + std::to_string(count) +
                      "): its config differs",
                  "the file was replaced by another sweep's run; " +
                      rerun_hint(s.manifest, shard.index) + " (--resume runs this one again)");
    }
    files.emplace_back(out / job.file, std::move(text));
  }

  return files;
}

// The sweep's directory may hold these very runs (a merge done before), nothing else.
void check_existing_runs(const fs::path& out,
                         const std::vector<std::pair<fs::path, std::string>>& files) {
  std::error_code ec;
  if (fs::is_directory(out / "runs", ec)) {
    std::map<fs::path, const std::string*> content;
    for (const auto& [path, text] : files) content[path] = &text;
    for (const auto& e : fs::directory_iterator(out / "runs")) {
      if (e.path().extension() != ".json") continue;
      const auto it = content.find(e.path());
      if (it == content.end() || read_file(e.path()) != *it->second) {
        throw Error(
            "sweep directory " + (out / "runs").string() + " already holds " +
                (it == content.end() ? "a run that is not this sweep's: " : "a different run: ") +
                e.path().filename().string(),
            "merge into another --out or --name, or delete " + (out / "runs").string());
      }
    }
  }
}

}  // namespace

SweepResult merge_sweep_shards(const SweepMergeRequest& request) {
  if (request.dirs.empty()) {
    throw Error("merge: no directory given",
                "give the sweep's directory (OUT/NAME) or its shard directories");
  }
  std::vector<Shard> shards;
  std::vector<fs::path> unfinished;
  find_shards(request.dirs, shards, unfinished);

  check_one_sweep(shards);
  const std::map<int, const Shard*> by_index = shards_by_index(shards, unfinished);
  const int count = shards.front().manifest.shard.count;
  // Every run's config, rebuilt from the recorded request; each shard must own its slice.
  SweepRequest req = request_of(shards.front().manifest);
  if (!request.name.empty()) req.name = request.name;
  const SweepPlan plan = plan_sweep(req);
  req.name = plan.name;
  req.out_dir = request.out_dir;
  check_shard_slices(plan, by_index, count);

  // Every run present, parsing, and the run of its config.
  const fs::path out = fs::path(req.out_dir) / plan.name;
  check_writable({out / plan.jobs.front().file, out / "sweep.json"});
  const std::vector<std::pair<fs::path, std::string>> files = read_runs(plan, by_index, count, out);

  // One writer in OUT/NAME at a time (a sweep of the same name, another merge), and nothing left
  // there by a killed one.
  const OutputLock lock(out, "merge", "wait for it, or merge into another --out or --name");
  remove_stale_temps(out);
  remove_stale_temps(out / "runs");

  check_existing_runs(out, files);
  write_files_atomically(files);
  return write_sweep_summary(req, plan);
}

}  // namespace gradscope
