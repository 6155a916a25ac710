"""The HTML report (launch/report/report_html.c, report_svg.c), written by
tests/report_fixture.c from sample data.

usage: test_report_html.py REPORT_FIXTURE CASE WORKDIR
CASE structure: the page is well-formed XML, has the three charts with their
     series, figures that agree with its own tables, no network resource, and
     every string escaped; absent data gives a sentence instead of a chart;
     a write into a missing directory fails cleanly and leaves no temp file.
CASE render: headless Chromium screenshots the page; the PNG is decoded here
     (zlib, no PIL) and each series' colour must be drawn inside its chart's
     frame, where the SVG says.  Without Chromium this fails, unless
     DLTRAIN_SKIP_BROWSER=1, when it skips (exit 77)."""
import os
import re
import shutil
import struct
import subprocess
import sys
import xml.etree.ElementTree as ET
import zlib

FIXTURE = os.path.abspath(sys.argv[1])
CASE = sys.argv[2]
WORK = os.path.abspath(sys.argv[3])
FAILURES = []
BODY_MARGIN = 24  # px, body{margin:24px} in report_html.c's style
CHARTS = ("chart-speedup", "chart-busbw", "chart-breakdown")
SERIES = {"chart-speedup": {"claims", "ideal", "predicted", "measured"},
          "chart-busbw": {"algbw", "busbw"},
          "chart-breakdown": {"compute", "exposed", "optimizer", "data", "hidden"}}


def check(name, ok, detail=""):
    print(f"{'ok  ' if ok else 'FAIL'} {name}{': ' + str(detail) if detail else ''}")
    if not ok:
        FAILURES.append(name)
    return ok


def write_report(mode):
    path = os.path.join(WORK, f"{mode}.html")
    p = subprocess.run([FIXTURE, path, mode], capture_output=True, text=True, timeout=60)
    if not check(f"fixture {mode} exits 0", p.returncode == 0, p.stderr.strip()):
        sys.exit(1)
    return path


def parse(path):
    text = open(path, encoding="utf-8").read()
    try:
        return text, ET.fromstring(text)
    except ET.ParseError as e:
        check(f"{path} is well-formed", False, e)
        sys.exit(1)


def svgs(root):
    return {s.get("id"): s for s in root.iter("svg")}


def series_of(svg):
    return {g.get("data-series"): g for g in svg.iter("g") if g.get("class") == "series"}


def table_rows(root, table_id):
    for t in root.iter("table"):
        if t.get("id") == table_id:
            rows = [[("".join(c.itertext())).strip() for c in tr] for tr in t.iter("tr")]
            return rows[0], rows[1:]
    return None, []


# ---- structure ---------------------------------------------------------------

def check_no_resources(text, root):
    refs = []
    for el in root.iter():
        for attr, val in el.attrib.items():
            if attr.split("}")[-1] in ("src", "href", "srcset", "data", "poster", "action") or \
                    "url(" in val:
                refs.append(f"<{el.tag} {attr}={val!r}>")
        if el.tag in ("link", "script", "iframe", "img", "object", "embed"):
            refs.append(f"<{el.tag}>")
    check("no external resources (src, href, url(), link, script, img)", not refs, refs[:5])
    check("no http:// or https:// anywhere", not re.search(r"https?://", text))
    style = "".join("".join(s.itertext()) for s in root.iter("style"))
    check("style has no @import or url()", "@import" not in style and "url(" not in style)


def check_escaping(root):
    notes = next((p for p in root.iter("pre") if p.get("id") == "notes"), None)
    text = "".join(notes.itertext()) if notes is not None else ""
    check("markup in notes shows as text", "<script>alert('not run')</script> & this" in text)
    title = "".join(next(root.iter("title")).itertext())
    check("markup in the title shows as text", "<sample data, not a measurement>" in title)
    labels = [c[2] for c in table_rows(root, "scale-table")[1]]
    check("quotes and & in labels show as text", any('"two CPUs" (x16 gen4 & UPI)' in l
                                                     for l in labels), labels)


def floats(s):
    return [float(v) for v in re.split(r"[ ,]+", s.strip())]


