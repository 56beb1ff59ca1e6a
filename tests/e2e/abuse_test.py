#!/usr/bin/python3
"""No client can take picker down: each case of issue 19 through the real binary.

Every case starts its own picker-server on 127.0.0.1 ports and drives it as a
hostile or careless client would, then checks that the server bounds what it
spends and keeps serving:

  choice_count     choice_count above 10 is refused naming the field
  limits           data-port request size, exclude, attributes, healthy_http_statuses
  stream           a PickStream client that never reads: the stream stalls, RSS stays flat
  connections      --max-connections closes what is above it; the listener keeps serving
  descriptors      under prlimit, running out of descriptors; the listeners recover
  tls              the same two with --tls-cert: picker accepts TLS connections itself
  http_idle        idle connections to the metrics listener: bounded, and dropped in 2 s
  overload         --max-memory refuses picks and writes, not releases, reads or deletes
  pages            AIP-158 pages; every answer under the 4 MiB of a default client
  full_disk        a small tmpfs: writes answer RESOURCE_EXHAUSTED, a restart works
  damaged_record   a newer record that does not verify: an error, a metric, the older loads
  admin_exposure   a non-loopback admin listener needs a token, mTLS or --admin-insecure
  reflection       the data port's reflection does not describe picker.v1.Admin
  drain            SIGTERM with slow writes and picks in flight exits within the deadline

Run with /usr/bin/python3 (Debian's grpcio). `abuse_test.py CASE...` runs some.
Environment: PICKER_SERVER (binary), PICKER_SOURCE_DIR (repository root).
"""

import atexit
import concurrent.futures
import glob
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
import traceback

FAILURES = []


def fail(msg):
    print("FAIL: " + msg, file=sys.stderr, flush=True)
    FAILURES.append(msg)


def check(cond, msg):
    if cond:
        print("ok: " + msg, flush=True)
    else:
        fail(msg)
    return cond


def die(msg):
    print("FAIL: " + msg, file=sys.stderr)
    sys.exit(1)


try:
    import grpc
except ImportError as e:
    die("cannot import grpc (%s): run with /usr/bin/python3 (Debian python3-grpcio)" % e)

SOURCE_DIR = os.environ.get("PICKER_SOURCE_DIR") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
SERVER = os.environ.get("PICKER_SERVER", "")
if not SERVER or not os.access(SERVER, os.X_OK):
    die("PICKER_SERVER is not an executable picker-server ('%s')" % SERVER)
PROTOC = shutil.which("protoc") or die("protoc not found (Debian protobuf-compiler)")
GRPC_PLUGIN = "/usr/bin/grpc_python_plugin"
BUF = os.path.join(SOURCE_DIR, "node_modules", ".bin", "buf")

TMP = tempfile.mkdtemp(prefix="picker-abuse_test.")
SERVERS = []
MOUNTS = []


def cleanup():
    for s in SERVERS:
        s.kill()
    for m in MOUNTS:
        subprocess.run(["umount", "-l", m], capture_output=True)
    shutil.rmtree(TMP, ignore_errors=True)


atexit.register(cleanup)
signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
signal.signal(signal.SIGALRM, lambda *_: (fail("time limit reached"), sys.exit(1)))
signal.alarm(int(os.environ.get("E2E_TIME_LIMIT", "280")))

stub_dir = os.path.join(TMP, "stubs")
os.makedirs(stub_dir)
protos = sorted(os.path.relpath(p, os.path.join(SOURCE_DIR, "protos"))
                for p in glob.glob(os.path.join(SOURCE_DIR, "protos", "picker", "v1", "*.proto")))
# health.proto under another file name: its module must not be "grpc", which
# would hide grpcio itself.
health_dir = os.path.join(TMP, "health")
os.makedirs(health_dir)
shutil.copy("/usr/share/grpc-proto/grpc/health/v1/health.proto",
            os.path.join(health_dir, "health_check.proto"))
for root, files in ((os.path.join(SOURCE_DIR, "protos"), protos),
                    (health_dir, ["health_check.proto"])):
    r = subprocess.run([PROTOC, "--python_out=" + stub_dir, "--grpc_python_out=" + stub_dir,
                        "--plugin=protoc-gen-grpc_python=" + GRPC_PLUGIN, "-I", root] + files,
                       capture_output=True, text=True)
    if r.returncode != 0:
        die("protoc failed: " + r.stderr)
