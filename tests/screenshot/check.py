"""Looks at gradscope's HTML pages the way a reader does, in headless Chromium.

Writes a run page (a small sigmoid stack), a sweep page (ten points), the "why sigmoid fails"
lesson, and the run pages of a residual network and of an exploding one, then for each:
  1. a copy of the page with tests/screenshot/inpage.js added is loaded with --dump-dom: no console
     error or failed load, every chart fills its column, no text of a chart is cut by its edge, no
     legend text is cut or runs into another entry;
  2. the page itself is screenshot at 1200 px wide (console messages logged to stderr must be
     none), and in the PNG every chart's area, and its legend's, holds a drawing: enough non-white
     pixels in several colours.
With --docs DIR the charts' pictures are cropped from the screenshots into DIR (docs/images/).

usage: check.py GRADSCOPE SOURCE_DIR WORK_DIR [--docs DIR]
"""
import html
import json
import os
import re
import shutil
import subprocess
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import png  # noqa: E402

WIDTH = 1200
MAX_HEIGHT = 12000  # a taller page is checked down to here

CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-extensions", "--hide-scrollbars", "--mute-audio",
]

ERROR_HOOK = """<script>window.__gradscopeErrors = [];
addEventListener('error', function (e) {
  window.__gradscopeErrors.push(e.message || ('failed to load ' + (e.target.src || e.target.href)));
}, true);
var __consoleError = console.error;
console.error = function () {
  window.__gradscopeErrors.push(Array.prototype.join.call(arguments, ' '));
  __consoleError.apply(console, arguments);
};</script>"""


def chromium():
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    return None


def run_chromium(browser, profile, args, timeout=60):
    cmd = [browser] + CHROMIUM_FLAGS + [f"--user-data-dir={profile}"] + args
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def make_pages(gradscope, source, work):
    """The three pages, as a user makes them."""
    def call(*args):
        subprocess.run([gradscope, *args], check=True, cwd=work, stdout=subprocess.DEVNULL)

    call("run", "--set", "stack.depth=12", "--set", "stack.width=32", "--set",
         "stack.activation=sigmoid", "--set", "stack.init=xavier_normal", "--set", "name=sigmoid-12",
         "--format", "html", "-o", "run")
    call("sweep", "--vary", "activation=sigmoid,tanh,relu,gelu,selu", "--vary", "depth=1,8",
         "--set", "stack.width=32", "--set", "input.batch=64", "-o", work, "--name", "sweep", "-q")
    call("lesson", "why-sigmoid-fails", "--configs",
         os.path.join(source, "configs", "lessons", "why-sigmoid-fails"), "-o", "lesson")
    # Two networks whose charts need more than a line per run: a pre-norm residual transformer
    # block stack (op kinds marked, a line per block) and an exploding ReLU stack (histogram rows
    # over their own ranges).
    call("run", os.path.join(source, "configs", "gelu-prenorm-residual.json"), "--format", "html",
         "-o", "residual")
    call("run", "--set", "stack.depth=100", "--set", "stack.width=128", "--set",
         "stack.activation=relu", "--set", "stack.init.gain=1.5", "--set", "name=exploding",
         "--format", "html", "-o", "exploding")
    return {
        "run": os.path.join(work, "run", "sigmoid-12.html"),
        "sweep": os.path.join(work, "sweep", "sweep.html"),
        "lesson": os.path.join(work, "lesson", "why-sigmoid-fails.html"),
        "residual": os.path.join(work, "residual", "gelu-prenorm-residual.html"),
        "exploding": os.path.join(work, "exploding", "exploding.html"),
    }


def chart_file(page, title):
    """The docs picture of a chart: the page's name and what the chart shows."""
    kind = ("gradients" if title.startswith("Gradient") else
            "activations" if title.startswith("Activation") else
            "units" if title.startswith("Dead") else "chart")
    return f"{page}-{kind}.png"


def look_inside(browser, profile, page, inpage_js):
    """What inpage.js reports for a copy of the page (see its header)."""
    text = open(page, encoding="utf-8").read()
    checked = page[:-len(".html")] + ".checked.html"
    text = text.replace("<head>", "<head>\n" + ERROR_HOOK, 1)
    text = text.replace("</body>", "<script>" + inpage_js + "</script>\n</body>", 1)
    with open(checked, "w", encoding="utf-8") as f:
        f.write(text)
    out = run_chromium(browser, profile, [f"--window-size={WIDTH},1000", "--dump-dom",
                                          "file://" + checked])
    # The last match: the script's own text names the element too.
    found = re.findall(r'<pre id="gradscope-check">(.*?)</pre>', out.stdout, re.S)
    if not found:
        return None, out.stderr[-2000:]
    return json.loads(html.unescape(found[-1])), ""


