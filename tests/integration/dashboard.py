#!/usr/bin/python3
"""The dashboard in a real browser (tests/integration/dashboard.c runs this).

Starts headless Chromium (Debian `chromium`) with the DevTools protocol on a
port it picks, drives it over a WebSocket (python3-websockets) and checks:
  - the page loads and draws snapshots (window.swoopDash.snapshots grows);
  - no console error, exception or failed resource while it runs;
  - the process tree lists every pid given with --pids;
  - the requests/s chart moves while a load runs: --load click presses the
    demo's Load button, --load PORT sends GET /hello from 4 threads here;
  - keeps a screenshot (--screenshot FILE).
Every wait is bounded (--scale multiplies them). Prints one line per check;
exit status 0 when all passed.
"""
import argparse
import asyncio
import base64
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

import websockets

ap = argparse.ArgumentParser()
ap.add_argument("--url", required=True)
ap.add_argument("--pids", required=True, help="comma-separated pids the tree must list")
ap.add_argument("--load", required=True, help="'click' or the port to send GET /hello to")
ap.add_argument("--screenshot", required=True)
ap.add_argument("--demo", action="store_true", help="the demo's buttons must show")
ap.add_argument("--scale", type=float, default=1.0)
args = ap.parse_args()

T0 = time.monotonic()


def log(msg):
    print(f"{time.monotonic() - T0:6.2f}s {msg}", flush=True)


def fail(msg):
    print(f"FAIL {msg}", flush=True)
    sys.exit(1)


class Page:
    def __init__(self, ws):
        self.ws = ws
        self.seq = 0
        self.waiting = {}
        self.errors = []
        self.reader = asyncio.ensure_future(self.read())

    async def read(self):
        try:
            await self.read_all()
        except websockets.exceptions.ConnectionClosed:
            pass  # Browser.close ends every DevTools socket

    async def read_all(self):
        async for raw in self.ws:
            m = json.loads(raw)
            if "id" in m and m["id"] in self.waiting:
                self.waiting.pop(m["id"]).set_result(m)
                continue
            method = m.get("method")
            p = m.get("params", {})
            if method == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                self.errors.append("console.%s: %s" % (p["type"], [a.get("value", a.get("description")) for a in p.get("args", [])]))
            elif method == "Runtime.exceptionThrown":
                d = p.get("exceptionDetails", {})
                self.errors.append("exception: %s" % d.get("exception", {}).get("description", d.get("text")))
            elif method == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
                e = p["entry"]
                self.errors.append("log: %s %s" % (e.get("text"), e.get("url", "")))

    async def call(self, method, params=None, timeout=10):
        self.seq += 1
        fut = asyncio.get_running_loop().create_future()
        self.waiting[self.seq] = fut
        await self.ws.send(json.dumps({"id": self.seq, "method": method, "params": params or {}}))
        m = await asyncio.wait_for(fut, timeout * args.scale)
        if "error" in m:
            fail(f"{method}: {m['error']}")
        return m.get("result", {})

    async def eval(self, expr):
        r = await self.call("Runtime.evaluate", {"expression": expr, "returnByValue": True})
        if "exceptionDetails" in r:
            fail(f"evaluate {expr!r}: {r['exceptionDetails']}")
        return r["result"].get("value")

    async def until(self, expr, what, seconds):
        deadline = time.monotonic() + seconds * args.scale
        while time.monotonic() < deadline:
            v = await self.eval(expr)
            if v:
                return v
            await asyncio.sleep(0.2)
        fail(f"timed out after {seconds * args.scale:.0f} s waiting for {what} ({expr})")


def start_chromium(profile):
    exe = shutil.which("chromium") or "/usr/bin/chromium"
    cmd = [exe, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
           "--no-default-browser-check", "--disable-extensions", "--disable-background-networking",
           "--disable-dev-shm-usage", "--hide-scrollbars", "--window-size=1400,1000",
           "--remote-debugging-port=0", "--remote-debugging-address=127.0.0.1",
           f"--user-data-dir={profile}", "about:blank"]
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    # Chromium names its DevTools endpoint on stderr once it listens.
    found = {}

    def scan():
        for line in proc.stderr:
            m = re.search(r"DevTools listening on (ws://\S+)", line)
            if m and "url" not in found:
                found["url"] = m.group(1)
    threading.Thread(target=scan, daemon=True).start()
    deadline = time.monotonic() + 30 * args.scale
    while "url" not in found and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    if "url" not in found:
        proc.kill()
        fail("chromium did not start its DevTools endpoint")
    return proc, found["url"]


