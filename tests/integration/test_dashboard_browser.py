"""The dashboard at ``/`` in a real headless Chromium (selenium), served by a real worker
(token set, 5 symbols, quick models for BTC and ETH) during a replay of real candles:
the login form (wrong token: 401 and the form again; right token: an HttpOnly SameSite
cookie), every symbol charted, a new signal and a new fill shown without a reload, an alert
message shown in the alerts panel, the language switch (remembered), no console errors, a
390 px wide phone screen without horizontal scrolling, the SSE fallback without WebSocket,
and the load time (Navigation Timing). The static file rules are checked over HTTP on the
same worker.

Chromium and its driver come from Debian (``chromium``, ``chromium-driver``): installed
here with apt-get when missing and running as root, else the browser tests are skipped with
the reason. ``DASHBOARD_SCREENSHOTS=docs/img`` saves the screenshots of docs/DASHBOARD.md.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import subprocess
import time
import urllib.parse
from pathlib import Path

import pytest

from tests.integration.procs import ROOT, Worker, app_env, run_command, wait_for
from tinhieu.data import load_candles, parse_time
from tinhieu.registry import ModelRegistry
from tinhieu.settings import load_settings
from tinhieu.training import train_quick

pytestmark = pytest.mark.integration
TOKEN = "it-dashboard-token-4e8a"
SYMBOLS = {
    "BTC/USDT": "BTCUSDT", "ETH/USDT": "ETHUSDT", "BNB/USDT": "BNBUSDT",
    "SOL/USDT": "SOLUSDT", "XRP/USDT": "XRPUSDT",
}
TRAINED = ("BTC/USDT", "ETH/USDT")  # the others answer NEUTRAL no_model
TRAIN = ("2021-04-14", "2021-04-17")
# Verdicts start after the 300 warm-up candles (05:00); both parts trade (measured with
# these quick models: fills at 05:00-09:00 and at 09:21, 09:35, ... 11:34 stop loss).
PART1 = ("2021-04-18T00:00", "2021-04-18T09:00")
PART2 = ("2021-04-18T09:00", "2021-04-18T12:00")
PART3 = ("2021-04-18T12:00", "2021-04-18T12:30")  # followed over SSE
MIN_CONFIDENCE = 0.40
WEIGHTS = "rf=1,svm=1,lr=1"
LOAD_BUDGET_MS = 1000
# 404s the page expects while data is missing (no signal yet, no monitoring endpoint):
# Chromium logs every non-2xx fetch as a console "error" of source "network".
EXPECTED_404 = ("/api/v1/monitoring/", "/monitoring/", "/api/v1/signals/", "/api/v1/windows/",
                "/api/v1/positions/")


def _apt_install_chromium() -> str | None:
    """Install Debian's chromium and chromium-driver; the reason when it cannot."""
    if shutil.which("apt-get") is None:
        return "no apt-get on this machine: install Chromium and chromedriver by hand"
    if os.geteuid() != 0:
        return "not root: run 'apt-get install chromium chromium-driver' to run this test"
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for cmd in (["apt-get", "update", "-qq"],
                ["apt-get", "install", "-y", "-qq", "chromium", "chromium-driver"]):
        try:
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"{' '.join(cmd)} failed: {exc}"
        if proc.returncode != 0:
            return f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.strip()[-300:]}"
    return None


def _chromium() -> tuple[str, str]:
    """Paths of chromium and chromedriver, installing them if needed; else skip."""
    pytest.importorskip("selenium", reason="selenium is not installed: pip install -e '.[test]'")
    names = ("chromium", "chromium-browser", "google-chrome")
    browser = next((p for p in map(shutil.which, names) if p), None)
    driver = shutil.which("chromedriver")
    if browser is None or driver is None:
        reason = _apt_install_chromium()
        if reason:
            pytest.skip(f"headless Chromium unavailable: {reason}")
        browser = next((p for p in map(shutil.which, names) if p), None)
        driver = shutil.which("chromedriver")
        if browser is None or driver is None:
            pytest.skip("headless Chromium unavailable: apt-get ran but chromium or "
                        "chromedriver is still not on PATH")
    return browser, driver