def screenshot(browser, profile, page, height, shot, scale):
    out = run_chromium(browser, profile, [f"--window-size={WIDTH},{height}", f"--screenshot={shot}",
                                          f"--force-device-scale-factor={scale}",
                                          "--enable-logging=stderr", "--v=0", "file://" + page])
    # Chromium logs a page's console messages as "...:CONSOLE(line)] message".
    console = [line for line in out.stderr.splitlines() if ":CONSOLE" in line]
    return console


def ink(image, box):
    """(fraction of non-white pixels, distinct colours) in a box of the screenshot."""
    width, height, channels, rows = image
    x, y, w, h = (int(round(v)) for v in box)
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + w, width), min(y + h, height)
    if x1 <= x0 or y1 <= y0:
        return 0.0, 0
    inked = 0
    colours = set()
    for row in rows[y0:y1:2]:  # every other row, every third pixel: plenty for lines and text
        for i in range(x0 * channels, x1 * channels, channels * 3):
            pixel = row[i:i + 3]
            if pixel != b"\xff\xff\xff":
                inked += 1
                if len(colours) < 64:
                    colours.add(pixel)
    return inked / (((x1 - x0 + 2) // 3) * ((y1 - y0 + 1) // 2)), len(colours)


def check_page(browser, profile, name, page, inpage_js, docs):
    problems = []
    seen, log = look_inside(browser, profile, page, inpage_js)
    if seen is None:
        return [f"{name}: the page did not load or the check did not run\n{log}"], None
    problems += [f"{name}: page error: {e}" for e in seen["errors"]]
    if not seen["charts"]:
        problems.append(f"{name}: no chart on the page")
    for chart in seen["charts"]:
        where = f"{name}: chart '{chart['title']}'"
        problems += [f"{where}: {p}" for p in chart["problems"]]
        if chart["box"][2] < 0.95 * chart["column"]:
            problems.append(f"{where}: {chart['box'][2]:.0f} px wide in a {chart['column']} px "
                            "column")
    # Down to the last chart's bottom: the tables below it need no picture.
    bottom = max([c["box"][1] + c["box"][3] for c in seen["charts"]], default=0)
    height = int(min(seen["height"], bottom + 16, MAX_HEIGHT))
    shot = page[:-len(".html")] + ".png"
    # Half the pixels are enough to tell a drawing from a blank; the docs' pictures get them all.
    scale = 1 if docs else 0.5
    console = screenshot(browser, profile, page, height, shot, scale)
    problems += [f"{name}: console: {line}" for line in console]
    image = png.read(shot, max_rows=int(height * scale))
    if image[0] != int(WIDTH * scale):
        problems.append(f"{name}: screenshot is {image[0]} px wide, not {WIDTH * scale}")
    for chart in seen["charts"]:
        where = f"{name}: chart '{chart['title']}'"
        x, y, w, h = chart["box"]
        if y + h > height:
            continue  # below what was screenshot
        fraction, colours = ink(image, [v * scale for v in chart["box"]])
        if fraction < 0.02 or colours < 4:
            problems.append(f"{where}: blank in the screenshot ({fraction:.1%} inked, "
                            f"{colours} colours)")
        if chart["legend"]:
            fraction, colours = ink(image, [v * scale for v in chart["legend"]])
            if fraction < 0.01 or colours < 2:
                problems.append(f"{where}: legend blank in the screenshot ({fraction:.1%} inked)")
        if docs:
            crop = png.crop(image, int(x) - 8, int(y) - 8, int(x + w) + 8, int(y + h) + 8)
            png.write(os.path.join(docs, chart_file(name, chart["title"])), *crop)
    return problems, seen


def main():
    args = sys.argv[1:]
    docs = None
    if "--docs" in args:
        i = args.index("--docs")
        docs = os.path.abspath(args[i + 1])
        del args[i:i + 2]
        os.makedirs(docs, exist_ok=True)
    gradscope, source, work = (os.path.abspath(a) for a in args)
    browser = chromium()
    if browser is None:
        print("chromium is not installed: skipped")
        return 77
    os.makedirs(work, exist_ok=True)
    profile = os.path.join(work, "chromium-profile")
    inpage_js = open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "inpage.js")).read()
    pages = make_pages(gradscope, source, work)
    problems = []
    for name, page in pages.items():
        found, seen = check_page(browser, profile, name, page, inpage_js, docs)
        problems += found
        if seen:
            print(f"{name}: {len(seen['charts'])} charts, "
                  f"{sum(c['legend_entries'] for c in seen['charts'])} legend entries, "
                  f"page {seen['height']} px tall")
    for p in problems:
        print("FAIL", p)
    print(f"{len(pages) - len({p.split(':')[0] for p in problems})} passed, "
          f"{len({p.split(':')[0] for p in problems})} failed")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
