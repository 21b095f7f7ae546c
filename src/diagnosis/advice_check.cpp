// --check-advice: each advice re-run and kept only where it helps, and the remedy re-run as a
// whole and without each piece, keeping the smallest set of pieces that does best.
#include <algorithm>
#include <cmath>
#include <map>
#include <optional>
#include <string>
#include <utility>

#include "diagnosis/remedy.hpp"
#include "gradscope/diagnosis/config_edit.hpp"
#include "gradscope/diagnosis/diagnosis.hpp"

namespace gradscope {

namespace {

using diagnosis_detail::kMaxRemedyPieces;
using diagnosis_detail::kRemedyRounds;

std::string changes_key(const std::vector<ConfigChange>& changes) {
  std::string key;
  for (const ConfigChange& c : changes) key += c.path + "=" + c.value + "\n";
  return key;
}

std::vector<std::string> finding_lines(const Report& r) {
  std::vector<std::string> out;
  for (const Finding& g : r.findings) {
    out.push_back(g.code + " (" + std::string(severity_name(g.severity)) +
                  (g.cause.empty() ? "" : ", from " + g.cause) + ")");
  }
  return out;
}

bool has_finding(const Report& r, const std::string& code) {
  for (const Finding& g : r.findings) {
    if (g.code == code) return true;
  }
  return false;
}

// How bad a report is, for comparing remedies: errors, then warnings, counted as root causes.
std::pair<int, int> alarms(const Report& r) {
  int errors = 0, warnings = 0;
  for (const Finding& f : r.findings) {
    if (!f.cause.empty()) continue;
    errors += f.severity == Severity::kError ? 1 : 0;
    warnings += f.severity == Severity::kWarning ? 1 : 0;
  }
  return {errors, warnings};
}

// The re-runs of one check, each network once: the run's spec with a set of edits applied,
// keyed by the edits' spelling (the same text is the same network).
class Runs {
 public:
  Runs(const Report& report, const Rerun& rerun) : report_(report), rerun_(rerun) {}
  const Report& operator()(const std::vector<ConfigEdit>& edits) {
    const std::string key = changes_key(spell_edits(edits));
    auto it = cache_.find(key);
    if (it == cache_.end())
      it = cache_.emplace(key, rerun_(apply_edits(report_.spec, edits))).first;
    return it->second;
  }