sys.path.insert(0, stub_dir)
from picker.v1 import admin_pb2, admin_pb2_grpc, picker_pb2, picker_pb2_grpc  # noqa: E402
import health_check_pb2 as health_pb2  # noqa: E402
import health_check_pb2_grpc as health_pb2_grpc  # noqa: E402

T = 15  # seconds, every RPC


class Server:
    """One picker-server process and its clients."""
    count = 0

    def __init__(self, *flags, data_dir=None, prefix=(), expect_listen=True, tls_cert=None):
        Server.count += 1
        self.tls_cert = tls_cert  # PEM the clients trust; None: plaintext.
        self.dir = os.path.join(TMP, "s%d" % Server.count)
        os.makedirs(self.dir)
        self.data_dir = data_dir or os.path.join(self.dir, "data")
        self.log_path = os.path.join(self.dir, "server.log")
        self.flags = list(flags)
        self.prefix = list(prefix)
        self.start(expect_listen)

    def start(self, expect_listen=True):
        self.log = open(self.log_path, "a")
        offset = os.path.getsize(self.log_path)  # A restart reads its own lines.
        args = self.prefix + [SERVER, "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0",
                              "--metrics-listen", "127.0.0.1:0", "--data-dir", self.data_dir]
        args += self.flags
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=self.log)
        SERVERS.append(self)
        if not expect_listen:
            return
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            m = re.findall(r"listening data=(\S+) admin=(\S+) metrics=(\S+)",
                           self.text()[offset:])
            if m:
                self.data, self.admin_addr, self.metrics = m[-1]
                break
            if self.proc.poll() is not None:
                raise RuntimeError("picker-server exited with %d: %s" % (self.proc.returncode,
                                                                       self.text()[-2000:]))
            time.sleep(0.05)
        else:
            raise RuntimeError("picker-server did not listen within 20 s")
        self.data_ch = self.channel(self.data)
        self.admin_ch = self.channel(self.admin_addr)
        self.picker = picker_pb2_grpc.PickerStub(self.data_ch)
        self.admin = admin_pb2_grpc.AdminStub(self.admin_ch)

    def channel(self, address):
        if self.tls_cert is None:
            return grpc.insecure_channel(address)
        return grpc.secure_channel(address, grpc.ssl_channel_credentials(self.tls_cert))

    def text(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def rss(self):
        with open("/proc/%d/status" % self.proc.pid) as f:
            return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1)) * 1024

    def fds(self):
        return len(os.listdir("/proc/%d/fd" % self.proc.pid))

    def metric(self, name):
        import urllib.request
        body = urllib.request.urlopen("http://%s/metrics" % self.metrics, timeout=T).read().decode()
        m = re.search(r"^%s (\S+)$" % re.escape(name), body, re.M)
        return float(m.group(1)) if m else None

    def stop(self, sig=signal.SIGTERM, timeout=30):
        for ch in ("data_ch", "admin_ch"):
            if hasattr(self, ch):
                getattr(self, ch).close()
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def create(self, name, targets=(), **lb):
        up = admin_pb2.Upstream(name=name)
        if lb:
            up.load_balancer.CopyFrom(admin_pb2.LoadBalancer(**lb))
        self.admin.CreateUpstream(admin_pb2.CreateUpstreamRequest(upstream=up), timeout=T)
        if targets:
            self.replace(name, targets)

    def replace(self, name, addresses):
        req = admin_pb2.ReplaceTargetsRequest(upstream=name)
        for a in addresses:
            req.targets.add(address=a)
        return self.admin.ReplaceTargets(req, timeout=T)

    def health_ok(self, address, timeout=3):
        ch = self.channel(address)
        try:
            r = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=timeout)
            return r.status == health_pb2.HealthCheckResponse.SERVING
        except grpc.RpcError:
            return False
        finally:
            ch.close()


def code_of(call):
    try:
        call()
        return grpc.StatusCode.OK, ""
    except grpc.RpcError as e:
        return e.code(), e.details() or ""
    except ValueError as e:  # The channel was closed meanwhile.
        return grpc.StatusCode.CANCELLED, str(e)


def addresses(n, prefix="10.%d.%d.%d:80"):
    return [prefix % ((i >> 16) & 255, (i >> 8) & 255, i & 255) for i in range(n)]


# ---- Cases ---------------------------------------------------------------------

