#!/usr/bin/python3
"""The status page in a real browser: headless Debian Chromium through
chromedriver and Selenium, against a real picker-server.

The server runs with --status-page and an admin token, and holds upstreams in
every state: `checkout` (RingHash) with a healthy target, a heavier healthy
one, one ejected by FAILURE releases, one forced unhealthy with
SetTargetHealth and one of weight 0; `inventory` (Maglev) under a steady
trickle of picks; `payments` in panic (three of four targets forced
unhealthy); and 60 `zz-filler-NN` upstreams so that the list has two pages.
The test logs in through the form (a wrong token first), then checks what a
person sees: the totals, each state's word and symbol with its reason and
ejection end, the hash-space and weight bars, panic, picks per second after a
refresh, the filter and the pager, and a narrow window. It also checks
/status.json's token guard and its 400 for a bad parameter, and that /metrics
is still served on the same listener. It saves screenshots
(status_page.png, status_page_narrow.png in the working directory, or the
--screenshot path), which is how README's picture is made
(scripts/status-page-screenshot.sh).

Run with /usr/bin/python3 (Debian's python3-selenium, python3-grpcio).
Environment: PICKER_SERVER (binary), PICKER_SOURCE_DIR (repository root).
"""

import argparse
import atexit
import glob
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

FAILURES = []


def fail(msg):
    print("FAIL: " + msg, file=sys.stderr)
    FAILURES.append(msg)


def check(cond, msg):
    print(("ok: " if cond else "FAIL: ") + msg, file=sys.stdout if cond else sys.stderr)
    if not cond:
        FAILURES.append(msg)
    return cond


def die(msg):
    print("FAIL: " + msg, file=sys.stderr)
    sys.exit(1)


parser = argparse.ArgumentParser()
parser.add_argument("--screenshot", default="status_page.png",
                    help="where to save the wide screenshot (the narrow one goes beside it)")
ARGS = parser.parse_args()

try:
    import grpc
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
except ImportError as e:
    die("cannot import %s: run with /usr/bin/python3 after scripts/install-deps.sh "
        "(Debian python3-grpcio, python3-selenium)" % e)

SOURCE_DIR = os.environ.get("PICKER_SOURCE_DIR") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
SERVER = os.environ.get("PICKER_SERVER", "")
if not SERVER or not os.access(SERVER, os.X_OK):
    die("PICKER_SERVER is not an executable picker-server ('%s'; ctest sets it)" % SERVER)
for tool in ("/usr/bin/chromium", "/usr/bin/chromedriver", "/usr/bin/grpc_python_plugin"):
    if not os.access(tool, os.X_OK):
        die("%s not found: run scripts/install-deps.sh --tests (Debian chromium, chromium-driver, "
            "protobuf-compiler-grpc)" % tool)
if not shutil.which("protoc"):
    die("protoc not found on PATH: run scripts/install-deps.sh (Debian protobuf-compiler)")

TMP = tempfile.mkdtemp(prefix="picker-status_page_test.")
PROCS = []
TOKEN = "status-page-test-token"


def cleanup():
    for p in PROCS:
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
    log = os.path.join(TMP, "server.log")
    if FAILURES and os.path.exists(log):
        with open(log, errors="replace") as f:
            print("---- last lines of picker-server's log ----\n" + "".join(f.readlines()[-30:]),
                  file=sys.stderr)
    shutil.rmtree(TMP, ignore_errors=True)


atexit.register(cleanup)
signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
signal.signal(signal.SIGALRM, lambda *_: (fail("time limit reached"), sys.exit(1)))
signal.alarm(int(os.environ.get("E2E_TIME_LIMIT", "100")))

# ---- Stubs, configuration, server ---------------------------------------------
stub_dir = os.path.join(TMP, "stubs")
os.makedirs(stub_dir)
protos = sorted(os.path.relpath(p, os.path.join(SOURCE_DIR, "protos"))
                for p in glob.glob(os.path.join(SOURCE_DIR, "protos", "picker", "v1", "*.proto")))
