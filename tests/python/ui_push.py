"""Drives the web view's push of a hosted dream's new store (a mirror of hosted Claude
Managed Agents) in Chromium, headless, through Playwright: the dream's page offers the
promote as a push, its confirmation lists the API calls from the server's dry run, and
confirming sends them. Called by tests/ui.rs.

    python3 ui_push.py BASE_URL ADMIN_TOKEN DREAM_ID SCREENSHOT_DIR
"""

import json
import os
import sys
import time

from playwright.sync_api import sync_playwright

BASE, ADMIN, DREAM, SHOTS = sys.argv[1:5]
CHROMIUM = os.environ.get("DREAMLOG_CHROMIUM", "/usr/bin/chromium")
CHECKS = []


def check(cond, what):
    if not cond:
        raise AssertionError(what)
    CHECKS.append(what)


def wait_for(page, selector):
    try:
        page.wait_for_selector(selector, timeout=20000)
    except Exception:
        page.screenshot(path=os.path.join(SHOTS, "push-failure.png"))
        sys.stderr.write("page " + page.url + " shows:\n" + page.locator("body").inner_text()[:3000] + "\n")
        raise


def main():
    errors = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1360, "height": 1000})
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(BASE + "/ui")
        wait_for(page, "form.signin")
        page.fill("#token", ADMIN)
        page.click("form.signin button[type=submit]")
        wait_for(page, "#timeline")
        page.goto(BASE + "/ui#/dream/" + DREAM)
        end = time.time() + 20
        while time.time() < end and page.evaluate("() => document.body.dataset.shown") != page.evaluate("() => location.hash"):
            time.sleep(0.1)
        wait_for(page, "#promote-btn")
        check("(hosted)" in page.locator("#promote-btn").inner_text(), "the promote of a hosted dream's store is a push")
        page.click("#promote-btn")
        wait_for(page, "#push-calls")
        cmd = page.locator("#command").inner_text()
        check(cmd == "dreamlog memory promote memstore_03dreamed --into memstore_02learn", "the command shown: " + cmd)
        rows = page.locator("#push-calls tr").count() - 1
        check(rows >= 1, "the calls the server's dry run lists")
        check("precondition" in page.locator("#push-calls").inner_text(), "each with its precondition")
        page.screenshot(path=os.path.join(SHOTS, "push.png"))
        page.click("#confirm")
        wait_for(page, "#done")
        check("Every call was written" in page.locator("#done").inner_text(), "every call written")
        check(page.locator("#push-calls tr.written").count() == rows, "each call's status shown")
        check(not errors, "no script errors: " + json.dumps(errors))
        browser.close()
    print(json.dumps({"checks": len(CHECKS), "calls": rows}))


if __name__ == "__main__":
    main()