def case_choice_count():
    s = Server()
    lr = lambda n: admin_pb2.LoadBalancer(least_request=admin_pb2.LeastRequest(choice_count=n))
    code, msg = code_of(lambda: s.admin.CreateUpstream(admin_pb2.CreateUpstreamRequest(
        upstream=admin_pb2.Upstream(name="huge", load_balancer=lr(4294967295))), timeout=T))
    check(code == grpc.StatusCode.INVALID_ARGUMENT and "choice_count" in msg and "2..10" in msg,
          "choice_count 4294967295 is INVALID_ARGUMENT naming the field: %s %s" % (code, msg))
    s.create("ten", addresses(50), least_request=admin_pb2.LeastRequest(choice_count=10))
    start = time.monotonic()
    for _ in range(200):
        s.picker.Pick(picker_pb2.PickRequest(upstream="ten"), timeout=T)
    check(time.monotonic() - start < 10, "200 picks with choice_count 10 take %.2f s"
          % (time.monotonic() - start))
    s.stop()


def case_limits():
    s = Server()
    s.create("u", addresses(3))
    big = picker_pb2.PickRequest(upstream="u")
    big.attributes.headers["x"] = "v" * (100 << 10)
    code, msg = code_of(lambda: s.picker.Pick(big, timeout=T))
    check(code == grpc.StatusCode.RESOURCE_EXHAUSTED,
          "a 100 KiB Pick on the data port is refused (64 KiB limit): %s %s" % (code, msg[:80]))
    req = picker_pb2.PickRequest(upstream="u", exclude=addresses(65))
    code, msg = code_of(lambda: s.picker.Pick(req, timeout=T))
    check(code == grpc.StatusCode.INVALID_ARGUMENT and msg.startswith("exclude:"),
          "65 exclude entries: %s %s" % (code, msg))
    req = picker_pb2.PickRequest(upstream="u", exclude=addresses(64))
    check(code_of(lambda: s.picker.Pick(req, timeout=T))[0] == grpc.StatusCode.OK,
          "64 exclude entries are served")
    req = picker_pb2.PickRequest(upstream="u")
    for i in range(101):
        req.attributes.headers["h%d" % i] = "v"
    code, msg = code_of(lambda: s.picker.Pick(req, timeout=T))
    check(code == grpc.StatusCode.INVALID_ARGUMENT and "attributes.headers" in msg,
          "101 headers: %s %s" % (code, msg))
    up = admin_pb2.Upstream(name="statuses")
    up.health_checks.active.healthy_http_statuses.extend([200] * 101)
    code, msg = code_of(lambda: s.admin.CreateUpstream(
        admin_pb2.CreateUpstreamRequest(upstream=up), timeout=T))
    check(code == grpc.StatusCode.INVALID_ARGUMENT and "healthy_http_statuses" in msg,
          "101 healthy_http_statuses: %s %s" % (code, msg))
    # The admin port keeps its own, larger limit: a 3 MB ReplaceTargets passes.
    s.create("bulk")
    r = s.replace("bulk", ["t%06d.%s.example.internal:80" % (i, "x" * 60) for i in range(20000)])
    check(r.next_page_token != "", "a 3 MB ReplaceTargets on the admin port is served")
    s.stop()


def case_stream():
    s = Server("--max-pending-stream-answers", "16")
    s.create("u", addresses(10))
    sent = [0]
    stop = threading.Event()

    def requests():
        i = 0
        while not stop.is_set():
            i += 1
            sent[0] = i
            yield picker_pb2.PickStreamRequest(request_id=i, pick=picker_pb2.PickRequest(
                upstream="u", attributes=picker_pb2.RequestAttributes(headers={"pad": "p" * 300})))

    # The client's own receive window stays small (no BDP probing), so that
    # it fills soon: from then on, every answer it does not read waits in
    # the server, which must stop reading rather than keep them all.
    ch = grpc.insecure_channel(s.data, options=[("grpc.http2.bdp_probe", 0),
                                                ("grpc.http2.lookahead_bytes", 65536)])
    before = s.rss()
    call = picker_pb2_grpc.PickerStub(ch).PickStream(requests())  # The answers are never read.
    # Until the windows are full and nothing more goes in for a second (on
    # a busy machine filling them takes longer), within 30 s.
    last, stalled_at = -1, None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        time.sleep(0.5)
        if sent[0] != last:
            last, stalled_at = sent[0], None
        elif stalled_at is None:
            stalled_at = time.monotonic()
        elif time.monotonic() - stalled_at >= 1:
            break
    at_3s, rss_3s = sent[0], s.rss()
    time.sleep(3)
    at_6s, rss_6s = sent[0], s.rss()
    print("stream: %d messages sent when the stream stalled, %d 3 s later; RSS %d -> %d -> %d KiB"
          % (at_3s, at_6s, before >> 10, rss_3s >> 10, rss_6s >> 10))
    check(at_6s - at_3s < 100, "the stream stalls once picker stops reading (%d more messages "
          "in the last 3 s)" % (at_6s - at_3s))
    check(at_6s < 20000, "a client that never reads gets at most a window of messages in (%d)"
          % at_6s)
    check(rss_6s - before < 32 << 20, "the server's RSS stays flat: +%d KiB" % ((rss_6s - before) >> 10))
    stop.set()
    call.cancel()
    ch.close()
    # Other clients are served meanwhile and after.
    check(code_of(lambda: s.picker.Pick(picker_pb2.PickRequest(upstream="u"), timeout=T))[0]
          == grpc.StatusCode.OK, "picks are served beside the stalled stream")
    s.stop()


