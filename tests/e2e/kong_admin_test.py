#!/usr/bin/python3
"""Kong's Admin API on --kong-admin-listen, driven by curl as Kong's docs do.

- Kong's load-balancing guide: its upstream command and its two target
  commands, verbatim but for the port; picks then alternate between the two
  targets (through picker-cli pick, over gRPC).
- Create, read, update and delete through each route, with Kong's status
  codes and error shapes (schema violation code 2, unique violation code 5,
  {"message": "Not found"}), Kong's default port, pages, ids by name or UUID.
- Kong's upstream fields: consistent-hashing on a header with an ip fallback
  (picks with one header value go to one target), health checks, and the
  values picker cannot honour (400 naming the field).
- State made over HTTP is seen over gRPC, and the other way round.
- The admin token: Authorization: Bearer and Kong-Admin-Token.

Environment: PICKER_SERVER and PICKER_CLI (ctest passes them).
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

SERVER = os.environ.get("PICKER_SERVER", "")
CLI = os.environ.get("PICKER_CLI", "")
CURL = shutil.which("curl")
failures = []


def check(condition, message):
    print(("ok: " if condition else "FAIL: ") + message, flush=True)
    if not condition:
        failures.append(message)
    return condition


class Server:
    def __init__(self, tmp, *flags):
        self.log_path = os.path.join(tmp, "server%d.log" % len(os.listdir(tmp)))
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [SERVER, "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0",
             "--metrics-listen", "127.0.0.1:0", "--kong-admin-listen", "127.0.0.1:0",
             "--data-dir", os.path.join(tmp, "data%d" % len(os.listdir(tmp)))] + list(flags),
            stdout=subprocess.DEVNULL, stderr=self.log)
        deadline = time.time() + 20
        while time.time() < deadline:
            text = self.text()
            kong = re.search(r"Kong Admin API listening on (\S+)", text)
            grpc = re.search(r"listening data=(\S+) admin=(\S+)", text)
            if kong and grpc:
                self.kong, self.data, self.admin = kong[1], grpc[1], grpc[2]
                self.port = self.kong.rsplit(":", 1)[1]
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise SystemExit("FAIL: picker-server did not start:\n" + self.text())

    def text(self):
        with open(self.log_path) as f:
            return f.read()

    def curl(self, method, path, *args):
        """(status, parsed JSON or None) of one request."""
        r = subprocess.run([CURL, "-s", "-o", "-", "-w", "\n%{http_code}", "-X", method,
                            "http://127.0.0.1:%s%s" % (self.port, path)] + list(args),
                           capture_output=True, text=True, timeout=30)
        body, _, code = r.stdout.rpartition("\n")
        try:
            return int(code), json.loads(body) if body.strip() else None
        except ValueError:
            return int(code), body

    def cli(self, *args):
        r = subprocess.run([CLI] + list(args) + ["--addr", self.data, "--admin-addr", self.admin],
                           capture_output=True, text=True, timeout=30)
        return r.returncode, r.stdout + r.stderr

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(15)


def picked(server, upstream, *flags, count=1):
    out = []
    for _ in range(count):
        rc, text = server.cli("pick", upstream, "--release", *flags)
        m = re.search(r"target=(\S+)", text)
        out.append(m[1] if rc == 0 and m else "error: " + text.strip())
    return out


def guide(s):
    """Kong's load-balancing guide, as written but for the port."""
    commands = [
        "curl -X POST http://localhost:8001/upstreams --data name=example_upstream",
        "curl -X POST http://localhost:8001/upstreams/example_upstream/targets "
        "--data target='httpbin.konghq.com:80'",
        "curl -X POST http://localhost:8001/upstreams/example_upstream/targets "
        "--data target='httpbun.com:80'",
    ]
    for command in commands:
        r = subprocess.run(["bash", "-c", command.replace(":8001", ":" + s.port)],
                           capture_output=True, text=True, timeout=30)
        check(r.returncode == 0 and '"id"' in r.stdout, "the guide's command: %s -> %s"
              % (command, r.stdout[:80]))
    got = picked(s, "example_upstream", count=4)
    check(sorted(set(got)) == ["httpbin.konghq.com:80", "httpbun.com:80"] and
          all(got[i] != got[i + 1] for i in range(3)), "picks alternate between the two: %s" % got)