 private:
  const Report& report_;
  const Rerun& rerun_;
  std::map<std::string, Report> cache_;
};

// An advice's effect on the finding it is for (the root `f`, or the consequence it names).
AdviceCheck check_one(const Report& report, const Finding& f, FindingCode code,
                      const std::string& target, const Report& after_report) {
  const ProblemMetric before = problem_metric(code, report);
  const ProblemMetric after = problem_metric(code, after_report);
  AdviceCheck check;
  check.metric = std::string(finding_info(code).metric);
  check.before = before.value;
  check.after = after.value;
  check.verdict_after = after_report.verdict;
  check.findings_after = finding_lines(after_report);
  // Gone: a common mistake's finding disappears with the architecture it names (a residual
  // rewrite is no plain deep stack), so for a root with consequences what counts is that
  // they are all gone.
  bool gone = !has_finding(after_report, target);
  if (!finding_info(code).measured && target == f.code && !f.consequences.empty()) {
    // ... and none of its consequences that were errors remains an error.
    for (const Finding& c : report.findings) {
      if (c.cause != f.code || c.severity != Severity::kError) continue;
      for (const Finding& g : after_report.findings) {
        if (g.code == c.code && g.severity == Severity::kError) gone = false;
      }
    }
  }
  // Helped: the finding is gone, or its metric is on the healthy side of its threshold; and
  // the verdict is no worse and no new error appeared.
  bool new_error = false;
  for (const Finding& g : after_report.findings) {
    new_error |= g.severity == Severity::kError && !has_finding(report, g.code);
  }
  check.helped = !new_error && advice_helped(after, gone, report.verdict, after_report.verdict);
  return check;
}

void check_each_advice(Report& report, Runs& run) {
  for (Finding& f : report.findings) {
    std::vector<Advice> kept;
    for (Advice& a : f.advice) {
      // A sentence with no config change (QK-norm, which no config key sets) has nothing to
      // re-run: it stays, unchecked.
      if (a.edits.empty() && a.changes.empty()) {
        kept.push_back(std::move(a));
        continue;
      }
      // The advice's own finding: the root, or the consequence it was given for.
      const std::string& target = a.addresses.empty() ? f.code : a.addresses;
      const std::optional<FindingCode> code = finding_from_name(target);
      if (!code) continue;
      a.check = check_one(report, f, *code, target, run(a.edits));
      if (a.check->helped) {
        kept.push_back(std::move(a));
      } else {
        f.rejected_advice.push_back(std::move(a));
      }
    }
    f.advice = std::move(kept);
  }
}

int popcount(std::size_t m) {
  int c = 0;
  for (; m != 0; m &= m - 1) ++c;
  return c;
}

// The subset of the remedy's pieces (a bit mask) to keep: the whole, each piece alone, and the
// whole without each piece in turn (the last first, a piece going when the rest do at least as
// well without it). The one that leaves the fewest alarms (errors first), with the fewest pieces;
// 0 if none leaves fewer than the network has now. `trial` re-runs a subset.
template <typename Trial>
std::size_t best_subset(const Report& report, std::size_t n, const Trial& trial) {
  const std::size_t full = (std::size_t{1} << std::min(n, kMaxRemedyPieces)) - 1;
  const auto better = [&](std::size_t a, std::size_t b) {
    const auto aa = alarms(*trial(a));
    const auto bb = alarms(*trial(b));
    return aa < bb || (aa == bb && popcount(a) < popcount(b));
  };
  std::size_t best = full;
  if (n > kMaxRemedyPieces) return best;
  for (std::size_t k = 0; k < n; ++k) {
    if (better(std::size_t{1} << k, best)) best = std::size_t{1} << k;
  }
  std::size_t current = full;
  for (std::size_t k = n; k-- > 0;) {
    const std::size_t without = current & ~(std::size_t{1} << k);
    if (without == current) continue;
    if (!(alarms(*trial(current)) < alarms(*trial(without)))) current = without;
  }
  if (better(current, best)) best = current;
  // Nothing at all, if no subset leaves fewer alarms than the network has now.
  if (!(alarms(*trial(best)) < alarms(report))) best = 0;
  return best;
}

// Keeps the pieces of `best`, each with its sentence as composed with the others kept; what a
// dropped piece was for, the rest fix (when the rest made it no worse): they are for it too.
void keep_pieces(Remedy& remedy, std::size_t best, RemedyCheck& check) {
  const std::size_t n = remedy.pieces.size();
  std::vector<RemedyPiece> pieces;
  for (std::size_t k = 0; k < n; ++k) {
    if (best & (std::size_t{1} << k)) {
      RemedyPiece p = remedy.pieces[k];
      if (best < remedy.composition_texts.size() && !remedy.composition_texts[best][k].empty()) {
        p.text = remedy.composition_texts[best][k];  // as composed with the pieces kept
      }
      pieces.push_back(std::move(p));
    } else {
      check.dropped.push_back(remedy.pieces[k].text);
    }
  }
  if (best != 0) {
    for (std::size_t k = 0; k < n; ++k) {
      if (best & (std::size_t{1} << k)) continue;
      for (RemedyPiece& p : pieces) {
        for (const std::string& code : remedy.pieces[k].addresses) {
          if (std::find(p.addresses.begin(), p.addresses.end(), code) == p.addresses.end()) {
            p.addresses.push_back(code);
          }
        }
      }
    }
  }
  remedy.pieces = std::move(pieces);
  remedy.edits = best == 0 ? std::vector<ConfigEdit>{}
                           : (n <= kMaxRemedyPieces ? remedy.compositions[best] : remedy.edits);
  remedy.changes = spell_edits(remedy.edits);
  if (best == 0) remedy.addresses.clear();
}

// What is left may have a fix of its own once the first fixes are in (a plain deep stack's dead
// units show once batch norm is gone): the re-run's own remedy, applied on top, kept when it
// leaves fewer alarms. Two rounds at most. Returns the last re-run kept.
const Report* extend_remedy(Remedy& remedy, const Report* after, Runs& run, RemedyCheck& check) {
  for (int round = 0; round < kRemedyRounds; ++round) {
    if (alarms(*after) == std::pair<int, int>{0, 0}) break;
    if (!after->remedy || after->remedy->pieces.empty()) break;
    const Remedy& next = *after->remedy;
    // The next round's edits replace those at the same key, in place.
    std::vector<ConfigEdit> more = remedy.edits;
    for (const ConfigEdit& e : next.edits) {
      const std::string key = spell_edit(e).path;
      bool replaced = false;
      for (ConfigEdit& o : more) {
        if (spell_edit(o).path == key) {
          o = e;
          replaced = true;
        }
      }
      if (!replaced) more.push_back(e);
    }
    const Report& next_trial = run(more);
    if (!(alarms(next_trial) < alarms(*after))) break;
    for (const RemedyPiece& p : next.pieces) {
      remedy.pieces.push_back(p);
      check.added.push_back(p.text);
      for (const std::string& code : p.addresses) {
        // Found on the re-run: what it fixes there, which this run may not have shown.
        if (std::find(remedy.addresses.begin(), remedy.addresses.end(), code) ==
            remedy.addresses.end()) {
          remedy.addresses.push_back(code);
        }
      }
    }
    remedy.edits = more;
    remedy.changes = spell_edits(more);
    after = &next_trial;
  }
  return after;
}

}  // namespace

bool advice_helped(const ProblemMetric& after, bool finding_gone, Verdict verdict_before,
                   Verdict verdict_after) {
  if (verdict_after > verdict_before) return false;
  if (finding_gone) return true;
  return std::isfinite(after.value) && after.value < after.threshold;
}

void check_advice(Report& report, const Rerun& rerun) {
  Runs run(report, rerun);
  check_each_advice(report, run);
  if (!report.remedy || report.remedy->pieces.empty()) return;

  Remedy& remedy = *report.remedy;
  const std::size_t n = remedy.pieces.size();
  std::map<std::size_t, const Report*> tried;
  const auto trial = [&](std::size_t mask) -> const Report* {
    if (mask == 0) return &report;
    auto it = tried.find(mask);
    if (it != tried.end()) return it->second;
    const Report* r = &run(n <= kMaxRemedyPieces ? remedy.compositions[mask] : remedy.edits);
    tried.emplace(mask, r);
    return r;
  };
  const std::size_t best = best_subset(report, n, trial);
  RemedyCheck check;
  check.verdict_before = report.verdict;
  keep_pieces(remedy, best, check);
  const Report* after = trial(best);
  if (best != 0) after = extend_remedy(remedy, after, run, check);
  check.verdict_after = after->verdict;
  check.findings_after = finding_lines(*after);
  remedy.check = std::move(check);
}

}  // namespace gradscope