def raw_connections(address, n):
    host, port = address.rsplit(":", 1)
    out = []
    for _ in range(n):
        c = socket.socket()
        c.settimeout(5)
        try:
            c.connect((host, int(port)))
        except OSError:
            c.close()
            break
        out.append(c)
    return out


def closed_by_peer(sock, wait=1.5):
    sock.settimeout(wait)
    try:
        return sock.recv(1, socket.MSG_PEEK) == b""
    except socket.timeout:
        return False
    except OSError:
        return True


def case_connections(tls=()):
    s = Server("--max-connections", "4", *tls_flags(tls), tls_cert=tls_pem(tls))
    conns = raw_connections(s.data, 12)
    time.sleep(0.5)
    closed = sum(1 for c in conns if closed_by_peer(c, 0.3))
    check(closed >= 7, "--max-connections 4: %d of %d connections above it closed at once"
          % (closed, len(conns)))
    refused = s.metric('picker_connections_refused_total{listener="data"}')
    check(refused is not None and refused >= 7, "picker_connections_refused_total counts them (%s)"
          % refused)
    for c in conns:
        c.close()
    # gRPC closes its side of a connection a moment after the client: until
    # then it still counts, and a new one may be refused.
    served = False
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not served:
        served = s.health_ok(s.data)
        time.sleep(0.2)
    check(served, "the data listener serves again once connections closed")
    s.stop()


def case_descriptors():
    prlimit = shutil.which("prlimit")
    if not prlimit:
        fail("prlimit not found (util-linux)")
        return
    s = Server(prefix=[prlimit, "--nofile=128:256", "--"])
    check(re.search(r"descriptor limit: soft 256 \(was 128\), hard 256", s.text()) is not None,
          "the soft descriptor limit is raised to the hard one, and both are logged")
    s.stop()
    run_out_of_descriptors(prlimit)


def run_out_of_descriptors(prlimit, tls=()):
    s = Server("--max-connections", "1000", *tls_flags(tls), tls_cert=tls_pem(tls),
               prefix=[prlimit, "--nofile=96:96", "--"])
    s.create("u", addresses(3))
    conns = raw_connections(s.data, 200)
    time.sleep(1.5)
    check("cannot accept a connection" in s.text(), "the server ran out of descriptors and said "
          "so (%d connections open)" % len(conns))
    for c in conns:
        c.close()
    ok_data = ok_admin = False
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not (ok_data and ok_admin):
        ok_data = ok_data or s.health_ok(s.data)
        ok_admin = ok_admin or s.health_ok(s.admin_addr)
        time.sleep(0.2)
    check(ok_data and ok_admin, "both listeners serve again once descriptors are free "
          "(data %s, admin %s)" % (ok_data, ok_admin))
    ch = s.channel(s.data)
    code, _ = code_of(lambda: picker_pb2_grpc.PickerStub(ch).Pick(
        picker_pb2.PickRequest(upstream="u"), timeout=T))
    ch.close()
    check(code == grpc.StatusCode.OK, "picks are served again after the shortage")
    check(metrics_served(s), "the metrics listener serves again after the shortage")
    failures = s.metric('picker_accept_failures_total{listener="data"}')
    check(failures is not None and failures >= 1, "picker_accept_failures_total counts it (%s)"
          % failures)
    s.stop()