def check_speedup(svg, root):
    head, rows = table_rows(root, "scale-table")
    col = {h: i for i, h in enumerate(head)}
    series = series_of(svg)
    points = [g for g in series["measured"].iter("g") if g.get("class") == "point"]
    check("one measured point per table row", len(points) == len(rows), f"{len(points)} vs {len(rows)}")
    # a higher speedup is drawn higher (smaller y), in the table's order
    cy = [float(next(p.iter("circle")).get("cy")) for p in points]
    sp = [float(r[col["speedup"]]) for r in rows]
    pairs = [(a, b) for a in range(len(sp)) for b in range(len(sp)) if sp[a] > sp[b] + 0.01]
    check("measured points ordered by speedup", all(cy[a] < cy[b] for a, b in pairs))
    whiskers = [len(list(p.iter("line"))) for p in points]
    check("each measured point has a min/max whisker", all(w == 3 for w in whiskers), whiskers)
    pred_ranks = {r[col["ranks"]] for r in rows if r[col["predicted"]] != "-"}
    poly = next(series["predicted"].iter("polyline")).get("points")
    xy = floats(poly)
    check("predicted line has one vertex per GPU count", len(xy) // 2 == len(pred_ranks),
          f"{len(xy) // 2} vs {len(pred_ranks)}")
    check("predicted line runs left to right", all(xy[i] < xy[i + 2] for i in range(0, len(xy) - 2, 2)))
    claims = list(series["claims"].iter("rect"))
    check("claims: 2, 4 (two ranges) and 8 GPUs shaded", len(claims) == 4, len(claims))


def check_busbw(svg, root):
    head, rows = table_rows(root, "bw-table")
    series = series_of(svg)
    for name in ("busbw", "algbw"):
        xy = floats(next(series[name].iter("polyline")).get("points"))
        check(f"{name}: one vertex per message size", len(xy) // 2 == len(rows), f"{len(xy) // 2}")
        check(f"{name}: sizes left to right", all(xy[i] < xy[i + 2] for i in range(0, len(xy) - 2, 2)))
    n = int(re.search(r"(\d+) ranks", "".join(svg.itertext())).group(1))
    ratios = [float(r[3]) / float(r[2]) for r in rows if float(r[2]) > 0.01]
    check("busbw = algbw x 2(n-1)/n in the table", all(abs(q - 2 * (n - 1) / n) < 0.01 for q in ratios),
          ratios[:3])
    # equal x steps for equal size ratios: the axis is logarithmic
    xy = floats(next(series["busbw"].iter("polyline")).get("points"))
    steps = [xy[i + 2] - xy[i] for i in range(0, len(xy) - 2, 2)]
    check("x axis is logarithmic in size", max(steps) - min(steps) < 0.5, steps[:3])


def check_breakdown(svg, root):
    head, rows = table_rows(root, "scale-table")
    col = {h: i for i, h in enumerate(head)}
    series = series_of(svg)
    for name, column in (("compute", "compute ms"), ("exposed", "exposed ms"),
                         ("optimizer", "optimizer ms"), ("data", "data ms"), ("hidden", "hidden ms")):
        rects = list(series[name].iter("rect"))
        want = [float(r[col[column]]) for r in rows if float(r[col[column]]) > 0]
        ok = check(f"{name}: one bar per configuration with time", len(rects) == len(want),
                   f"{len(rects)} vs {len(want)}")
        if ok and want:
            # one scale: height / ms equal for every bar
            k = [float(rc.get("height")) / ms for rc, ms in zip(rects, want)]
            check(f"{name}: heights proportional to ms", max(k) - min(k) < 0.02 * max(k) + 0.05, k)


def case_structure():
    text, root = parse(write_report("full"))
    charts = svgs(root)
    check("the three charts are present", set(charts) == set(CHARTS), sorted(charts))
    for cid in CHARTS:
        if cid in charts:
            got = set(series_of(charts[cid]))
            check(f"{cid}: series {sorted(SERIES[cid])}", got == SERIES[cid], sorted(got))
            check(f"{cid}: axes with tick labels", sum(1 for t in charts[cid].iter("text")) >= 10)
            empty = [n for n, g in series_of(charts[cid]).items() if len(list(g)) == 0]
            check(f"{cid}: every series draws something", not empty, empty)
    check_no_resources(text, root)
    check_escaping(root)
    if set(charts) == set(CHARTS):
        check_speedup(charts["chart-speedup"], root)
        check_busbw(charts["chart-busbw"], root)
        check_breakdown(charts["chart-breakdown"], root)
    for name in ("topology", "commands", "machine"):
        check(f"<pre id={name}> present", any(p.get("id") == name for p in root.iter("pre")))

    text, root = parse(write_report("no-bw"))
    check("no sweep: only speedup and breakdown charts", set(svgs(root)) ==
          {"chart-speedup", "chart-breakdown"}, sorted(svgs(root)))
    check("no sweep: says why", "no all-reduce sweep in this run" in text)
    text, root = parse(write_report("empty"))
    check("nothing measured: no chart", not svgs(root))
    absent = [p for p in root.iter("p") if p.get("class") == "absent"]
    check("nothing measured: a sentence for each chart", len(absent) >= 3, len(absent))

    missing = os.path.join(WORK, "no-such-dir", "r.html")
    p = subprocess.run([FIXTURE, missing, "fail"], capture_output=True, text=True, timeout=60)
    check("write into a missing directory fails cleanly", p.returncode == 0, p.stderr.strip())
    left = [f for f in os.listdir(WORK) if ".tmp." in f]
    check("no temporary file left behind", not left, left)


# ---- render ------------------------------------------------------------------

def decode_png(path):
    """RGB rows of an 8-bit RGB or RGBA, non-interlaced PNG."""
    data = open(path, "rb").read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG")
    pos, idat, hdr = 8, [], None
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            hdr = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        pos += 12 + n
    w, h, depth, ctype, _, _, interlace = hdr
    if depth != 8 or ctype not in (2, 6) or interlace:
        raise ValueError(f"unsupported PNG: depth {depth}, colour type {ctype}, interlace {interlace}")
    bpp = 4 if ctype == 6 else 3
    raw = zlib.decompress(b"".join(idat))
    stride = w * bpp
    prev = bytearray(stride)
    rows = []
    for y in range(h):
        f = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        if f == 1:
            for i in range(bpp, stride):
                line[i] = (line[i] + line[i - bpp]) & 255
        elif f == 2:
            line = bytearray((a + b) & 255 for a, b in zip(line, prev))
        elif f == 3:
            for i in range(stride):
                left = line[i - bpp] if i >= bpp else 0
                line[i] = (line[i] + ((left + prev[i]) >> 1)) & 255
        elif f == 4:
            for i in range(stride):
                a = line[i - bpp] if i >= bpp else 0
                b, c = prev[i], prev[i - bpp] if i >= bpp else 0
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                line[i] = (line[i] + pred) & 255
        rows.append(bytes(line) if bpp == 3 else bytes(v for i, v in enumerate(line) if i % 4 != 3))
        prev = line
    return w, h, rows


def find_browser():
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    return None


def screenshot(browser, html, png):
    profile = os.path.join(WORK, "chromium-profile")
    cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
           "--force-device-scale-factor=1", "--force-color-profile=srgb",
           f"--user-data-dir={profile}", "--window-size=1000,2000", f"--screenshot={png}",
           "file://" + html]
    if os.path.exists(png):
        os.remove(png)
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if not check(f"chromium screenshot of {os.path.basename(html)}",
                 p.returncode == 0 and os.path.exists(png),
                 "" if p.returncode == 0 else p.stderr[-800:]):
        sys.exit(1)
    return decode_png(png)