def upstream_routes(s):
    code, body = s.curl("POST", "/upstreams", "--data", "name=example_upstream")
    check(code == 409 and body.get("code") == 5 and body.get("name") == "unique constraint violation"
          and body.get("fields") == {"name": "example_upstream"},
          "a second POST of a name is 409 with Kong's unique violation: %s" % body)
    code, body = s.curl("POST", "/upstreams", "-H", "Content-Type: application/json", "--data",
                        json.dumps({"name": "users", "hash_on": "header", "hash_on_header": "X-User",
                                    "hash_fallback": "ip", "slots": 20000}))
    check(code == 201 and body["algorithm"] == "consistent-hashing" and body["slots"] == 20000
          and body["hash_on_header"] == "x-user" and body["hash_fallback"] == "ip",
          "JSON POST with hash_on makes consistent-hashing: %s" % code)
    uid = body["id"]
    code, by_id = s.curl("GET", "/upstreams/" + uid)
    check(code == 200 and by_id["name"] == "users", "GET by Kong id")
    code, again = s.curl("GET", "/upstreams/users")
    check(again["id"] == uid, "the id is stable: the same by name")
    rc, text = s.cli("get", "users")
    check(rc == 0 and re.search(r"ringHash\.minRingSize\s+20000", text) and "x-user" in text,
          "the HTTP upstream is seen over gRPC (ring of 20000, header x-user)")
    for field, value, why in (("algorithm", "latency", "not supported"),
                              ("hash_on", "consumer", "not supported"),
                              ("slots", "5", "between 10 and 65536"),
                              ("healthchecks.threshold", "10", "Kong's default"),
                              ("healthchecks.active.type", "https", "not supported"),
                              ("colour", "red", "unknown field")):
        code, body = s.curl("PATCH", "/upstreams/users", "--data", "%s=%s" % (field, value))
        key = field.replace("[]", "")
        check(code == 400 and body.get("code") == 2 and body.get("name") == "schema violation"
              and why in body.get("fields", {}).get(key, ""),
              "PATCH %s=%s is 400 naming the field: %s" % (field, value, body))
    rc, text = s.cli("get", "users")
    check("20000" in text, "the refused PATCHes changed nothing")
    code, body = s.curl("PATCH", "/upstreams/users", "--data", "algorithm=least-connections")
    check(code == 200 and body["algorithm"] == "least-connections" and body["hash_on"] == "none",
          "PATCH algorithm=least-connections")
    code, body = s.curl("PATCH", "/upstreams/users", "--data", "healthchecks.active.healthy.interval=5",
                        "--data", "healthchecks.active.healthy.successes=2", "--data",
                        "healthchecks.active.unhealthy.http_failures=3", "--data",
                        "healthchecks.passive.unhealthy.http_failures=4")
    check(code == 200 and body["healthchecks"]["active"]["healthy"]["interval"] == 5,
          "PATCH health checks")
    rc, text = s.cli("get", "users")
    check(re.search(r"healthChecks\.active\.interval\s+5s", text) and
          re.search(r"consecutiveFailures\s+4", text), "they are picker's checks")
    s.cli("update", "users", "--lease-ttl", "9s")
    code, body = s.curl("PUT", "/upstreams/users", "--data", "algorithm=round-robin")
    check(code == 200 and body["algorithm"] == "round-robin" and
          body["healthchecks"]["active"]["healthy"]["interval"] == 0, "PUT replaces Kong's fields")
    rc, text = s.cli("get", "users")
    check(rc == 0 and re.search(r"leaseTtl\s+9s", text),
          "PUT keeps the fields Kong has no name for (lease TTL)")
    rc, _ = s.cli("create", "grpc-made", "--strategy", "maglev")
    code, body = s.curl("GET", "/upstreams/grpc-made")
    check(rc == 0 and code == 200 and body["algorithm"] is None and
          body["picker_strategy"] == "maglev", "an upstream made over gRPC, over HTTP: %s" % body)
    code, page = s.curl("GET", "/upstreams?size=2")
    code2, rest = s.curl("GET", page.get("next") or "/none")
    names = [u["name"] for u in page["data"] + rest["data"]]
    check(names == ["example_upstream", "grpc-made", "users"] and rest["next"] is None,
          "pages of 2 with next and offset: %s" % names)
    code, body = s.curl("DELETE", "/upstreams/grpc-made")
    check(code == 204, "DELETE is 204")
    code, body = s.curl("GET", "/upstreams/grpc-made")
    check(code == 404 and body == {"message": "Not found"}, "then GET is 404 Not found")
    code, _ = s.curl("DELETE", "/upstreams/grpc-made")
    check(code == 204, "DELETE again is 204, as in Kong")