r = subprocess.run(["protoc", "--python_out=" + stub_dir, "--grpc_python_out=" + stub_dir,
                    "--plugin=protoc-gen-grpc_python=/usr/bin/grpc_python_plugin",
                    "-I", os.path.join(SOURCE_DIR, "protos")] + protos,
                   capture_output=True, text=True, timeout=60)
if r.returncode != 0:
    die("protoc failed: " + r.stderr)
sys.path.insert(0, stub_dir)
from picker.v1 import admin_pb2, admin_pb2_grpc, picker_pb2, picker_pb2_grpc  # noqa: E402

CONFIG = """upstreams:
  - name: checkout
    loadBalancer: {type: RingHash, ringHash: {minRingSize: 1024}}
    healthChecks: {passive: {consecutiveFailures: 2, baseEjectionTime: 120s}}
    targets:
      - {target: "10.0.0.1:8080", weight: 100, zone: eu-west-1a}
      - {target: "10.0.0.2:8080", weight: 200, zone: eu-west-1b}
      - {target: "10.0.0.3:8080", weight: 100, zone: eu-west-1a}
      - {target: "10.0.0.4:8080", weight: 100, zone: eu-west-1b}
      - {target: "10.0.0.5:8080", weight: 0, zone: eu-west-1a}
  - name: inventory
    loadBalancer: {type: Maglev}
    targets:
      - {target: "10.1.0.1:8080"}
      - {target: "10.1.0.2:8080"}
      - {target: "10.1.0.3:8080", weight: 50}
  - name: payments
    loadBalancer: {type: RoundRobin}
    targets:
      - {target: "10.2.0.1:8080"}
      - {target: "10.2.0.2:8080"}
      - {target: "10.2.0.3:8080"}
      - {target: "10.2.0.4:8080"}
""" + "".join("  - name: zz-filler-%02d\n    targets: [{target: \"10.9.%d.1:80\"}]\n" % (i, i)
              for i in range(60))
with open(os.path.join(TMP, "picker.yaml"), "w") as f:
    f.write(CONFIG)
with open(os.path.join(TMP, "token"), "w") as f:
    f.write(TOKEN + "\n")

log = open(os.path.join(TMP, "server.log"), "w")
server = subprocess.Popen([SERVER, "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0",
                           "--metrics-listen", "127.0.0.1:0", "--data-dir", os.path.join(TMP, "data"),
                           "--config", os.path.join(TMP, "picker.yaml"), "--status-page",
                           "--admin-token-file", os.path.join(TMP, "token")],
                          stdout=subprocess.DEVNULL, stderr=log)
PROCS.append(server)
addrs = None
deadline = time.monotonic() + 20
while addrs is None and time.monotonic() < deadline and server.poll() is None:
    with open(os.path.join(TMP, "server.log"), errors="replace") as f:
        m = re.search(r"listening data=(\S+) admin=(\S+) metrics=(\S+)", f.read())
    addrs = m.groups() if m else time.sleep(0.1)
if addrs is None:
    die("picker-server did not start (log above)")
DATA, ADMIN, METRICS = addrs
BASE = "http://" + METRICS
print("picker-server: data=%s admin=%s metrics=%s" % addrs)

# ---- The states -----------------------------------------------------------------
AUTH = (("authorization", "Bearer " + TOKEN),)
data_ch, admin_ch = grpc.insecure_channel(DATA), grpc.insecure_channel(ADMIN)
picker = picker_pb2_grpc.PickerStub(data_ch)
admin = admin_pb2_grpc.AdminStub(admin_ch)
UNHEALTHY = admin_pb2.SetTargetHealthRequest.UNHEALTHY
for up, address in [("checkout", "10.0.0.4:8080"), ("payments", "10.2.0.1:8080"),
                    ("payments", "10.2.0.2:8080"), ("payments", "10.2.0.3:8080")]:
    admin.SetTargetHealth(admin_pb2.SetTargetHealthRequest(upstream=up, address=address,
                                                           override=UNHEALTHY),
                          metadata=AUTH, timeout=10)