def dark(rows, x, y):
    return max(rows[y][3 * x:3 * x + 3]) < 160


def plot_frames(rows, x0, width, height):
    """Tops of the plot frames: a dark line across [x0, x0+width] with dark
    left and right edges below it, each at least 90% visible (series may
    cover a little of the frame)."""
    def mostly(samples):
        return sum(samples) >= 0.9 * len(samples)
    tops = []
    for y in range(len(rows) - height):
        if tops and y <= tops[-1] + height:
            continue
        if not mostly([dark(rows, x, y) for x in range(x0 + 2, x0 + width - 2, 5)]):
            continue
        if mostly([dark(rows, x0, v) for v in range(y + 2, y + height - 2, 3)]) and \
                mostly([dark(rows, x0 + width, v) for v in range(y + 2, y + height - 2, 3)]):
            tops.append(y)
    return tops


def colour_pixels(rows, colour, box, tol=10):
    x0, y0, x1, y1 = box
    r, g, b = colour
    hits = []
    for y in range(max(0, y0), min(len(rows), y1)):
        row = rows[y]
        for x in range(x0, x1):
            i = 3 * x
            if abs(row[i] - r) <= tol and abs(row[i + 1] - g) <= tol and abs(row[i + 2] - b) <= tol:
                hits.append((x, y))
    return hits


def hex_rgb(s):
    return tuple(int(s[i:i + 2], 16) for i in (1, 3, 5))