def metrics_served(s, wait=10):
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        try:
            if s.metric("picker_store_damaged_records_total") is not None:
                return True
        except OSError:
            pass
        time.sleep(0.2)
    return False


def tls_flags(tls):
    return ["--tls-cert", tls[0], "--tls-key", tls[1]] if tls else []


def tls_pem(tls):
    if not tls:
        return None
    with open(tls[0], "rb") as f:
        return f.read()


def case_tls():
    cert, key = os.path.join(TMP, "tls.pem"), os.path.join(TMP, "tls.key")
    r = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                        "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1",
                        "-keyout", key, "-out", cert], capture_output=True, text=True)
    if r.returncode != 0:
        fail("openssl could not make a certificate: " + r.stderr)
        return
    case_connections(tls=(cert, key))
    s = Server(*tls_flags((cert, key)), tls_cert=tls_pem((cert, key)))
    s.create("audited")
    check(re.search(r'audit method=CreateUpstream upstream="audited" result=OK '
                    r'peer=ipv4:127\.0\.0\.1:\d+', s.text()) is not None,
          "a TLS admin call's audit line names the client's address")
    s.stop()
    run_out_of_descriptors(shutil.which("prlimit"), tls=(cert, key))


def case_http_idle():
    s = Server()
    before = s.fds()
    conns = raw_connections(s.metrics, 200)
    time.sleep(1)
    held = s.fds() - before
    check(len(conns) == 200 and held <= 8 + 32 + 4,
          "200 idle connections to --metrics-listen hold %d descriptors (8 threads, 32 queued)"
          % held)
    for c in conns:
        c.close()
    check(metrics_served(s, wait=5), "/metrics is served once they close")
    conns = raw_connections(s.metrics, 24)
    start = time.monotonic()
    served = metrics_served(s, wait=20)
    took = time.monotonic() - start
    check(served and took < 15, "with 24 idle connections held open, a scrape is answered in "
          "%.1f s (each idle one is dropped after 2 s)" % took)
    for c in conns:
        c.close()
    s.stop()


def kong_status(s, method, path, data=None):
    """The HTTP status of a request to the server's --kong-admin-listen."""
    import urllib.error
    import urllib.request
    address = re.search(r"Kong Admin API listening on (\S+)", s.text())[1]
    request = urllib.request.Request("http://%s%s" % (address, path), method=method,
                                     data=data.encode() if data else None)
    try:
        return urllib.request.urlopen(request, timeout=T).status
    except urllib.error.HTTPError as e:
        return e.code


def case_overload():
    s = Server("--max-memory", str(16 << 20), "--kong-admin-listen", "127.0.0.1:0")
    s.create("small", addresses(3))
    lease = s.picker.Pick(picker_pb2.PickRequest(upstream="small"), timeout=T)
    check(s.metric("picker_overloaded") == 0, "not overloaded at start (%s bytes allocated)"
          % s.metric("picker_memory_allocated_bytes"))
    check(s.metric("picker_memory_allocated_bytes") > 0, "the allocator's bytes are measured")
    # A ring of 2097152 entries takes about 25 MiB by itself (the server
    # starts at about 1 MiB allocated, with glibc's allocator or ASan's).
    s.create("ring", addresses(2), ring_hash=admin_pb2.RingHash(min_ring_size=2097152))
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and s.metric("picker_overloaded") != 1:
        time.sleep(0.1)
    check(s.metric("picker_overloaded") == 1, "overloaded above --max-memory (%s bytes)"
          % s.metric("picker_memory_allocated_bytes"))
    code, msg = code_of(lambda: s.picker.Pick(picker_pb2.PickRequest(upstream="small"), timeout=T))
    check(code == grpc.StatusCode.RESOURCE_EXHAUSTED and "--max-memory" in msg,
          "a new pick is RESOURCE_EXHAUSTED: %s %s" % (code, msg))
    code, msg = code_of(lambda: s.create("another"))
    check(code == grpc.StatusCode.RESOURCE_EXHAUSTED, "an admin write is RESOURCE_EXHAUSTED: %s" % code)
    check(kong_status(s, "POST", "/upstreams", "name=another") == 503,
          "a write through Kong's Admin API is refused too (503)")
    check(kong_status(s, "GET", "/upstreams/small") == 200, "a read through it is served")
    code, _ = code_of(lambda: s.picker.Release(picker_pb2.ReleaseRequest(
        upstream="small", lease_id=lease.lease_id), timeout=T))
    check(code == grpc.StatusCode.OK, "a release still works: %s" % code)
    code, _ = code_of(lambda: s.admin.ListUpstreams(admin_pb2.ListUpstreamsRequest(), timeout=T))
    check(code == grpc.StatusCode.OK, "reads still work: %s" % code)
    check(s.health_ok(s.data) and s.health_ok(s.admin_addr), "health still answers SERVING")
    refused = s.metric('picker_overload_refusals_total{what="pick"}')
    check(refused is not None and refused >= 1, "picker_overload_refusals_total counts refusals (%s)"
          % refused)
    code, _ = code_of(lambda: s.admin.DeleteUpstream(admin_pb2.DeleteUpstreamRequest(name="ring"),
                                                     timeout=T))
    check(code == grpc.StatusCode.OK, "a delete still works: %s" % code)
    # The client keeps trying, as clients do: its refused picks also let the
    # server's threads drop what they cached of the deleted upstream.
    deadline = time.monotonic() + 10
    code = None
    while time.monotonic() < deadline and code != grpc.StatusCode.OK:
        code, _ = code_of(lambda: s.picker.Pick(picker_pb2.PickRequest(upstream="small"),
                                                timeout=T))
        time.sleep(0.05)
    check(code == grpc.StatusCode.OK, "picks resume once memory falls (%s bytes)"
          % s.metric("picker_memory_allocated_bytes"))
    s.stop()