def release(up, lease, outcome):
    picker.Release(picker_pb2.ReleaseRequest(upstream=up, lease_id=lease, outcome=outcome), timeout=10)


# Two FAILURE releases in a row eject 10.0.0.3 (consecutiveFailures: 2).
failures = 0
for h in range(0, 1 << 64, (1 << 64) // 4000):
    p = picker.Pick(picker_pb2.PickRequest(upstream="checkout", hash=h), timeout=10)
    hit = p.target == "10.0.0.3:8080"
    release("checkout", p.lease_id,
            picker_pb2.ReleaseRequest.FAILURE if hit else picker_pb2.ReleaseRequest.SUCCESS)
    failures += hit
    if failures == 2:
        break
# The ejection is published by the control plane's thread a moment after the
# release that caused it.
deadline = time.monotonic() + 10
while True:
    health = admin.GetUpstreamHealth(admin_pb2.GetUpstreamHealthRequest(name="checkout"),
                                     metadata=AUTH, timeout=10)
    ejected = [t.address for t in health.targets
               if list(t.reasons) == [admin_pb2.TargetHealth.PASSIVE]]
    if ejected or time.monotonic() > deadline:
        break
    time.sleep(0.05)
if not check(ejected == ["10.0.0.3:8080"], "10.0.0.3 is ejected by two FAILURE releases (%s)" % ejected):
    sys.exit(1)
# One lease held on checkout, so a target shows an active request.
held = picker.Pick(picker_pb2.PickRequest(upstream="checkout", hash=1), timeout=10)

# A steady trickle of picks on inventory while the browser looks.
stop_traffic = threading.Event()


def traffic():
    n = 0
    while not stop_traffic.is_set():
        n += 1
        p = picker.Pick(picker_pb2.PickRequest(upstream="inventory", hash=n * 0x9E3779B97F4A7C15 % (1 << 64)),
                        timeout=10)
        release("inventory", p.lease_id, picker_pb2.ReleaseRequest.SUCCESS)
        time.sleep(0.01)


traffic_thread = threading.Thread(target=traffic, daemon=True)
traffic_thread.start()


# ---- /status.json and /metrics over plain HTTP ------------------------------------
def http_get(path, headers=None):
    try:
        with urllib.request.urlopen(urllib.request.Request(BASE + path, headers=headers or {}),
                                    timeout=10) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


status, body = http_get("/status.json")
check(status == 401 and "admin token" in json.loads(body)["message"],
      "/status.json without the token: 401 (%d %s)" % (status, body[:80]))
BEARER = {"Authorization": "Bearer " + TOKEN}
status, body = http_get("/status.json?size=0", BEARER)
check(status == 400 and json.loads(body)["message"].startswith("size: "),
      "/status.json?size=0: 400 naming the parameter (%d %s)" % (status, body))
status, body = http_get("/status.json?filter=checkout", BEARER)
doc = json.loads(body) if status == 200 else {}
check(status == 200 and [u["name"] for u in doc["upstreams"]] == ["checkout"],
      "/status.json?filter=checkout with the bearer token: that upstream only")
shares = {t["address"]: t["hash_share"] for t in doc["upstreams"][0]["targets"]} if doc else {}
check(abs(sum(shares.values()) - 1) < 1e-6 and shares["10.0.0.3:8080"] == 0 and
      shares["10.0.0.2:8080"] > shares["10.0.0.1:8080"] > 0,
      "checkout's hash shares: the ring's healthy targets own all of it, the heavier one more (%s)"
      % shares)
status, body = http_get("/metrics")
check(status == 200 and 'picker_picks_total{upstream="checkout"' in body,
      "/metrics is served on the same listener, without the token")

# ---- The page in headless Chromium --------------------------------------------------
options = webdriver.ChromeOptions()
options.binary_location = "/usr/bin/chromium"
for flag in ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--user-data-dir=" + os.path.join(TMP, "chromium"), "--window-size=1280,1000"]:
    options.add_argument(flag)
driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver", log_path=os.devnull), options=options)


def wait(what, condition, seconds=15):
    try:
        return WebDriverWait(driver, seconds, poll_frequency=0.1).until(lambda d: condition())
    except Exception:  # noqa: BLE001 - a timeout is a failed check, not a crash
        fail("timed out waiting for " + what)
        return None


# Read in one script call: the page refreshes every second, and a read spread
# over several WebDriver calls could straddle two renderings.
READ_SECTION = """
const s = document.querySelector(`section.upstream[data-name="${arguments[0]}"]`);
if (!s) return null;
const width = (tr, kind) => {
  const bar = tr.querySelector(`.bar.${kind} span`);
  return bar ? parseFloat(bar.style.width) : null;
};
return {
  badge: s.querySelector("h2 .badge").innerText,
  hashBars: s.querySelectorAll(".bar.hash").length,
  thead: getComputedStyle(s.querySelector("thead")).display,
  rows: [...s.querySelectorAll("tr.target")].map(tr => {
    const c = tr.querySelectorAll("td");
    return {address: c[1].innerText, state: tr.dataset.state, text: c[0].innerText,
            hash: width(tr, "hash"), weight: width(tr, "weight"), picks: c[5].innerText,
            x: c[1].getBoundingClientRect().x};
  })};
"""


def section(name):
    return driver.execute_script(READ_SECTION, name)


def names():
    return driver.execute_script(
        "return [...document.querySelectorAll('section.upstream')].map(s => s.dataset.name)")


def rows(name):
    """address -> the row as READ_SECTION reads it."""
    found = section(name)
    return {r["address"]: r for r in found["rows"]} if found else {}


def run_browser_checks():
    driver.get(BASE + "/status")
    check("Admin token" in driver.page_source and driver.find_elements(By.NAME, "token"),
          "/status without the token shows the login form")
    driver.find_element(By.NAME, "token").send_keys("wrong-token\n")
    wait("the refusal", lambda: "not the admin token" in driver.page_source)
    driver.find_element(By.NAME, "token").send_keys(TOKEN + "\n")
    wait("the page after logging in", lambda: section("checkout") is not None)
    driver.get(BASE + "/status?refresh=1")
    if not wait("the upstreams", lambda: section("checkout") is not None):
        return
    header = driver.find_element(By.TAG_NAME, "header").text
    check("upstreams 63" in header and "in panic 1" in header and "0.1.0" in header,
          "the header shows the totals and the version: %r" % header)
    check(driver.find_element(By.ID, "range").text == "1\u201350 of 63",
          "the pager: %r" % driver.find_element(By.ID, "range").text)
    check_checkout()
    check_panic_and_rates()
    check_pager_and_filter()
    driver.save_screenshot(ARGS.screenshot)
    check(os.path.getsize(ARGS.screenshot) > 10000, "screenshot saved to " + ARGS.screenshot)
    check_narrow()


def check_checkout():
    r = rows("checkout")
    states = {a: v["state"] for a, v in r.items()}
    check(states == {"10.0.0.1:8080": "healthy", "10.0.0.2:8080": "healthy", "10.0.0.3:8080": "ejected",
                     "10.0.0.4:8080": "unhealthy", "10.0.0.5:8080": "disabled"},
          "checkout's rows and states: %s" % states)
    text = {a: v["text"].replace("\n", " ") for a, v in r.items()}
    check(text["10.0.0.1:8080"].startswith("\u2714 healthy"), "healthy: symbol and word (%r)" % text["10.0.0.1:8080"])
    check(re.match(r"^\u25D4 ejected returns in (1m \d+s|\d+s)$", text["10.0.0.3:8080"]) is not None,
          "ejected: symbol, word and when it returns (%r)" % text["10.0.0.3:8080"])
    check(text["10.0.0.4:8080"] == "\u2716 unhealthy set by an operator",
          "manually unhealthy: symbol, word and reason (%r)" % text["10.0.0.4:8080"])
    check(text["10.0.0.5:8080"] == "\u25CB disabled weight 0", "weight 0: %r" % text["10.0.0.5:8080"])
    hashes = {a: v["hash"] for a, v in r.items()}
    weights = {a: v["weight"] for a, v in r.items()}
    check(abs(weights["10.0.0.1:8080"] - 33.33) < 0.01 and abs(weights["10.0.0.2:8080"] - 66.67) < 0.01
          and weights["10.0.0.3:8080"] == weights["10.0.0.4:8080"] == weights["10.0.0.5:8080"] == 0,
          "weight bars: 1/3 and 2/3 for the healthy targets, empty for the others (%s)" % weights)
    check(all(abs(hashes[a] - shares[a] * 100) < 0.01 for a in hashes) and hashes["10.0.0.2:8080"] > 55,
          "hash bars are the ring's shares from /status.json (%s)" % hashes)


def check_panic_and_rates():
    panic, calm = section("payments")["badge"], section("checkout")["badge"]
    check(panic == "\u26A0 PANIC" and calm == "no panic", "payments shows panic, checkout not (%r, %r)"
          % (panic, calm))
    check(section("inventory")["hashBars"] == 3,
          "inventory (Maglev) has a hash-space bar per target")
    rates = wait("picks per second on inventory after a refresh",
                 lambda: [v["picks"] for v in rows("inventory").values()
                          if re.match(r"^\d+(\.\d+)?$", v["picks"]) and float(v["picks"]) > 0])
    check(bool(rates), "inventory's targets show picks per second: %s" % rates)
    check(all(v["picks"] in ("0.00", "\u2013") for v in rows("payments").values()),
          "payments, never picked, shows no picks per second")


def check_pager_and_filter():
    driver.find_element(By.ID, "next").click()
    wait("page 2", lambda: driver.find_element(By.ID, "range").text == "51\u201363 of 63")
    page2 = names()
    check(len(page2) == 13 and page2[-1] == "zz-filler-59", "page 2 holds the last 13 upstreams")
    driver.find_element(By.ID, "prev").click()
    wait("page 1 again", lambda: section("checkout") is not None)
    box = driver.find_element(By.ID, "filter")
    box.send_keys("INVENT")
    wait("the filter", lambda: names() == ["inventory"])
    check("filter=INVENT" in driver.current_url, "the filter is kept in the address (%s)" % driver.current_url)
    box.clear()
    box.send_keys(" ")  # clear() fires no input event; a space does, and is trimmed.
    wait("the whole list back", lambda: len(names()) == 50)


def check_narrow():
    driver.set_window_size(390, 900)
    time.sleep(0.3)
    overflow = driver.execute_script(
        "return document.documentElement.scrollWidth - document.documentElement.clientWidth")
    check(overflow <= 0, "at 390 px wide nothing scrolls sideways (overflow %d px)" % overflow)
    checkout = section("checkout")
    check(checkout["thead"] == "none" and all(r["x"] < 40 for r in checkout["rows"]),
          "at 390 px the rows stack as cards (labels beside values)")
    narrow = re.sub(r"(\.png)?$", "_narrow.png", ARGS.screenshot, count=1)
    driver.save_screenshot(narrow)


try:
    run_browser_checks()
finally:
    driver.quit()
    stop_traffic.set()
    traffic_thread.join(timeout=10)
    release("checkout", held.lease_id, picker_pb2.ReleaseRequest.SUCCESS)
    server.send_signal(signal.SIGTERM)
    check(server.wait(timeout=15) == 0, "picker-server exits 0 on SIGTERM")
    cleanup()

if FAILURES:
    print("status_page_test: %d check(s) failed" % len(FAILURES), file=sys.stderr)
    sys.exit(1)
print("status_page_test: all checks passed")
