"""Drives the web view (`/ui` of `dreamlog serve`) in a real browser: Debian's Chromium,
headless, through Playwright. Called by tests/ui.rs with a server that holds real
imported runs (τ-bench, τ²-bench, SWE-agent), the demo's dreams and drift, and two
tokens (read and admin). Every page is opened, what it shows is checked against the
API's own answers, blame is followed down to the grade and its session, a promote and a
revert are confirmed from their dry runs, and a screenshot of each page is written.

    python3 ui_browser.py BASE_URL READ_TOKEN ADMIN_TOKEN SCREENSHOT_DIR
"""

import json
import os
import sys
import urllib.parse
import urllib.request

from playwright.sync_api import sync_playwright

BASE, READ, ADMIN, SHOTS = sys.argv[1:5]
CHROMIUM = os.environ.get("DREAMLOG_CHROMIUM", "/usr/bin/chromium")
CHECKS = []


def check(cond, what):
    if not cond:
        raise AssertionError(what)
    CHECKS.append(what)


def api(path, token=ADMIN, body=None, method=None):
    req = urllib.request.Request(BASE + path, method=method or ("POST" if body is not None else "GET"))
    req.add_header("Authorization", "Bearer " + token)
    data = None
    if body is not None:
        req.add_header("Content-Type", "application/json")
        data = json.dumps(body).encode()
    with urllib.request.urlopen(req, data) as r:
        return json.loads(r.read() or b"null")


def log_len():
    return api("/v1/info")["events"]


def shot(page, name):
    page.screenshot(path=os.path.join(SHOTS, name + ".png"), full_page=False)


def wait_page(page, selector):
    try:
        page.wait_for_selector(selector, timeout=15000)
    except Exception:
        page.screenshot(path=os.path.join(SHOTS, "failure.png"))
        sys.stderr.write("page " + page.url + " shows:\n" + page.locator("main").inner_text()[:3000] + "\n")
        raise


def wait_until(page, fn, what, timeout=15.0):
    """Polls a function in the page (wait_for_function evaluates strings, which the
    page's Content-Security-Policy rightly refuses)."""
    import time
    end = time.time() + timeout
    while time.time() < end:
        if page.evaluate(fn):
            return
        time.sleep(0.1)
    raise AssertionError("timed out waiting: " + what)


def wait_shown(page, selector):
    """Waits until the page the address names is the one rendered, then for `selector`."""
    wait_until(page, "() => document.body.dataset.shown === location.hash", "render of " + page.url)
    wait_page(page, selector)


def open_page(page, hash_, selector):
    """Goes to a page of the view and waits until it is rendered (not the page before)."""
    page.goto(BASE + "/ui" + hash_)
    want = page.evaluate("() => location.hash")
    wait_until(page, f"() => document.body.dataset.shown === {json.dumps(want)}", "render of " + hash_)
    wait_page(page, selector)


def sign_in(page, token):
    page.goto(BASE + "/ui")
    wait_page(page, "form.signin")
    page.fill("#token", token)
    page.click("form.signin button[type=submit]")
    wait_page(page, "#timeline")


