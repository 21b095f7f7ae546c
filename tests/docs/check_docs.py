#!/usr/bin/env python3
"""The README's and docs/'s promises, checked: every link resolves (files and #anchors), every
```sh block runs (in order, in a scratch copy of the repository, with the built gradscope on PATH),
and every sample of output marked `<!-- output of: COMMAND -->` is what COMMAND prints.

    python3 tests/docs/check_docs.py REPO_ROOT PATH/TO/gradscope

Conventions in the Markdown:
- ```sh blocks run as bash scripts (set -euo pipefail); other fences (```bash, ```json, ```) are
  not run. A command that should fail ends with `# exits N`.
- `<!-- not run: REASON -->` right before a ```sh block skips it, saying why.
- ```json blocks that are whole configs (an object with "stack" or "layers") must run: gradscope
  accepts them (exit 0, or 3 when a --fail-on finding is present).
- ```yaml blocks (CI snippets) run the body of each `run: |` step as a script; `<!-- exits N -->`
  right before the block says the step exits N (a gate that trips).
- `<!-- output of: COMMAND -->` right before a ``` block: COMMAND runs (OUT is a scratch folder)
  and each line of the block, but lines that are only "..." or end in "...", must appear in its
  stdout in the same order.
Commands too slow for the suite are shrunk by SHRINK below (each with its reason).
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

# Sizes the suite cannot afford, and what runs instead: the same command on a smaller network.
SHRINK = [
    # The 10,000-layer job takes about two minutes and 3.8 GiB; 300 layers of 64 take a second.
    ("--depth 10000 --width 1024", "--depth 300 --width 64"),
]

FENCE = re.compile(r"^```(\S*)\s*$")
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def slug(heading):
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = heading.strip().lower()
    text = re.sub(r"`", "", text)
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path):
    out = set()
    in_code = False
    with open(path, encoding="utf-8") as f:
        for line in f:
            if FENCE.match(line.rstrip("\n")):
                in_code = not in_code
                continue
            if not in_code and line.startswith("#"):
                out.add(slug(line.lstrip("#")))
    return out


def blocks(path):
    """(kind, lines, marker, line number) for every fenced block, with the comment before it."""
    lines = open(path, encoding="utf-8").read().split("\n")
    out = []
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        kind = m.group(1)
        start = i
        j = i + 1
        while j < len(lines) and not lines[j].startswith("```"):
            j += 1
        marker = ""
        k = start - 1
        while k >= 0 and lines[k].strip() == "":
            k -= 1
        if k >= 0 and lines[k].strip().startswith("<!--"):
            marker = lines[k].strip()
        out.append((kind, lines[start + 1 : j], marker, start + 1))
        i = j + 1
    return out


def check_links(files, root, errors):
    for path in files:
        text = open(path, encoding="utf-8").read()
        # Links inside code blocks are not links.
        text = re.sub(r"```.*?```", "", text, flags=re.S)
        for target in LINK.findall(text):
            if re.match(r"^[a-z]+:", target):
                continue  # http:, https:, mailto:
            file_part, _, anchor = target.partition("#")
            dest = os.path.normpath(os.path.join(os.path.dirname(path), file_part)) if file_part else path
            if not os.path.exists(dest):
                errors.append(f"{os.path.relpath(path, root)}: link to {target}: no such file")
                continue
            if anchor and dest.endswith(".md") and anchor not in anchors(dest):
                errors.append(f"{os.path.relpath(path, root)}: link to {target}: no such heading")


def script_of(lines):
    """The block as a bash script: continuation lines joined, `# exits N` turned into a check."""
    joined = []
    buf = ""
    for line in lines:
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        joined.append(buf + line)
        buf = ""
    out = ["set -euo pipefail"]
    for line in joined:
        for old, new in SHRINK:
            line = line.replace(old, new)
        m = re.search(r"#\s*exits\s+(\d+)\s*$", line)
        if m:
            command = line[: m.start()].rstrip()
            out.append(f"set +e; {command}; rc=$?; set -e")
            out.append(f'[ "$rc" -eq {m.group(1)} ] || {{ echo "exit $rc, not {m.group(1)}: {command}" >&2; exit 1; }}')
        else:
            out.append(line)
    return "\n".join(out) + "\n"


def yaml_steps(lines):
    """The bodies of the `run: |` steps of a CI snippet, each dedented."""
    steps = []
    i = 0
    while i < len(lines):
        m = re.match(r"^(\s*)(-\s+)?run:\s*\|\s*$", lines[i])
        if not m:
            i += 1
            continue
        indent = len(m.group(1)) + len(m.group(2) or "")
        body = []
        i += 1
        while i < len(lines) and (lines[i].strip() == "" or
                                  len(lines[i]) - len(lines[i].lstrip()) > indent):
            body.append(lines[i])
            i += 1
        width = min(len(l) - len(l.lstrip()) for l in body if l.strip())
        steps.append([l[width:] for l in body])
    return steps


def run(script, cwd, env, timeout=600):
    return subprocess.run(["bash", "-c", script], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


def check_sample(sample, output):
    """Each line of the sample, but elisions, appears in output in the same order."""
    got = [l.rstrip() for l in output.split("\n")]
    at = 0
    for line in sample:
        want = line.rstrip()
        if want.strip() in ("", "...") or want.endswith("..."):
            continue
        while at < len(got) and got[at] != want:
            at += 1
        if at == len(got):
            return want
        at += 1
    return None


def main():
    root = os.path.abspath(sys.argv[1])
    binary = os.path.abspath(sys.argv[2])
    files = [os.path.join(root, "README.md")] + sorted(
        os.path.join(root, "docs", f) for f in os.listdir(os.path.join(root, "docs"))
        if f.endswith(".md"))
    errors = []
    check_links(files, root, errors)

    scratch = tempfile.mkdtemp(prefix="gradscope-docs-")
    try:
        bindir = os.path.join(scratch, "bin")
        os.makedirs(bindir)
        os.symlink(binary, os.path.join(bindir, "gradscope"))
        env = dict(os.environ, PATH=bindir + os.pathsep + os.environ["PATH"], NO_COLOR="1")
        ran = 0
        for n, path in enumerate(files):
            rel = os.path.relpath(path, root)
            # Each page starts from a fresh copy, as its reader does: a page's blocks run in order
            # and may use what the earlier ones wrote, but nothing another page wrote.
            work = os.path.join(scratch, f"repo{n}")
            os.makedirs(work)
            for d in ("configs", "reports", "tests", "scripts", "schema"):
                shutil.copytree(os.path.join(root, d), os.path.join(work, d),
                                ignore=shutil.ignore_patterns("__pycache__"))
            for kind, lines, marker, line_no in blocks(path):
                where = f"{rel}:{line_no}"
                if marker.startswith("<!-- output of:"):
                    command = marker[len("<!-- output of:"):-len("-->")].strip()
                    out_dir = tempfile.mkdtemp(dir=scratch)
                    r = run(command.replace("OUT", out_dir), work, env)
                    missing = check_sample(lines, r.stdout)
                    if missing is not None:
                        errors.append(f"{where}: the sample is not what `{command}` prints; "
                                      f"first line not found in order:\n    {missing}")
                    ran += 1
                    continue
                if kind == "json":
                    try:
                        doc = json.loads("\n".join(lines))
                    except ValueError:
                        continue  # a fragment, not a file
                    if not (isinstance(doc, dict) and ("stack" in doc or "layers" in doc)):
                        continue
                    config = os.path.join(scratch, f"docs-config-{n}-{line_no}.json")
                    with open(config, "w", encoding="utf-8") as f:
                        f.write("\n".join(lines))
                    r = run(f"gradscope run {config} --out {scratch}/docs-config-out --quiet",
                            work, env)
                    ran += 1
                    if r.returncode not in (0, 3):
                        errors.append(f"{where}: the config is refused (exit {r.returncode}): "
                                      + r.stderr.strip()[-1500:])
                    continue
                if kind == "yaml":
                    m = re.match(r"<!--\s*exits\s+(\d+)\s*-->", marker)
                    want = int(m.group(1)) if m else 0
                    for step in yaml_steps(lines):
                        r = run("set -eo pipefail\n" + script_of(step)[len("set -euo pipefail\n"):],
                                work, env)
                        ran += 1
                        if r.returncode != want:
                            errors.append(f"{where}: a CI step exited {r.returncode}, not {want}:\n"
                                          + "".join("    " + l + "\n" for l in step)
                                          + "  stderr: " + r.stderr.strip()[-1500:])
                    continue
                if kind != "sh":
                    continue
                if marker.startswith("<!-- not run:"):
                    print(f"{where}: not run ({marker[len('<!-- not run:'):-3].strip()})")
                    continue
                r = run(script_of(lines), work, env)
                ran += 1
                if r.returncode != 0:
                    errors.append(f"{where}: a command block failed (exit {r.returncode}):\n"
                                  + "".join("    " + l + "\n" for l in lines)
                                  + "  stderr: " + r.stderr.strip()[-1500:])
            shutil.rmtree(work, ignore_errors=True)
        print(f"docs: {len(files)} files, {ran} blocks run")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    for e in errors:
        print("FAIL " + e, file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