def case_pages():
    s = Server()
    s.create("u", addresses(250))
    first = s.admin.ListTargets(admin_pb2.ListTargetsRequest(upstream="u"), timeout=T)
    check(len(first.targets) == 100 and first.next_page_token,
          "ListTargets without page_size: the first 100 and a token (%d)" % len(first.targets))
    seen, token = [t.address for t in first.targets], first.next_page_token
    while token:
        page = s.admin.ListTargets(admin_pb2.ListTargetsRequest(upstream="u", page_size=70,
                                                                page_token=token), timeout=T)
        seen += [t.address for t in page.targets]
        token = page.next_page_token
    check(seen == addresses(250), "the pages list every target once, in host-set order")
    code, msg = code_of(lambda: s.admin.ListTargets(admin_pb2.ListTargetsRequest(
        upstream="u", page_token="garbage"), timeout=T))
    check(code == grpc.StatusCode.INVALID_ARGUMENT and "page_token" in msg, "a bad token: %s" % msg)
    code, msg = code_of(lambda: s.admin.ListTargets(admin_pb2.ListTargetsRequest(
        upstream="u", page_size=-1), timeout=T))
    check(code == grpc.StatusCode.INVALID_ARGUMENT and "page_size" in msg, "page_size -1: %s" % msg)
    h = s.admin.GetUpstreamHealth(admin_pb2.GetUpstreamHealthRequest(name="u", page_size=200),
                                  timeout=T)
    h2 = s.admin.GetUpstreamHealth(admin_pb2.GetUpstreamHealthRequest(
        name="u", page_token=h.next_page_token), timeout=T)
    check(len(h.targets) == 200 and len(h2.targets) == 50 and not h2.next_page_token and
          h.total_targets == 250, "GetUpstreamHealth pages its targets (200 + 50 of %d)"
          % h.total_targets)
    # The largest target a ReplaceTargets can hold: the answer is the first 1000.
    host = ".".join(["h" * 63] * 3) + "." + "h" * 56  # 248 characters
    long_targets = ["%s%05d:65535" % (host, i) for i in range(1500)]
    req = admin_pb2.ReplaceTargetsRequest(upstream="u")
    for a in long_targets:
        req.targets.add(address=a, zone="z" * 256, hash_key="k" * 1024)
    r = s.admin.ReplaceTargets(req, timeout=T)
    check(len(r.targets) == 1000 and r.next_page_token and r.ByteSize() < 4 << 20,
          "ReplaceTargets of 1500 maximal targets answers 1000 of them in %d bytes, and a token"
          % r.ByteSize())
    rest = s.admin.ListTargets(admin_pb2.ListTargetsRequest(
        upstream="u", page_size=1000, page_token=r.next_page_token), timeout=T)
    check([t.address for t in rest.targets] == long_targets[1000:],
          "ListTargets continues after the ReplaceTargets answer")
    # Maximal upstreams: a page ends before 3 MiB, whatever page_size says.
    policies = [admin_pb2.HashPolicy(cookie=admin_pb2.HashPolicy.Cookie(name="c" * 256,
                                                                        path="/" + "p" * 1023))
                for _ in range(16)]
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: s.admin.CreateUpstream(admin_pb2.CreateUpstreamRequest(
            upstream=admin_pb2.Upstream(name="big%03d" % i, load_balancer=admin_pb2.LoadBalancer(
                maglev=admin_pb2.Maglev(hash_policies=policies, table_size=3)))), timeout=T),
            range(160)))
    names, token, sizes = [], "", []
    while True:
        page = s.admin.ListUpstreams(admin_pb2.ListUpstreamsRequest(page_size=1000, page_token=token),
                                     timeout=T)
        sizes.append(page.ByteSize())
        names += [u.name for u in page.upstreams]
        token = page.next_page_token
        if not token:
            break
    check(max(sizes) < 3 << 20 and len(sizes) >= 2 and
          names == ["big%03d" % i for i in range(160)] + ["u"],
          "ListUpstreams of 161 upstreams (160 of about 22 KB): pages of %s bytes" % sizes)
    s.stop()


