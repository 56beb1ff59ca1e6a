#!/usr/bin/python3
"""status_bench: /status.json and the status page with many upstreams.

Starts picker-server with --status-page and a --config of N upstreams (10,000
by default) of T targets each (10), a quarter RingHash, a quarter Maglev, the
rest RoundRobin, its data directory in /dev/shm (so that loading is not a
benchmark of the disk). Then:
  1. times GET /status.json (a page of 50 upstreams with their targets, and
     the totals over all of them) for the first page, a middle page, the
     last page, a filter matching 10 upstreams and one matching none;
  2. loads /status in headless Chromium and times until the first page of
     upstreams is drawn, then a page change, and a filter typed in.
Figures are reported, not asserted (BENCHMARKS.md).

  PICKER_SERVER=build/picker-server /usr/bin/python3 bench/load/status_bench.py [N] [T]
"""

import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

N = int(sys.argv[1]) if len(sys.argv) > 1 else 10000
T = int(sys.argv[2]) if len(sys.argv) > 2 else 10
SERVER = os.environ.get("PICKER_SERVER", "build/picker-server")
TMP = tempfile.mkdtemp(prefix="picker-status-bench.", dir="/dev/shm")
KINDS = ["RingHash", "Maglev", "RoundRobin", "RoundRobin"]


def write_config(path):
    with open(path, "w") as f:
        f.write("upstreams:\n")
        for i in range(N):
            targets = ", ".join('{target: "10.%d.%d.%d:80"}' % (i // 256 % 256, i % 256, t)
                                for t in range(T))
            f.write("  - name: svc-%05d\n    loadBalancer: {type: %s}\n    targets: [%s]\n"
                    % (i, KINDS[i % 4], targets))


def start_server():
    config = os.path.join(TMP, "picker.yaml")
    write_config(config)
    log_path = os.path.join(TMP, "server.log")
    started = time.monotonic()
    proc = subprocess.Popen([SERVER, "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0",
                             "--metrics-listen", "127.0.0.1:0", "--status-page", "--config", config,
                             "--data-dir", os.path.join(TMP, "data")],
                            stdout=subprocess.DEVNULL, stderr=open(log_path, "w"))
    while proc.poll() is None:
        m = re.search(r"metrics=(\S+)", open(log_path, errors="replace").read())
        if m:
            print("server up with %d upstreams x %d targets in %.1f s" % (N, T, time.monotonic() - started))
            return proc, "http://" + m.group(1)
        time.sleep(0.2)
    sys.exit("picker-server exited: " + open(log_path).read()[-2000:])


def time_json(base, label, query, runs=20):
    times, size = [], 0
    for _ in range(runs):
        t = time.perf_counter()
        with urllib.request.urlopen(base + "/status.json?" + query, timeout=30) as resp:
            size = len(resp.read())
        times.append((time.perf_counter() - t) * 1000)
    times.sort()
    print("/status.json %-28s median %6.1f ms  p95 %6.1f ms  max %6.1f ms  %7d bytes"
          % (label, statistics.median(times), times[int(len(times) * 0.95) - 1], times[-1], size))


def time_page(base):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--user-data-dir=" + os.path.join(TMP, "chromium"), "--window-size=1280,1000"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    wait = WebDriverWait(driver, 60, poll_frequency=0.02)
    count = "return document.querySelectorAll('section.upstream').length"
    try:
        t = time.perf_counter()
        driver.get(base + "/status?refresh=0")
        wait.until(lambda d: d.execute_script(count) == 50)
        print("page: first 50 upstreams drawn %.0f ms after navigation" % ((time.perf_counter() - t) * 1000))
        t = time.perf_counter()
        driver.find_element(By.ID, "next").click()
        wait.until(lambda d: d.find_element(By.ID, "range").text.startswith("51"))
        print("page: next page drawn in %.0f ms" % ((time.perf_counter() - t) * 1000))
        t = time.perf_counter()
        driver.find_element(By.ID, "filter").send_keys("svc-0999")
        wait.until(lambda d: d.execute_script(count) == 10)
        print("page: filter 'svc-0999' applied in %.0f ms (250 ms of it is the typing pause)"
              % ((time.perf_counter() - t) * 1000))
        # Inside the page: fetch, parse and draw a page of 50, without
        # WebDriver's polling in the way (load() is the page's own refresh).
        driver.find_element(By.ID, "filter").clear()
        inside = []
        for offset in range(0, 500, 50):
            inside.append(driver.execute_async_script(
                "const done = arguments[arguments.length - 1];"
                "state.filter = ''; state.offset = arguments[0]; const t = performance.now();"
                "load().then(() => done(performance.now() - t));", offset))
        inside.sort()
        print("page: in the page, fetch + parse + draw of 50 upstreams: median %.0f ms, max %.0f ms"
              " (10 pages)" % (statistics.median(inside), inside[-1]))
        heap = driver.execute_script("return performance.memory ? performance.memory.usedJSHeapSize : 0")
        print("page: %d DOM nodes, JS heap %.1f MiB" % (
            driver.execute_script("return document.getElementsByTagName('*').length"), heap / 2**20))
    finally:
        driver.quit()


def main():
    proc, base = start_server()
    try:
        time_json(base, "first page (size=50)", "size=50")
        time_json(base, "middle page (offset=5000)", "size=50&offset=5000")
        time_json(base, "last page (offset=%d)" % (N - 50), "size=50&offset=%d" % (N - 50))
        time_json(base, "filter=svc-0999 (10 match)", "filter=svc-0999")
        time_json(base, "filter=nothing (0 match)", "filter=nothing")
        time_page(base)
        rss = int(re.search(r"VmRSS:\s+(\d+)", open("/proc/%d/status" % proc.pid).read()).group(1))
        print("server RSS %.0f MiB" % (rss / 1024))
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        shutil.rmtree(TMP, ignore_errors=True)


main()
