"""First paint of the web view's pages, measured in Debian's Chromium (headless, through
Playwright). Each page is loaded cold (a new browser context: no cache, no cookie)
RUNS times; reported per page, median and p95 over the runs: the browser's first
contentful paint, and the time until the page's data is on screen (the `dreamlog:shown`
mark the page sets once it rendered what the API answered), both from navigation start.

    python3 tools/ui_paint.py BASE_URL RUNS '#/timeline' '#/memory/sim' …

The server must need no token (a loopback `dreamlog serve` without a config), so the
page opens directly. benches/ui.rs drives it over a database of 1,000,000 events.
"""

import json
import os
import statistics
import sys

from playwright.sync_api import sync_playwright


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round((len(xs) - 1) * p))]


def main():
    base, runs, pages = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    chromium = os.environ.get("DREAMLOG_CHROMIUM", "/usr/bin/chromium")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync"])
        worst = 0.0
        for hash_ in pages:
            fcp, shown = [], []
            for _ in range(runs + 1):
                ctx = browser.new_context(viewport={"width": 1360, "height": 900})
                page = ctx.new_page()
                page.goto(base + "/ui" + hash_)
                page.wait_for_selector("body[data-shown]", timeout=60000)
                m = page.evaluate("""() => [
                    (performance.getEntriesByName('first-contentful-paint')[0] || {}).startTime,
                    (performance.getEntriesByName('dreamlog:shown')[0] || {}).startTime]""")
                ctx.close()
                if m[0] is None or m[1] is None:
                    raise SystemExit(f"{hash_}: no paint or shown mark: {m}")
                fcp.append(m[0])
                shown.append(m[1])
            # The first load warms the server's caches and the browser's process: dropped.
            fcp, shown = fcp[1:], shown[1:]
            row = {"page": hash_, "runs": runs,
                   "first_contentful_paint_ms": {"median": round(statistics.median(fcp), 1), "p95": round(pct(fcp, 0.95), 1)},
                   "data_shown_ms": {"median": round(statistics.median(shown), 1), "p95": round(pct(shown, 0.95), 1)}}
            worst = max(worst, row["data_shown_ms"]["median"])
            print(f"  {hash_:<52} first paint {row['first_contentful_paint_ms']['median']:7.1f} ms (p95 {row['first_contentful_paint_ms']['p95']:7.1f}); "
                  f"data shown {row['data_shown_ms']['median']:7.1f} ms (p95 {row['data_shown_ms']['p95']:7.1f})")
            print(json.dumps(row), file=sys.stderr)
        browser.close()
    print(f"  slowest page, median time to data shown: {worst:.1f} ms (target < 500 ms)")


if __name__ == "__main__":
    main()