def tags(s):
    """Tags on upstreams and targets are kept and returned, over HTTP and gRPC."""
    code, body = s.curl("POST", "/upstreams", "-H", "Content-Type: application/json", "--data",
                        json.dumps({"name": "tagged", "tags": ["team-a", "prod"]}))
    check(code == 201 and body["tags"] == ["team-a", "prod"], "POST keeps tags: %s" % body.get("tags"))
    created = body.get("created_at")
    check(isinstance(created, int) and abs(created - time.time()) < 60 and
          body.get("updated_at") == created, "created_at and updated_at are Unix seconds: %s" % created)
    time.sleep(1.1)  # Kong's times are whole seconds.
    code, body = s.curl("PATCH", "/upstreams/tagged", "--data", "algorithm=least-connections")
    check(code == 200 and body["tags"] == ["team-a", "prod"], "PATCH without tags keeps them")
    check(body.get("created_at") == created and body.get("updated_at", 0) > created,
          "PATCH keeps created_at and moves updated_at: %s -> %s, %s" % (
              created, body.get("created_at"), body.get("updated_at")))
    rc, text = s.cli("get", "tagged", "-o", "json")
    check(rc == 0 and json.loads(text).get("tags") == ["team-a", "prod"],
          "the tags are seen over gRPC: %s" % text.strip())
    code, body = s.curl("POST", "/upstreams/tagged/targets", "--data", "target=10.3.0.1:80",
                        "--data", "tags[]=blue", "--data", "tags[]=canary")
    check(code == 201 and body["tags"] == ["blue", "canary"],
          "a target's form tags[] are kept: %s" % body.get("tags"))
    check(isinstance(body.get("created_at"), int) and body["created_at"] >= created,
          "a target has its created_at: %s" % body.get("created_at"))
    code, body = s.curl("GET", "/upstreams/tagged/targets/10.3.0.1:80")
    check(code == 200 and body["tags"] == ["blue", "canary"], "and returned")
    code, body = s.curl("PUT", "/upstreams/tagged/targets/10.3.0.1:80", "--data", "weight=5")
    check(code == 200 and body["tags"] is None, "PUT replaces the target: no tags: %s" % body)
    code, body = s.curl("PATCH", "/upstreams/tagged", "-H", "Content-Type: application/json",
                        "--data", json.dumps({"tags": ["a,b"]}))
    check(code == 400 and "tags[0]" in body.get("fields", {}),
          "a tag with ',' is 400 naming tags[0]: %s" % body)
    code, body = s.curl("PUT", "/upstreams/tagged", "--data", "algorithm=round-robin")
    check(code == 200 and body["tags"] is None, "PUT replaces the upstream: no tags")
    s.curl("DELETE", "/upstreams/tagged")