def case_full_disk():
    mount = os.path.join(TMP, "tmpfs")
    os.makedirs(mount)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", mount],
                       capture_output=True, text=True)
    if r.returncode != 0:
        print("SKIP full_disk: cannot mount a tmpfs here (%s); the full-disk case is NOT tested"
              % r.stderr.strip(), flush=True)
        return
    MOUNTS.append(mount)
    data = os.path.join(mount, "data")
    s = Server(data_dir=data)
    s.create("u", addresses(5))
    lease1 = s.picker.Pick(picker_pb2.PickRequest(upstream="u"), timeout=T).lease_id
    filler = os.path.join(mount, "filler")
    with open(filler, "wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError:
            pass
    code, msg = code_of(lambda: s.replace("u", addresses(2000)))
    check(code == grpc.StatusCode.RESOURCE_EXHAUSTED and "disk" in msg,
          "a write on a full disk is RESOURCE_EXHAUSTED naming the disk: %s %s" % (code, msg[:120]))
    code, msg = code_of(lambda: s.create("new", addresses(500)))
    check(code == grpc.StatusCode.RESOURCE_EXHAUSTED, "creating an upstream too: %s" % code)
    listed = s.admin.ListTargets(admin_pb2.ListTargetsRequest(upstream="u"), timeout=T)
    check(len(listed.targets) == 5, "the refused write changed nothing (%d targets)" % len(listed.targets))
    check(s.stop() == 0, "the server stops cleanly on a full disk")
    s.start()
    check(True, "the server starts again while its disk is full")
    lease2 = s.picker.Pick(picker_pb2.PickRequest(upstream="u"), timeout=T).lease_id
    check(lease2 >> 40 > lease1 >> 40, "picks work, and lease ids carry a new boot (%d > %d)"
          % (lease2 >> 40, lease1 >> 40))
    code, _ = code_of(lambda: s.replace("u", addresses(2000)))
    check(code == grpc.StatusCode.RESOURCE_EXHAUSTED, "writes stay refused while it is full")
    os.unlink(filler)
    code, msg = code_of(lambda: s.replace("u", addresses(2000)))
    check(code == grpc.StatusCode.OK, "writes resume once space returns: %s %s" % (code, msg))
    check(s.stop() == 0, "stops")
    s.start()
    listed = s.admin.ListTargets(admin_pb2.ListTargetsRequest(upstream="u", page_size=1000), timeout=T)
    check(len(listed.targets) == 1000, "the write made after space returned survived a restart")
    s.stop()


def case_damaged_record():
    s = Server()
    s.create("u")                      # slot0: the record without targets
    s.replace("u", addresses(3))       # slot1: the newer record, with three
    check(s.stop() == 0, "stops")
    newer = os.path.join(s.data_dir, "upstreams", "u-u.slot1")
    with open(newer, "r+b") as f:
        f.seek(-1, os.SEEK_END)
        last = f.read(1)
        f.seek(-1, os.SEEK_END)
        f.write(bytes([last[0] ^ 0xff]))
    s.start()
    errors = [l for l in s.text().splitlines() if "[error]" in l and "u-u.slot1" in l]
    check(errors, "start-up logs an error naming the damaged file: %s" % errors)
    check(s.metric("picker_store_damaged_records_total") == 1,
          "picker_store_damaged_records_total counts it (%s)"
          % s.metric("picker_store_damaged_records_total"))
    listed = s.admin.ListTargets(admin_pb2.ListTargetsRequest(upstream="u"), timeout=T)
    check(len(listed.targets) == 0, "the older whole record was loaded (%d targets)"
          % len(listed.targets))
    s.stop()


def case_admin_exposure():
    s = Server("--admin-listen", "0.0.0.0:0", expect_listen=False)
    code = s.proc.wait(20)
    check(code == 1 and "--admin-insecure" in s.text(),
          "a non-loopback admin listener without a token stops start-up: %s" % s.text()[-300:])
    # Allowed: start-up goes past the check, to the data listener, which
    # asks for a port that cannot be (so that nothing binds 0.0.0.0 here).
    token = os.path.join(TMP, "token")
    with open(token, "w") as f:
        f.write("secret\n")
    for why in (["--admin-insecure"], ["--admin-token-file", token]):
        s = Server("--admin-listen", "0.0.0.0:0", "--listen", "127.0.0.1:99999", *why,
                   expect_listen=False)
        code = s.proc.wait(20)
        check(code == 1 and "--admin-insecure" not in s.text() and "(--listen)" in s.text(),
              "%s lets the admin listener through: %s" % (why[0], s.text().strip()[-160:]))


def case_reflection():
    if not os.access(BUF, os.X_OK):
        fail("buf not found at %s (scripts/install-deps.sh installs it)" % BUF)
        return
    s = Server()
    curl = [BUF, "curl", "--protocol", "grpc", "--http2-prior-knowledge"]
    r = subprocess.run(curl + ["--list-methods", "http://" + s.data], capture_output=True, text=True)
    check(r.returncode == 0 and "picker.v1.Picker/Pick" in r.stdout and "Admin" not in r.stdout,
          "the data port lists its own methods only: %s" % r.stdout.split())
    r = subprocess.run(curl + ["--data", '{"name":"x"}', "http://%s/picker.v1.Admin/GetUpstream"
                               % s.data], capture_output=True, text=True)
    check(r.returncode != 0 and "picker.v1.Admin" in r.stderr,
          "nor does it describe picker.v1.Admin: %s" % r.stderr.strip())
    r = subprocess.run(curl + ["--list-methods", "http://" + s.admin_addr], capture_output=True,
                       text=True)
    check("picker.v1.Admin/CreateUpstream" in r.stdout, "the admin port still describes Admin")
    s.stop()


def case_drain():
    s = Server("--drain-timeout-ms", "1000")
    s.create("u", addresses(3))
    s.create("slow", maglev=admin_pb2.Maglev(table_size=5000011))
    stop = threading.Event()

    def picks():
        while not stop.is_set():
            code_of(lambda: s.picker.Pick(picker_pb2.PickRequest(upstream="u"), timeout=5))

    pickers = [threading.Thread(target=picks) for _ in range(4)]
    for t in pickers:
        t.start()
    # Slow writes in flight: each rebuilds a 5000011-entry Maglev table.
    pool = concurrent.futures.ThreadPoolExecutor(8)
    for i in range(8):
        pool.submit(code_of, lambda i=i: s.replace("slow", addresses(20000 + i)))
    time.sleep(0.5)
    start = time.monotonic()
    code = s.stop(timeout=20)
    took = time.monotonic() - start
    stop.set()
    for t in pickers:
        t.join()
    pool.shutdown(wait=True)
    check(code == 0 and took < 1.0 + 1.0 + 1.5,
          "SIGTERM with slow writes and picks in flight exits %d within the drain timeout and "
          "its 1 s of grace (%.2f s)" % (code, took))


CASES = {name[5:]: fn for name, fn in globals().items() if name.startswith("case_")}
chosen = sys.argv[1:] or list(CASES)
for name in chosen:
    print("==== %s" % name, flush=True)
    start = time.monotonic()
    try:
        CASES[name]()
    except Exception:
        fail("%s raised:\n%s" % (name, traceback.format_exc()))
    for srv in SERVERS:
        if FAILURES and srv.proc.poll() is None:
            pass
    print("==== %s took %.1f s" % (name, time.monotonic() - start), flush=True)
if FAILURES:
    for srv in SERVERS[-2:]:
        print("---- last lines of %s ----\n%s" % (srv.log_path, srv.text()[-1500:]), file=sys.stderr)
    print("%d failure(s)" % len(FAILURES), file=sys.stderr)
    sys.exit(1)
print("all cases passed")