def http_load(port, seconds, stop):
    """4 keep-alive clients sending GET /hello until stop is set or seconds pass."""
    count = [0]

    def client():
        deadline = time.monotonic() + seconds
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            req = b"GET /hello HTTP/1.1\r\nHost: t\r\n\r\n"
            while not stop.is_set() and time.monotonic() < deadline:
                s.sendall(req)
                buf = b""
                while b"\r\n\r\n" not in buf:
                    chunk = s.recv(4096)
                    if not chunk:
                        return
                    buf += chunk
                head, _, body = buf.partition(b"\r\n\r\n")
                n = int(re.search(rb"Content-Length: *(\d+)", head, re.I).group(1))
                while len(body) < n:
                    chunk = s.recv(4096)
                    if not chunk:
                        return
                    body += chunk
                count[0] += 1
            s.close()
        except OSError:
            return
    ts = [threading.Thread(target=client, daemon=True) for _ in range(4)]
    for t in ts:
        t.start()
    return ts, count


async def main():
    want = sorted({int(p) for p in args.pids.split(",") if p})
    with tempfile.TemporaryDirectory(prefix="swoop-chromium-") as profile:
        proc, browser_url = start_chromium(profile)
        try:
            log(f"chromium up: {browser_url}")
            async with websockets.connect(browser_url, max_size=None, open_timeout=10 * args.scale) as bws:
                browser = Page(bws)
                t = await browser.call("Target.createTarget", {"url": "about:blank"})
                port = re.search(r"ws://[^/]+", browser_url).group(0)
                page_url = f"{port}/devtools/page/{t['targetId']}"
                async with websockets.connect(page_url, max_size=None, open_timeout=10 * args.scale) as pws:
                    page = Page(pws)
                    for m in ("Runtime.enable", "Log.enable", "Page.enable"):
                        await page.call(m)
                    await page.call("Page.navigate", {"url": args.url})
                    await page.until("window.swoopDash && swoopDash.snapshots >= 2",
                                     "two snapshots drawn", 20)
                    log("page loaded, snapshots arriving")
                    if args.demo:
                        await page.until("swoopDash.demo && getComputedStyle(document.getElementById('demo')).display !== 'none'",
                                         "the demo's buttons", 5)
                        log("demo buttons shown")
                    # Every pid of the server is in the tree (the test gave the ones /proc lists).
                    listed = await page.until(
                        "(function(){const p=[...document.querySelectorAll('#procs tbody tr')].map(r=>+r.dataset.pid);"
                        f"return {json.dumps(want)}.every(x=>p.includes(x)) ? p : null;}})()",
                        "every pid in the process tree", 10)
                    log(f"process tree lists all {len(want)} pids: {sorted(listed)}")
                    rps = "Chart.getChart('c-rps').data.datasets[0].data"
                    before = await page.eval(f"Math.max(0, ...{rps})")
                    stop = threading.Event()
                    threads = []
                    if args.load == "click":
                        await page.eval("document.getElementById('k-load').value=4;"
                                        "document.getElementById('s-load').value=4;"
                                        "document.getElementById('act-load').click()")
                        await page.until("/^POST \\/demo\\/load.*: 202 /.test(document.getElementById('demo-out').textContent)",
                                         "the load button's answer", 5)
                        log("load started by the dashboard's Load button (4 clients, 4 s)")
                        await page.eval("document.getElementById('n-tasks').value=10;"
                                        "document.getElementById('act-tasks').click()")
                        await page.until("+document.getElementById('t-tasks').textContent >= 10",
                                         "the 10 tasks of the Post tasks button done", 20)
                        log("10 tasks posted by the Post tasks button, done")
                    else:
                        threads, count = http_load(int(args.load), 15 * args.scale, stop)
                        log(f"load started: 4 clients on port {args.load}")
                    peak = await page.until(
                        f"(function(){{const m=Math.max(0,...{rps}.slice(-5)); return m > Math.max(20, {before} * 2) ? m : 0;}})()",
                        "the requests/s chart to move", 15)
                    log(f"requests/s chart moved: {before} before, {peak} during the load")
                    # One more snapshot with the load on, for the screenshot.
                    s0 = await page.eval("swoopDash.snapshots")
                    await page.until(f"swoopDash.snapshots >= {s0 + 2}", "two more snapshots", 10)
                    # The charts keep the load; the capture goes faster without it.
                    stop.set()
                    shot = await page.call("Page.captureScreenshot", {"format": "png"}, timeout=20)
                    with open(args.screenshot, "wb") as f:
                        f.write(base64.b64decode(shot["data"]))
                    log(f"screenshot: {args.screenshot}")
                    for th in threads:
                        th.join(10)
                    if page.errors:
                        for e in page.errors:
                            print(f"  {e}")
                        fail(f"{len(page.errors)} console errors")
                    log("no console errors")
                    await browser.call("Browser.close")
        finally:
            # Browser.close ends it; after a failure it is still up: its whole group goes.
            try:
                proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                pass
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()
    print("OK dashboard", flush=True)


asyncio.run(main())