def target_routes(s):
    code, body = s.curl("POST", "/upstreams/users/targets", "--data", "target=10.0.0.1")
    check(code == 201 and body["target"] == "10.0.0.1:8000" and body["weight"] == 100,
          "a target without a port gets Kong's 8000")
    tid = body["id"]
    code, body = s.curl("POST", "/upstreams/users/targets", "--data", "target=10.0.0.1:8000")
    check(code == 409 and body["code"] == 5, "POST of an existing target is 409")
    code, body = s.curl("PUT", "/upstreams/users/targets/10.0.0.2:80", "--data", "weight=50")
    check(code == 200 and body["weight"] == 50, "PUT creates a target")
    code, body = s.curl("PATCH", "/upstreams/users/targets/" + tid, "--data", "weight=7")
    check(code == 200 and body["weight"] == 7 and body["target"] == "10.0.0.1:8000",
          "PATCH by target id")
    code, body = s.curl("GET", "/upstreams/users/targets/10.0.0.1:8000")
    check(code == 200 and body["id"] == tid, "GET by address")
    rc, text = s.cli("targets", "users")
    check(re.search(r"10\.0\.0\.1:8000\s+7", text) and "10.0.0.2:80" in text,
          "targets made over HTTP are seen over gRPC")
    s.cli("put-target", "users", "10.0.0.3:80")
    code, body = s.curl("GET", "/upstreams/users/targets")
    check([t["target"] for t in body["data"]] == ["10.0.0.1:8000", "10.0.0.2:80", "10.0.0.3:80"],
          "a target put over gRPC is listed over HTTP")
    code, body = s.curl("POST", "/upstreams/users/targets", "--data", "target=10.0.0.9:80",
                        "--data", "weight=70000")
    check(code == 400 and "weight" in body["fields"], "weight above 65535 is 400 naming it")
    code, _ = s.curl("PUT", "/upstreams/users/targets/10.0.0.3:80/unhealthy")
    check(code == 204, "PUT .../unhealthy is 204")
    code, body = s.curl("GET", "/upstreams/users/health")
    health = {t["target"]: t["health"] for t in body["data"]}
    check(health.get("10.0.0.3:80") == "UNHEALTHY", "health shows it UNHEALTHY: %s" % health)
    check(all(t != "10.0.0.3:80" for t in picked(s, "users", count=6)), "picks avoid it")
    code, _ = s.curl("PUT", "/upstreams/users/targets/10.0.0.3:80/healthy")
    code, body = s.curl("GET", "/upstreams/users/health")
    check(code == 200 and {t["target"]: t["health"] for t in body["data"]}["10.0.0.3:80"] != "UNHEALTHY",
          "PUT .../healthy takes it back")
    code, _ = s.curl("DELETE", "/upstreams/users/targets/10.0.0.3:80")
    rc, text = s.cli("targets", "users")
    check(code == 204 and "10.0.0.3:80" not in text, "DELETE of a target, seen over gRPC")
    code, body = s.curl("GET", "/upstreams/nowhere/targets")
    check(code == 404, "targets of a missing upstream: 404")


def hashing(s):
    s.curl("POST", "/upstreams", "--data", "name=sticky", "--data", "hash_on=header", "--data",
           "hash_on_header=x-user")
    for i in range(1, 5):
        s.curl("POST", "/upstreams/sticky/targets", "--data", "target=10.1.0.%d:80" % i)
    for user in ("alice", "bob", "carol"):
        got = picked(s, "sticky", "--header", "x-user=" + user, count=3)
        check(len(set(got)) == 1 and not got[0].startswith("error"),
              "picks with x-user=%s all go to one target: %s" % (user, got))
    # hash_on cookie: a request without the cookie gets one (a session
    # cookie, as Kong sets), and the request is hashed on its value.
    s.curl("POST", "/upstreams", "--data", "name=cookied", "--data", "hash_on=cookie", "--data",
           "hash_on_cookie=session", "--data", "hash_on_cookie_path=/app")
    for i in range(1, 5):
        s.curl("POST", "/upstreams/cookied/targets", "--data", "target=10.2.0.%d:80" % i)
    rc, text = s.cli("pick", "cookied", "--source-ip", "10.9.9.9", "--release")
    given = re.search(r"target=(\S+).* set_cookie=session=([0-9a-f]{16})", text)
    check(rc == 0 and given is not None,
          "hash_on cookie: a pick without the cookie is given one: %s" % text.strip())
    if given:
        again = picked(s, "cookied", "--cookie", "session=" + given[2], count=3)
        check(set(again) == {given[1]},
              "picks with that cookie go where the first did: %s, %s" % (again, given[1]))


