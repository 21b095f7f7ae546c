// diagnose(): the rules' findings grouped under their root causes, each root's advice, and the
// remedy composed from the roots' fixes.
#include <algorithm>
#include <utility>

#include "diagnosis/advice.hpp"
#include "diagnosis/causes.hpp"
#include "diagnosis/remedy.hpp"
#include "diagnosis/rules.hpp"
#include "gradscope/diagnosis/config_edit.hpp"

namespace gradscope {

namespace {

using namespace diagnosis_detail;

bool more_severe_first(const Finding& a, const Finding& b, FindingCode ca, FindingCode cb) {
  if (a.severity != b.severity) return a.severity > b.severity;
  if (a.layer != b.layer) return a.layer < b.layer;
  return ca < cb;
}

Verdict verdict_of(const std::vector<Finding>& findings) {
  Verdict v = Verdict::kHealthy;
  for (const Finding& f : findings) {
    if (f.severity == Severity::kError) v = Verdict::kError;
    if (f.severity == Severity::kWarning && v == Verdict::kHealthy) v = Verdict::kWarning;
  }
  return v;
}

// The remedy from the roots' fixes: for each root, most severe first, the first of its fixes that
// composes with those already chosen. A learning-rate or optimizer fix is measured on today's
// gradients, which a structural fix changes: it joins only when no structural fix is chosen.
struct RemedyDraft {
  std::vector<Fix> fixes;
  std::vector<std::vector<std::string>> addresses;  // per fix: root codes
  std::vector<std::string> not_addressed;
};

RemedyDraft draft_remedy(const std::vector<Draft>& roots,
                         const std::vector<std::vector<Fix>>& root_fixes) {
  RemedyDraft out;
  bool structural = false;
  for (std::size_t i = 0; i < roots.size(); ++i) {
    for (const Fix& f : root_fixes[i]) structural |= f.structural();
  }
  for (std::size_t i = 0; i < roots.size(); ++i) {
    const Draft& root = roots[i];
    if (root.f.severity == Severity::kInfo) continue;
    bool placed = false;
    for (const Fix& f : root_fixes[i]) {
      if (f.kind == Fix::Kind::kNote) continue;  // a sentence, no change to compose
      if (!f.structural() && structural) continue;
      bool fits = true;
      std::size_t same = out.fixes.size();
      for (std::size_t k = 0; k < out.fixes.size(); ++k) {
        if (same_fix(out.fixes[k], f)) same = k;
        if (conflicts(out.fixes[k], f)) fits = false;
      }
      if (same < out.fixes.size()) {
        out.addresses[same].push_back(root.f.code);
        placed = true;
        break;
      }
      if (!fits) continue;
      out.fixes.push_back(f);
      out.addresses.push_back({root.f.code});
      placed = true;
      break;
    }
    if (!placed) out.not_addressed.push_back(root.f.code);
  }
  return out;
}

// Roots, most severe first: a root is as severe as the worst of its consequences.
std::vector<std::size_t> roots_in_order(std::vector<Draft>& drafts) {
  std::vector<std::size_t> roots;
  for (std::size_t i = 0; i < drafts.size(); ++i) {
    if (drafts[i].cause >= 0) {
      Draft& root = drafts[static_cast<std::size_t>(drafts[i].cause)];
      root.f.severity = std::max(root.f.severity, drafts[i].f.severity);
    } else {
      roots.push_back(i);
    }
  }
  std::stable_sort(roots.begin(), roots.end(), [&](std::size_t a, std::size_t b) {
    return more_severe_first(drafts[a].f, drafts[b].f, drafts[a].code, drafts[b].code);
  });
  return roots;
}

// The consequences of root `ri`, most severe first.
std::vector<std::size_t> consequences_of(const std::vector<Draft>& drafts, std::size_t ri) {
  std::vector<std::size_t> consequences;
  for (std::size_t i = 0; i < drafts.size(); ++i) {
    if (drafts[i].cause == static_cast<int>(ri)) consequences.push_back(i);
  }
  std::stable_sort(consequences.begin(), consequences.end(), [&](std::size_t a, std::size_t b) {
    return more_severe_first(drafts[a].f, drafts[b].f, drafts[a].code, drafts[b].code);
  });
  return consequences;
}

// The root's fixes: its own first, then its consequences' (alternatives, and the only ones when
// the root has none: a dead layer's cut-off gradient), each once. Those not listed under a more
// severe root (`given`) become the root's advice, with the finding each is for.
std::vector<Fix> advise_root(Draft& root, const std::vector<Draft>& drafts,
                             const std::vector<std::size_t>& consequences, const Advisor& advisor,
                             std::vector<Fix>& given) {
  // The metric the rule computed: whether the root's problem shows in the measurements.
  const ProblemMetric& m = root.metric;
  std::vector<std::pair<Fix, std::string>> candidates;
  for (Fix& f : advisor.fixes(root.code, m.value >= m.threshold)) {
    candidates.emplace_back(std::move(f), root.f.code);
  }
  for (std::size_t c : consequences) {
    for (Fix& f : advisor.fixes(drafts[c].code, true)) {
      candidates.emplace_back(std::move(f), drafts[c].f.code);
    }
  }
  std::vector<Fix> fixes;
  for (auto& [f, code] : candidates) {
    bool seen = false;
    for (const Fix& g : fixes) seen |= same_fix(f, g);
    if (seen) continue;
    fixes.push_back(f);
    bool listed = false;
    for (const Fix& g : given) listed |= same_fix(f, g);
    if (listed) continue;  // already listed under a more severe root
    given.push_back(f);
    root.f.advice.push_back(advisor.advice(f, code));
  }
  return fixes;
}

// A remedy piece's sentence: the residual rewrite's names the activation its blocks get from the
// other pieces composed with it.
std::string piece_text(const Advisor& advisor, const std::vector<Fix>& composed, const Fix& f) {
  return f.kind == Fix::Kind::kResidual ? advisor.residual_text(composed) : f.text;
}

Remedy build_remedy(const RemedyDraft& rd, const Advisor& advisor) {
  Remedy remedy;
  for (std::size_t k = 0; k < rd.fixes.size(); ++k) {
    RemedyPiece piece;
    piece.text = piece_text(advisor, rd.fixes, rd.fixes[k]);
    piece.edits = advisor.render({rd.fixes[k]});
    piece.changes = spell_edits(piece.edits);
    piece.addresses = rd.addresses[k];
    for (const std::string& code : piece.addresses) remedy.addresses.push_back(code);
    remedy.pieces.push_back(std::move(piece));
  }
  remedy.edits = advisor.render(rd.fixes);
  remedy.changes = spell_edits(remedy.edits);
  remedy.not_addressed = rd.not_addressed;
  // Every subset composed, for the check's search: at most 2^kMaxRemedyPieces renderings.
  const std::size_t n = std::min(rd.fixes.size(), kMaxRemedyPieces);
  remedy.compositions.resize(std::size_t{1} << n);
  remedy.composition_texts.resize(remedy.compositions.size());
  for (std::size_t mask = 1; mask < remedy.compositions.size(); ++mask) {
    std::vector<Fix> subset;
    for (std::size_t k = 0; k < n; ++k) {
      if (mask & (std::size_t{1} << k)) subset.push_back(rd.fixes[k]);
    }
    remedy.compositions[mask] = advisor.render(subset);
    remedy.composition_texts[mask].resize(n);
    for (std::size_t k = 0; k < n; ++k) {
      if (!(mask & (std::size_t{1} << k))) continue;
      remedy.composition_texts[mask][k] = piece_text(advisor, subset, rd.fixes[k]);
    }
  }
  return remedy;
}

}  // namespace

double pooling_gradient_log10_share(const Report& report) {
  if (report.layers.empty()) return 0.0;
  return diagnosis_detail::shape_of(report).pool_share.front();
}

void diagnose(Report& report) {
  RuleContext rules(report);
  std::vector<Draft> drafts = measured_findings(rules);
  rules.score = problem_score(drafts);
  const InitAdvice init = theory_init(report, rules.s);
  rules.init = &init;
  for (Draft& d : mistake_findings(rules)) drafts.push_back(std::move(d));
  assign_causes(drafts, report, rules.s);

  const Advisor advisor(report, rules.s, init);
  std::vector<Draft> root_drafts;
  std::vector<std::vector<Fix>> root_fixes;
  std::vector<Fix> given;  // every fix listed so far: each is listed once, under the first root
  report.findings.clear();
  for (std::size_t ri : roots_in_order(drafts)) {
    Draft& root = drafts[ri];
    const std::vector<std::size_t> consequences = consequences_of(drafts, ri);
    std::vector<Fix> fixes = advise_root(root, drafts, consequences, advisor, given);
    for (std::size_t c : consequences) root.f.consequences.push_back(drafts[c].f.code);
    root_drafts.push_back(root);
    root_fixes.push_back(std::move(fixes));
    report.findings.push_back(root.f);
    for (std::size_t c : consequences) {
      Finding f = drafts[c].f;
      f.cause = root.f.code;
      report.findings.push_back(std::move(f));
    }
  }
  report.verdict = verdict_of(report.findings);

  const RemedyDraft rd = draft_remedy(root_drafts, root_fixes);
  if (!rd.fixes.empty() || !rd.not_addressed.empty()) report.remedy = build_remedy(rd, advisor);
}

}  // namespace gradscope