@pytest.fixture(scope="module")
def chromium_paths() -> tuple[str, str]:
    library = ROOT / "web" / "node_modules" / "lightweight-charts" / "package.json"
    if not library.exists():
        pytest.skip("web/node_modules is missing: run 'npm ci --prefix web' (make test does; "
                    "it needs Node.js and npm)")
    return _chromium()


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory, data_1m) -> Path:
    root = tmp_path_factory.mktemp("models-var")
    settings = load_settings(data_dir=root, min_confidence=MIN_CONFIDENCE,
                             ensemble_weights=WEIGHTS)
    registry = ModelRegistry(settings.models_path)
    for sym in TRAINED:
        df = load_candles(data_1m / f"{SYMBOLS[sym]}_1m.csv.gz", parse_time(TRAIN[0]),
                          parse_time(TRAIN[1]))
        train_quick(df, sym, settings, registry)
    return settings.models_path


@pytest.fixture(scope="module")
def env(kafka, tmp_path_factory, models_dir):
    return app_env(
        kafka.url,
        tmp_path_factory.mktemp("worker"),
        "it-dashboard",
        web_token=TOKEN,
        symbols=",".join(SYMBOLS),
        min_confidence=MIN_CONFIDENCE,
        ensemble_weights=WEIGHTS,
        model_dir=models_dir,
        web_auth_failures_per_minute=SIGN_IN_LIMIT,
    )


SIGN_IN_LIMIT = 8  # the tests before the last send 3 wrong tokens


def replay(env, data_1m, part: tuple[str, str]) -> str:
    files = [str(data_1m / f"{name}_1m.csv.gz") for name in SYMBOLS.values()]
    return run_command(env, "replay", *files, "--max", "--start", part[0], "--end", part[1])