def token(tmp):
    path = os.path.join(tmp, "token")
    with open(path, "w") as f:
        f.write("s3cret\n")
    s = Server(tmp, "--admin-token-file", path)
    try:
        code, body = s.curl("GET", "/upstreams")
        check(code == 401 and "message" in body, "no token: 401")
        code, _ = s.curl("POST", "/upstreams", "--data", "name=x", "-H", "Authorization: Bearer nope")
        check(code == 401, "a wrong token: 401")
        code, _ = s.curl("POST", "/upstreams", "--data", "name=x", "-H",
                         "Authorization: Bearer s3cret")
        check(code == 201, "Authorization: Bearer: 201")
        code, _ = s.curl("GET", "/upstreams/x", "-H", "Kong-Admin-Token: s3cret")
        check(code == 200, "Kong-Admin-Token: 200")
        check(re.search(r'audit method=KongCreateUpstream upstream="x" result=OK peer=ipv4:127\.0\.0\.1:',
                        s.text()) is not None, "the write's audit line")
    finally:
        s.stop()


def self_signed(tmp, name, san):
    cert, key = os.path.join(tmp, name + ".pem"), os.path.join(tmp, name + ".key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=" + name, "-addext", "subjectAltName=" + san,
                    "-keyout", key, "-out", cert], check=True, capture_output=True)
    return cert, key


def tls(tmp):
    """With --tls-cert and --tls-key the listener serves HTTPS (and asks for
    client certificates with --tls-client-ca), as the gRPC listeners do."""
    cert, key = self_signed(tmp, "server", "IP:127.0.0.1")
    client_cert, client_key = self_signed(tmp, "client", "DNS:client")
    s = Server(tmp, "--tls-cert", cert, "--tls-key", key)

    def curl(*args):
        r = subprocess.run([CURL, "-s", "-o", "/dev/null", "-w", "%{http_code}"] + list(args),
                           capture_output=True, text=True, timeout=30)
        return r.stdout
    base = "https://127.0.0.1:%s" % s.port
    try:
        check(re.search(r"Kong Admin API listening on \S+ \(TLS\)", s.text()) is not None,
              "the log says the listener serves TLS")
        check(curl("--cacert", cert, "-X", "POST", base + "/upstreams", "--data",
                   "name=example_upstream") == "201", "the guide's command over HTTPS: 201")
        check(curl("--cacert", cert, base + "/upstreams/example_upstream") == "200",
              "GET over HTTPS: 200")
        check(curl("http://127.0.0.1:%s/upstreams" % s.port) != "200", "plain HTTP is not served")
        check(curl(base + "/upstreams") == "000", "a client that does not trust the certificate "
              "is refused by its own TLS check")
    finally:
        check(s.stop() == 0, "SIGTERM stops the TLS server")
    s = Server(tmp, "--tls-cert", cert, "--tls-key", key, "--tls-client-ca", client_cert)
    try:
        check(curl("--cacert", cert, "https://127.0.0.1:%s/upstreams" % s.port) == "000",
              "--tls-client-ca: no client certificate, no answer")
        check(curl("--cacert", cert, "--cert", client_cert, "--key", client_key,
                   "https://127.0.0.1:%s/upstreams" % s.port) == "200",
              "--tls-client-ca: a client certificate it signed: 200")
    finally:
        check(s.stop() == 0, "SIGTERM stops the mutual-TLS server")


def main():
    for tool, what in ((SERVER, "PICKER_SERVER"), (CLI, "PICKER_CLI"), (CURL, "curl")):
        if not tool or not os.access(tool, os.X_OK):
            raise SystemExit("FAIL: %s is not an executable (%s)" % (what, tool))
    tmp = tempfile.mkdtemp(prefix="picker-kong-test-")
    s = Server(tmp)
    try:
        guide(s)
        upstream_routes(s)
        target_routes(s)
        tags(s)
        hashing(s)
    finally:
        check(s.stop() == 0, "SIGTERM stops the server")
    token(tmp)
    tls(tmp)
    shutil.rmtree(tmp, ignore_errors=True)
    if failures:
        print("%d failure(s)" % len(failures))
        sys.exit(1)
    print("all passed")


if __name__ == "__main__":
    main()