MIN_PIXELS = {"claims": 300, "ideal": 40, "predicted": 300, "measured": 150, "busbw": 400,
              "algbw": 150, "compute": 3000, "exposed": 300, "optimizer": 200, "data": 50,
              "hidden": 60}


def chart_boxes(root, rows):
    """Page boxes of each chart's plot area, from the SVG's frame and the screenshot."""
    charts = svgs(root)
    order = [c for c in CHARTS if c in charts]
    frame = next(charts[order[0]].iter("rect"))
    fx, fy = float(frame.get("x")), float(frame.get("y"))
    fw, fh = float(frame.get("width")), float(frame.get("height"))
    x0 = BODY_MARGIN + int(round(fx))
    frames = plot_frames(rows, x0, int(fw), int(fh))
    check(f"{len(order)} plot frames found in the screenshot", len(frames) == len(order),
          f"tops at {frames}")
    boxes = {}
    for cid, top in zip(order, frames):
        boxes[cid] = (x0 + 2, top + 2, x0 + int(fw) - 2, top + int(fh) - 1, top - int(fy))
    return charts, boxes


def check_ideal_geometry(svg, rows, box):
    line = next(series_of(svg)["ideal"].iter("line"))
    x1, y1, x2, y2 = (float(line.get(k)) for k in ("x1", "y1", "x2", "y2"))
    off_y = box[4]
    hits = colour_pixels(rows, hex_rgb(series_of(svg)["ideal"].get("data-color")), box[:4])
    near = 0
    for x, y in hits:
        sx, sy = x - BODY_MARGIN, y - off_y
        t = max(0.0, min(1.0, ((sx - x1) * (x2 - x1) + (sy - y1) * (y2 - y1)) /
                         ((x2 - x1) ** 2 + (y2 - y1) ** 2)))
        d = ((sx - x1 - t * (x2 - x1)) ** 2 + (sy - y1 - t * (y2 - y1)) ** 2) ** 0.5
        near += d <= 3
    check("ideal line drawn on its segment", hits and near >= 0.9 * len(hits),
          f"{near} of {len(hits)} pixels within 3 px")


def render(browser, mode):
    html = write_report(mode)
    w, h, rows = screenshot(browser, html, os.path.join(WORK, f"{mode}.png"))
    check(f"{mode}: screenshot 1000x2000", (w, h) == (1000, 2000), (w, h))
    root = parse(html)[1]
    return root, rows


def case_render():
    browser = find_browser()
    if browser is None:
        why = "no Chromium (Debian package 'chromium', installed by scripts/install-deps.sh)"
        if os.environ.get("DLTRAIN_SKIP_BROWSER") == "1":
            print(f"SKIP: {why}; DLTRAIN_SKIP_BROWSER=1")
            sys.exit(77)
        check("chromium is installed", False, why + "; set DLTRAIN_SKIP_BROWSER=1 to skip")
        return
    root, rows = render(browser, "full")
    charts, boxes = chart_boxes(root, rows)
    for cid, box in boxes.items():
        others = [b for c, b in boxes.items() if c != cid]
        for name, g in series_of(charts[cid]).items():
            colour = hex_rgb(g.get("data-color"))
            n = len(colour_pixels(rows, colour, box[:4]))
            check(f"{cid}: {name} drawn ({g.get('data-color')})", n >= MIN_PIXELS[name],
                  f"{n} pixels, want >= {MIN_PIXELS[name]}")
            stray = sum(len(colour_pixels(rows, colour, b[:4])) for b in others)
            check(f"{cid}: {name}'s colour in no other chart", stray == 0, f"{stray} pixels")
    if "chart-speedup" in boxes:
        check_ideal_geometry(charts["chart-speedup"], rows, boxes["chart-speedup"])

    # the same page without a sweep: the bandwidth colour must be nowhere
    busbw = hex_rgb(series_of(charts["chart-busbw"])["busbw"].get("data-color"))
    root, rows = render(browser, "no-bw")
    n = len(colour_pixels(rows, busbw, (0, 0, len(rows[0]) // 3, len(rows))))
    check("no sweep: no bandwidth series drawn", n == 0, f"{n} pixels")
    chart_boxes(root, rows)


def main():
    os.makedirs(WORK, exist_ok=True)
    {"structure": case_structure, "render": case_render}[CASE]()
    if FAILURES:
        print(f"{len(FAILURES)} check(s) failed: {', '.join(FAILURES)}")
        sys.exit(1)
    print("all checks passed")


if __name__ == "__main__":
    main()