def main():
    # A hostile text in agent content, in the log before the browser opens it.
    hostile = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script>'
    api("/v1/events", body={"stream": "notes/hostile", "events": [
        {"kind": "note", "actor": "agent:mallory", "body": {"type": hostile, "json": {"text": hostile}}}]})
    facts = {
        "sessions": api("/v1/sessions")["sessions"],
        "dreams": api("/v1/dreams")["dreams"],
        "drift": api("/v1/drift/sim"),
    }
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync"])
        ctx = browser.new_context(viewport={"width": 1360, "height": 900})
        page = ctx.new_page()
        errors, urls, dialogs = [], [], []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" and "401" not in m.text else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("request", lambda r: urls.append(r.url))
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))

        # --- sign in with the read token: a cookie, never a token in a URL
        sign_in(page, READ)
        cookie = [c for c in ctx.cookies() if c["name"] == "dreamlog_session"]
        check(len(cookie) == 1, "signing in sets the session cookie")
        check(cookie[0]["httpOnly"] and cookie[0]["sameSite"] == "Strict", "the cookie is HttpOnly and SameSite=Strict")
        check("dreamlog_session" not in page.evaluate("document.cookie"), "scripts cannot read the cookie")
        check(page.locator("#who").inner_text().startswith("audit · read"), "the header names tenant and role")

        # --- timeline: newest first, a page of 50, live
        n = log_len()
        rows = page.locator("#timeline tbody tr")
        check(rows.count() == 50, "the timeline shows one page of 50 events")
        check(rows.first.get_attribute("data-position") == str(n - 1), "newest event first")
        wait_until(page, "() => document.getElementById('live-status').textContent.startsWith('live')", "live")
        appended = api("/v1/events", body={"stream": "notes/live", "events": [
            {"kind": "note", "actor": "agent:live", "body": {"type": "arrived-live", "json": {}}}]})
        pos = appended["appended"][0]["position"]
        page.wait_for_selector(f'#timeline tbody tr[data-position="{pos}"].fresh', timeout=10000)
        check(True, "an event appended now appears on top of the live timeline (SSE on the cookie)")
        check(not any(READ in u or ADMIN in u for u in urls), "no token in any URL the page requested")
        check(any("/v1/tail?from=" in u for u in urls), "the live timeline reads /v1/tail")
        shot(page, "timeline")

        # hostile content is text, never markup
        open_page(page, "#/timeline?stream=notes/hostile", "#timeline")
        check(page.locator("#timeline").inner_text().count("<img src=x") >= 1, "hostile markup shows as text")
        check(page.locator("img[src=x]").count() == 0 and page.evaluate("window.__pwned") is None, "hostile markup never runs")
        injected = page.evaluate("""() => { const s = document.createElement('script');
            s.textContent = 'window.__inline = 1'; document.body.append(s); return window.__inline; }""")
        check(injected is None, "the Content-Security-Policy blocks inline scripts")
        page.wait_for_timeout(300)
        check(any("Content Security Policy" in e for e in errors), "and the browser reports the blocked script")
        errors.clear()

        # filters: kind (the kind index, newest first) and paging
        open_page(page, "#/timeline?kind=grade", "#timeline")
        kinds = page.locator("#timeline tbody tr td:nth-child(3)").all_inner_texts()
        check(len(kinds) == 50 and set(kinds) == {"grade"}, "the kind filter shows only grades")
        first_page = page.locator("#timeline tbody tr").first.get_attribute("data-position")
        page.click("#older")
        wait_until(page, f"() => document.querySelector('#timeline tbody tr').dataset.position !== '{first_page}'", "older page")
        older = [int(x) for x in page.locator("#timeline tbody tr").evaluate_all("rs => rs.map(r => r.dataset.position)")]
        check(max(older) < int(first_page) and older == sorted(older, reverse=True), "the older page continues below the first")

        # --- an event: header, body, causes, cited by
        lesson_events = api("/v1/memory/sim/history?path=/memories/lessons/sim/refunds.md")["events"]
        first_lesson = lesson_events[0]
        open_page(page, f"#/event/{first_lesson['id']}", "pre.body")
        text = page.locator("main").inner_text()
        check(first_lesson["id"] in text and "Causes (" in text and "Cited by (" in text, "an event shows header, causes and citers")
        check(page.locator("main table").first.locator("tbody tr").count() == len(first_lesson["causes"]), "every cause listed")
        shot(page, "event")

        # --- sessions and one real session (τ²-bench, imported)
        open_page(page, "#/sessions", "table.sessions")
        check(page.locator("table.sessions tbody tr").count() == 50, "the sessions page shows a page of 50")
        shot(page, "sessions")
        real = next(s for s in facts["sessions"] if s["messages"] > 0 and s["steps"] > 3 and s.get("score") is not None
                    and (s.get("task") or "").startswith("airline/"))
        open_page(page, "#/sessions?q=" + urllib.parse.quote(real["id"][2:10]), "table.sessions")
        found = page.locator("table.sessions tbody tr td:first-child").all_inner_texts()
        check(real["id"] in found and all(real["id"][2:10].lower() in f.lower() for f in found), "finding a session by its id")
        open_page(page, "#/sessions?q=airline", "table.sessions")
        tasks = page.locator("table.sessions tbody tr td:nth-child(3)").all_inner_texts()
        want = [s for s in facts["sessions"] if "airline" in (s.get("task") or "") + s["id"]]
        check(len(tasks) == min(50, len(want)) and len(want) >= 20, "finding sessions by task (the τ²-bench airline runs)")
        open_page(page, "#/session/" + "/".join(urllib.parse.quote(x, safe="") for x in real["id"].split("/")), ".transcript")
        check(page.locator(".transcript .msg").count() == real["messages"], "every message of the session shown")
        check(page.locator(".transcript .call").count() >= 1, "tool calls with their results shown")
        check(page.locator(".grade").count() >= 1, "the grade breakdown shown")
        check("store sim as of #10" in page.locator("main").inner_text(),
              "the memory it ran with is the store at its link's point (sessions link --at 10)")
        shot(page, "session")

        # --- memory browser: tree, slider, tags, file, diff of two points, fork vs live
        open_page(page, "#/memory/sim", "#slider")
        files_now = page.locator("ul.tree li").count()
        check(files_now >= 1, "the store's files listed")
        check(page.locator("table.file tbody tr").count() >= 1, "a file's lines shown")
        shot(page, "memory")
        page.locator("#slider").evaluate("s => { s.value = 0; s.dispatchEvent(new Event('change')); }")
        wait_until(page, "() => location.hash.includes('at=')", "slider moved")
        wait_shown(page, "#slider")
        check(page.locator("ul.tree li").count() < files_now, "the slider's start shows the store before its lessons")
        open_page(page, "#/memory/demo", "#slider")
        check(page.locator("p.tags a.tag").count() >= 1, "tags are marked on the store's history")
        open_page(page, f"#/diff/sim?from={first_lesson['position'] - 1}&to={first_lesson['position']}", "table.sbs")
        check(page.locator("table.sbs td.add").count() >= 3, "an added file's lines shown whole")
        edit = next(e for e in lesson_events if e["kind"] == "memory" and e["body"]["command"]["command"] != "create")
        open_page(page, f"#/diff/sim?from={edit['position'] - 1}&to={edit['position']}", "div.changed h3 span.add")
        check(page.locator("table.sbs td.add").count() >= 1 and page.locator("table.sbs tr.hunk").count() >= 1,
              "a side-by-side diff of two points: a changed file's hunks, added lines on the right")
        shot(page, "diff")
        # The newest dream into a fork: not promoted yet.
        fork = [d for d in facts["dreams"] if d["output_store"] != d["store"]][-1]
        open_page(page, f"#/diff/sim?other={fork['output_store']}&at=head", "div.diff")
        check("changed" in page.locator("div.diff").inner_text(), "a dream fork against the live store")
        open_page(page, "#/history/sim?path=/memories/lessons/sim/refunds.md", "table.history")
        check(page.locator("table.history tbody tr").count() == len(lesson_events), "a file's history, every change")

        # --- blame down to the evidence: line → event → dream → grade → session → actions
        open_page(page, "#/blame/sim?path=/memories/lessons/sim/refunds.md", "table.blame")
        blame = api("/v1/memory/sim/blame?path=/memories/lessons/sim/refunds.md")["lines"]
        check(page.locator("table.blame tbody tr").count() == len(blame), "one row per line")
        shot(page, "blame")
        lesson_row = page.locator("table.blame tbody tr", has=page.locator("td.blame-evidence details")).last
        dream_href = lesson_row.locator("td.blame-dream a").get_attribute("href")
        lesson_row.locator("td.blame-evidence summary").click()
        lesson_row.locator("td.blame-evidence li a").first.click()
        wait_shown(page, "pre.body")
        check(page.locator("main h1 .kind").inner_text() == "grade", "blame's evidence opens the grade")
        page.locator("dl.facts a.session").first.click()
        wait_shown(page, ".transcript")
        check(page.locator(".transcript .call").count() >= 1 and page.locator(".grade").count() >= 1,
              "the grade's session shows its actions and grade")
        # --- a line a revert put back keeps its dream and evidence, the revert beside them
        restored = [l for l in blame if (l.get("restored_by") or {}).get("how") == "revert"]
        check(restored and all(l["dream"] and l["evidence"] for l in restored),
              "the API's blame: the reverted edit's line has its dream and evidence back")
        open_page(page, "#/blame/sim?path=/memories/lessons/sim/refunds.md", "table.blame")
        row = page.locator("table.blame tbody tr", has=page.locator(".blame-restored", has_text="restored by")).first
        check("restored by" in row.locator(".blame-restored").inner_text()
              and "a bad edit" in row.locator(".blame-restored").inner_text(), "blame shows the revert that restored it")
        check(row.locator("td.blame-dream a").get_attribute("href").endswith(restored[0]["dream"]),
              "and the dream that wrote the line first")
        check(row.locator("td.blame-evidence summary").inner_text() == f"{len(restored[0]['evidence'])} evidence",
              "and its evidence")
        check(" by " in row.locator("td.blame-by .principal").inner_text(), "and who wrote it (its receipt)")

        open_page(page, dream_href, "details.decisions")

        # --- dreams: what was written first, then every decision folded; read-only for a
        # read token
        check(page.locator("h2").first.inner_text().startswith("Commands written"), "what it wrote comes first")
        check(not page.locator("table.decisions").is_visible(), "the decision table starts folded")
        page.locator("details.decisions summary").click()
        wait_page(page, "table.decisions")
        text = page.locator("table.decisions").inner_text()
        check("positive" in text and "write" in text, "a dream's lessons with their decision and validation")
        check("skip: " in text and "[object" not in text, "skipped candidates say why")
        check(page.locator("#promote-btn, #revert-btn, #replay-btn").count() == 0, "no write buttons for a read token")
        shot(page, "dream")
        open_page(page, "#/dreams", "table.dreams")
        check(page.locator("table.dreams tbody tr").count() == len(facts["dreams"]), "every dream listed")
        shot(page, "dreams")

        # a read session cannot write, even with the UI header
        status = page.evaluate("""async () => (await fetch('/v1/memory/sim/revert?dry_run=true', {method: 'POST',
            headers: {'Content-Type': 'application/json', 'X-Dreamlog-UI': '1'},
            body: JSON.stringify({to: '0', reason: 'x'})})).status""")
        check(status == 403, "a read session is refused writes (403)")
        page.wait_for_timeout(300)
        errors.clear()

        # --- drift: per state with intervals, the flagged change and its undo
        open_page(page, "#/drift/sim", "svg.chart")
        d = facts["drift"]
        check(page.locator("svg.chart circle.point").count() == len(d["states"]), "one point per memory state")
        check(page.locator("svg.chart line.interval").count() == len(d["states"]), "each with its interval")
        check(page.locator("svg.chart line.change.flagged").count() == d["flagged"], "flagged changes marked")
        undo = page.locator("code.undo").all_inner_texts()
        check(any(u.startswith("dreamlog memory revert sim --dream") for u in undo), "the undo command shown")
        shot(page, "drift")

        # --- sign out: the cookie is gone and the server forgets it
        old = cookie[0]["value"]
        page.click("#who button")
        wait_page(page, "form.signin")
        check(not [c for c in ctx.cookies() if c["name"] == "dreamlog_session"], "signing out clears the cookie")
        ctx.add_cookies([{"name": "dreamlog_session", "value": old, "url": BASE}])
        status = page.evaluate("async () => (await fetch('/v1/info')).status")
        check(status == 401, "a signed-out cookie is refused")

        # --- admin: promote and revert from their dry runs
        admin = browser.new_context(viewport={"width": 1360, "height": 1000})
        page = admin.new_page()
        page.on("pageerror", lambda e: errors.append(str(e)))
        sign_in(page, ADMIN)
        status = page.evaluate("""async () => (await fetch('/v1/memory/sim/revert?dry_run=true', {method: 'POST',
            headers: {'Content-Type': 'application/json'}, body: JSON.stringify({to: '0', reason: 'x'})})).status""")
        check(status == 403, "a write on the cookie without X-Dreamlog-UI is refused (403)")
        page.wait_for_timeout(300)
        errors.clear()
        open_page(page, f"#/dream/{fork['id']}", "#promote-btn")
        before = log_len()
        page.click("#promote-btn")
        page.wait_for_selector("#preview-events", timeout=15000)
        check(page.locator("#command").inner_text() == f"dreamlog memory promote {fork['output_store']} --into sim",
              "the promote confirmation shows the exact command")
        planned = [json.loads(l) for l in page.locator("#preview-events").inner_text().splitlines()]
        check(len(planned) >= 1 and all(e["stream"] == "memory/sim" for e in planned), "the events that would be appended")
        check(page.locator("dialog table.sbs").count() >= 1, "and the diff they make")
        check(log_len() == before, "the dry run wrote nothing")
        shot(page, "promote")
        page.click("#confirm")
        wait_page(page, "#done")
        check(log_len() == before + len(planned), "confirming appends exactly the previewed events")
        page.locator("dialog button", has_text="Close").click()

        # Then revert what that promote wrote, from the same dream's page.
        good = fork
        open_page(page, f"#/dream/{good['id']}", "#revert-btn")
        before = log_len()
        page.click("#revert-btn")
        page.wait_for_selector("#preview-events", timeout=15000)
        cmd = page.locator("#command").inner_text()
        check(cmd.startswith(f"dreamlog memory revert sim --dream {good['id'][:12]} --reason"), "the revert command shown")
        planned = [json.loads(l) for l in page.locator("#preview-events").inner_text().splitlines()]
        check(planned[0]["kind"] == "revert", "a revert event first")
        check(log_len() == before, "the revert's dry run wrote nothing")
        shot(page, "revert")
        page.click("#confirm")
        wait_page(page, "#done")
        check(log_len() == before + len(planned), "confirming the revert appends the previewed events")

        check(not dialogs, "no alert ever fired")
        check(not errors, f"no script errors: {errors}")
        browser.close()
    print(json.dumps({"checks": len(CHECKS)}))


if __name__ == "__main__":
    main()
