#!/usr/bin/env python3
"""The house's layout, checked: each folder of src/ is a layer that includes only its own and
lower layers' headers (core <- theory <- diagnosis <- engine <- io <- report <- app <- cli), public
headers mirror src/ under include/gradscope/, tests mirror src/ under tests/, and a source file
over MAX_LINES lines says why at its top ("Why this file is long:" in its opening comment).

Usage: check_layout.py SOURCE_DIR. Exits 1 naming every offending line."""
import pathlib
import re
import sys

LAYERS = ["core", "theory", "diagnosis", "engine", "io", "report", "app", "cli"]
RANK = {name: i for i, name in enumerate(LAYERS)}
# "gradscope/<layer>/x.hpp" (public) or "<layer>/x.hpp" (a private header of src/<layer>).
# A quoted include without a folder: src/'s private headers are named from src/.
BARE = re.compile(r'^\s*#\s*include\s+"[a-z_]+\.hpp"')
MAX_LINES = 600
LONG_REASON = "Why this file is long"
INCLUDE = re.compile(r'^\s*#\s*include\s+"(?:gradscope/)?([a-z_]+)/[^"]+"')


def main() -> int:
    root = pathlib.Path(sys.argv[1])
    problems = []
    for top in (root / "src", root / "include" / "gradscope"):
        for path in sorted(top.rglob("*")):
            if path.suffix not in (".cpp", ".hpp") or path.is_dir():
                continue
            rel = path.relative_to(top)
            if len(rel.parts) == 1:
                if path.name != "gradscope.hpp" and path.name != "version.hpp":
                    problems.append(f"{path.relative_to(root)}: not in a layer's folder "
                                    f"({', '.join(LAYERS)})")
                continue
            layer = rel.parts[0]
            if layer not in RANK:
                problems.append(f"{path.relative_to(root)}: {layer}/ is not a layer "
                                f"({', '.join(LAYERS)}); add it to LAYERS and CMakeLists.txt")
                continue
            lines = path.read_text().splitlines()
            opening = " ".join(line.lstrip("/ ") for line in lines[:12] if line.startswith("//"))
            if len(lines) > MAX_LINES and LONG_REASON not in opening:
                problems.append(f"{path.relative_to(root)}: {len(lines)} lines; split it, or say "
                                f"why in its opening comment (\"{LONG_REASON}: ...\")")
            for number, line in enumerate(lines, 1):
                if BARE.match(line):
                    problems.append(f"{path.relative_to(root)}:{number}: a private header is "
                                    f"included as \"<layer>/name.hpp\" ({line.strip()})")
                match = INCLUDE.match(line)
                if match and match.group(1) in RANK and RANK[match.group(1)] > RANK[layer]:
                    problems.append(
                        f"{path.relative_to(root)}:{number}: {layer}/ includes a higher layer's "
                        f"header ({line.strip()}); move the code it needs down, or this file up")
    for folder in sorted((root / "tests").glob("test_*.cpp")):
        problems.append(f"{folder.relative_to(root)}: tests mirror src/; move it to "
                        f"tests/<layer>/ beside the code it checks")
    for message in problems:
        print(message)
    if problems:
        print(f"{len(problems)} layout problem(s)")
        return 1
    print(f"layout: {len(LAYERS)} layers, includes point down only")
    return 0


if __name__ == "__main__":
    sys.exit(main())