def raw_get(worker: Worker, path: str, headers: dict[str, str] | None = None):
    """A GET with the path sent exactly as given (no client-side normalisation)."""
    conn = http.client.HTTPConnection("127.0.0.1", worker.web_port, timeout=10)
    try:
        conn.request("GET", path, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read()
    finally:
        conn.close()


def test_static_files_are_served_safely(worker) -> None:
    status, headers, body = raw_get(worker, "/static/app.js")
    assert status == 200 and headers["Content-Type"] == "text/javascript; charset=utf-8"
    assert headers["Cache-Control"] == "no-cache" and headers["X-Content-Type-Options"] == "nosniff"
    status, again, _ = raw_get(worker, "/static/app.js", {"If-None-Match": headers["ETag"]})
    assert status == 304
    status, headers, _ = raw_get(worker, "/static/style.css")
    assert status == 200 and headers["Content-Type"].startswith("text/css")
    status, headers, body = raw_get(worker, "/vendor/lightweight-charts.js")
    assert status == 200 and headers["Content-Type"].startswith("text/javascript")
    assert "max-age" in headers["Cache-Control"] and b"Lightweight Charts" in body[:4000]
    for path in ("/static/../README.md", "/static/..%2F..%2FREADME.md", "/static/%2e%2e/setup.cfg",
                 "/static/node_modules/lightweight-charts/package.json", "/static/package.json",
                 "/static/.gitignore", "/static/%2Fetc%2Fpasswd", "/static/..%5c..%5csetup.cfg",
                 "/vendor/..%2Fpackage.json", "/vendor/fancy-canvas.js"):
        status, _, body = raw_get(worker, path)
        assert status in (400, 404), (path, status)
        assert b"[metadata]" not in body and b"root:" not in body and b"tinhieu" not in body[:200]
    # The page and the API need the token (or the login cookie); the page shows the form.
    status, headers, body = raw_get(worker, "/")
    assert status == 200 and b'name="token"' in body and b"/login" in body
    assert headers["Cache-Control"] == "no-store"
    assert raw_get(worker, "/api/v1/symbols")[0] == 401


def _post_login(worker: Worker, token: str):
    body = urllib.parse.urlencode({"token": token})
    conn = http.client.HTTPConnection("127.0.0.1", worker.web_port, timeout=10)
    try:
        conn.request("POST", "/login", body=body,
                     headers={"Content-Type": "application/x-www-form-urlencoded"})
        resp = conn.getresponse()
        return resp.status, resp.getheaders(), resp.read()
    finally:
        conn.close()


def test_login_cookie_over_http(worker) -> None:
    status, _, body = _post_login(worker, "wrong")
    assert status == 401 and b"TINHIEU_WEB_TOKEN" in body and b'name="token"' in body
    status, headers, _ = _post_login(worker, TOKEN)
    assert status == 303
    cookie = next(v for k, v in headers if k.lower() == "set-cookie")
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and TOKEN not in cookie
    session = cookie.split(";", 1)[0]
    status, _, body = raw_get(worker, "/api/v1/symbols", {"Cookie": session})
    assert status == 200 and json.loads(body)["symbols"]
    status, _, body = raw_get(worker, "/", {"Cookie": session})
    assert status == 200 and b'data-auth="on"' in body
    status, _, _ = raw_get(worker, "/api/v1/symbols", {"Cookie": "tinhieu_session=" + TOKEN})
    assert status == 401  # the cookie is not the token itself
    assert TOKEN not in worker.tail(200_000)


@pytest.fixture(scope="module")
def browser(chromium_paths, worker):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary, driver_path = chromium_paths
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1400,1000", "--disable-extensions", "--no-first-run"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(driver_path))
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def console_errors(driver) -> list[dict]:
    """Browser log entries of level SEVERE, minus the expected 404s of missing data."""
    out = []
    for entry in driver.get_log("browser"):
        if entry["level"] != "SEVERE":
            continue
        msg = entry["message"]
        if entry.get("source") == "network" and " 404 " in msg and any(
            p in msg for p in EXPECTED_404
        ):
            continue
        out.append(entry)
    return out


def js(driver, script: str, *args):
    return driver.execute_script(script, *args)


def wait_js(driver, script: str, timeout: float, what: str, *args):
    return wait_for(lambda: js(driver, script, *args), timeout, what, interval=0.2)


def screenshot(driver, name: str, height: int | None = None) -> None:
    """Save a screenshot when DASHBOARD_SCREENSHOTS names a folder (``height``: of the
    window for this shot only)."""
    target = os.environ.get("DASHBOARD_SCREENSHOTS")
    if target:
        path = (ROOT / target / name) if not os.path.isabs(target) else Path(target) / name
        path.parent.mkdir(parents=True, exist_ok=True)
        size = driver.get_window_size()
        if height:
            driver.set_window_size(size["width"], height)
            time.sleep(0.5)  # the charts follow the new size on the next frame
        driver.save_screenshot(str(path))
        if height:
            driver.set_window_size(size["width"], size["height"])


def test_dashboard_in_a_browser(browser, worker, env, data_1m) -> None:
    from selenium.webdriver.common.by import By

    driver = browser
    assert "replayed 2700 candles of 5 symbol(s)" in replay(env, data_1m, PART1)
    last_btc = parse_time(PART1[1]) - 60_000
    wait_for(lambda: worker.get("/health")[1]["last_candle"].get("BTC/USDT") == last_btc,
             60, "part 1 in the BTC window")

    # Login: a wrong token shows the form again with the message; the right one enters.
    driver.get(worker.url + "/")
    driver.find_element(By.ID, "token").send_keys("not-the-token")
    driver.find_element(By.ID, "login").click()
    # The click submits a form: wait for the answer page instead of reading the old one.
    wait_js(driver, "return document.querySelector('.error') !== null", 20, "the login error")
    error = driver.find_element(By.CSS_SELECTOR, ".error").text
    assert "TINHIEU_WEB_TOKEN" in error and driver.find_element(By.ID, "token")
    driver.find_element(By.ID, "token").send_keys(TOKEN)
    driver.find_element(By.ID, "login").click()
    wait_js(driver, "return document.body.dataset.ready === '1'", 20, "the page's data")
    cookie = driver.get_cookie("tinhieu_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["value"] != TOKEN
    driver.get_log("browser")  # the 401 of the wrong token is expected: start clean

    # Load time on a warm worker: Navigation Timing (document) and the app's data ready.
    driver.refresh()
    wait_js(driver, "return document.body.dataset.ready === '1'", 20, "the page's data")
    timing = js(driver, """
        const n = performance.getEntriesByType('navigation')[0];
        return {dcl: n.domContentLoadedEventEnd, load: n.loadEventEnd,
                ready: window.tinhieuReadyMs};""")
    print(f"load with 5 symbols: DOMContentLoaded {timing['dcl']:.0f} ms, load "
          f"{timing['load']:.0f} ms, data shown {timing['ready']:.0f} ms")
    assert timing["load"] < LOAD_BUDGET_MS and timing["ready"] < LOAD_BUDGET_MS, timing

    # Every symbol has a card with a chart; the traded ones show candles and a signal.
    cards = js(driver, "return [...document.querySelectorAll('.card')].map(c => c.dataset.symbol)")
    assert cards == list(SYMBOLS)
    for sym in SYMBOLS:
        card = f"#card-{sym.replace('/', '-')}"
        assert driver.find_elements(By.CSS_SELECTOR, f"{card} .chart canvas"), sym
        assert driver.find_element(By.CSS_SELECTOR, f"{card} .last-price").text, sym
    btc = "#card-BTC-USDT"
    assert len(driver.find_elements(By.CSS_SELECTOR, f"{btc} .votes tbody tr")) == 3
    assert driver.find_elements(By.CSS_SELECTOR, "#orders tbody tr"), "part 1 traded"
    mon = driver.find_element(By.CSS_SELECTOR, f"{btc} .mon-body").text
    assert mon  # "chưa có dữ liệu giám sát" until the monitoring endpoint answers

    # Live: part 2 brings new signals and fills without a reload.
    js(driver, "window.notReloaded = true")
    seen_orders = set(js(driver, "return [...document.querySelectorAll('#orders tbody tr')]"
                                 ".map(r => r.dataset.id)"))
    before = driver.find_element(By.CSS_SELECTOR, f"{btc} .signal-line").text
    assert "replayed 900 candles of 5 symbol(s)" in replay(env, data_1m, PART2)
    wait_js(driver, "return document.querySelector(arguments[0]).textContent !== arguments[1]",
            30, "a new BTC signal on the page", f"{btc} .signal-line", before)
    new_ids = wait_js(
        driver,
        "const seen = new Set(arguments[0]); return [...document.querySelectorAll("
        "'#orders tbody tr')].map(r => r.dataset.id).filter(id => !seen.has(id));",
        30, "a new fill in the orders table", sorted(seen_orders))
    assert js(driver, "return window.notReloaded === true"), "the page reloaded"
    last_part2 = parse_time(PART2[1]) - 60_000
    wait_js(driver, "return document.querySelector(arguments[0]).textContent.includes('11:59')",
            30, "the last candle of part 2", f"{btc} .signal-line")
    print(f"new fills shown live: {len(new_ids)}; last candle {last_part2}")

    screenshot(driver, "dashboard-desktop.png", height=1350)

    # An alert message (the type monitoring pushes) lands in the alerts panel.
    alert = {"id": "it-alert-1", "symbol": "BTC/USDT", "kind": "accuracy_drop",
             "state": "raised", "severity": "warning", "value": 0.41, "threshold": 0.5,
             "message": "độ chính xác 41 % < 50 %", "message_en": "accuracy 41 % < 50 %",
             "at_ms": last_part2, "raised_at_ms": last_part2}
    js(driver, "window.tinhieuDashboard.onMessage(arguments[0])",
       json.dumps({"type": "alert", "data": alert}))
    for where in ("#alerts", f"{btc} .mon-body"):
        wait_js(driver, "return document.querySelector(arguments[0]).textContent"
                        ".includes('độ chính xác 41')", 5, f"the alert in {where}", where)

    # Language: English, remembered after a reload, then Vietnamese again.
    title = "return document.querySelector('h1 [data-i18n=title]').textContent"
    assert js(driver, title) == "Bảng điều khiển"
    driver.find_element(By.ID, "lang-en").click()
    assert js(driver, title) == "Dashboard"
    assert js(driver, "return document.querySelector('#orders-panel h2').textContent") == (
        "Recent orders")
    assert "accuracy 41 % < 50 %" in driver.find_element(By.ID, "alerts").text
    driver.refresh()
    wait_js(driver, "return document.body.dataset.ready === '1'", 20, "the page's data")
    assert js(driver, title) == "Dashboard"
    assert js(driver, "return localStorage.getItem('tinhieu.lang')") == "en"
    driver.find_element(By.ID, "lang-vi").click()
    assert js(driver, title) == "Bảng điều khiển"

    # A phone's width: nothing wider than the 390 px screen.
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": 390, "height": 844, "deviceScaleFactor": 2, "mobile": True})
    try:
        driver.refresh()
        wait_js(driver, "return document.body.dataset.ready === '1'", 20, "the page's data")
        widths = js(driver, """return {inner: window.innerWidth,
            scroll: document.documentElement.scrollWidth,
            widest: Math.max(...[...document.querySelectorAll('.card, .panel')]
                             .map(e => e.getBoundingClientRect().right))};""")
        assert widths["inner"] == 390 and widths["scroll"] <= 390, widths
        assert widths["widest"] <= 390, widths
        screenshot(driver, "dashboard-phone.png")
    finally:
        driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})

    errors = console_errors(driver)
    assert not errors, errors

    # Without WebSocket (an old proxy, a browser policy) the page follows SSE instead.
    driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument",
                           {"source": "delete window.WebSocket;"})
    driver.refresh()
    wait_js(driver, "return document.getElementById('conn').dataset.state === 'sse'", 20,
            "the SSE fallback")
    wait_js(driver, "return document.body.dataset.ready === '1'", 20, "the page's data")
    assert "replayed 150 candles of 5 symbol(s)" in replay(env, data_1m, PART3)
    wait_js(driver, "return document.querySelector(arguments[0]).textContent.includes('12:29')",
            30, "the last candle of part 3 over SSE", f"{btc} .signal-line")
    errors = console_errors(driver)
    assert not errors, errors


def test_wrong_sign_ins_beyond_the_limit_wait(worker) -> None:
    """Last of the module (it locks 127.0.0.1 out for a minute): once the address has sent
    the limit of wrong tokens, the sign-in form answers 429 with Retry-After and says how long
    to wait, the right token included."""
    statuses = []
    for _ in range(SIGN_IN_LIMIT + 1):
        status, _, body = _post_login(worker, "guess")
        statuses.append(status)
        if status == 429:
            break
    assert statuses[-1] == 429 and set(statuses[:-1]) <= {401}, statuses
    status, headers, body = _post_login(worker, TOKEN)
    wait = int(dict((k.lower(), v) for k, v in headers)["retry-after"])
    assert status == 429 and 1 <= wait <= 60
    assert b'name="token"' in body and b"Too many wrong tokens" in body
    assert TOKEN not in worker.tail(200_000)
