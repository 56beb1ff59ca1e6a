#!/usr/bin/python3
"""Checks that the container files start what the tests run.

1. The server command of the Dockerfile (ENTRYPOINT + CMD) and of the compose
   file's picker service (its `command`, with the image's entrypoint) are run
   against the freshly built picker-server, with the listen addresses rewritten
   to 127.0.0.1:0 and the data directory to a temporary one (files mounted by
   compose are mapped back to the repository). Each must become ready, answer a
   pick of upstream `demo` through picker-cli, pass the image's HEALTHCHECK
   command (picker-cli healthcheck, its --addr pointed at the server's data
   port), and exit 0 on SIGTERM.
2. The ports those commands listen on are the ones the Dockerfile EXPOSEs,
   the compose file publishes, and docker/prometheus.yml scrapes.
3. The Dockerfile's build stage installs every APT_PACKAGES entry of
   scripts/install-deps.sh; its run stage installs the package of every shared
   library that picker-server and picker-cli load (from ldd and dpkg -S); it
   COPYs every directory the top-level CMakeLists.txt always adds.
"""
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time

SOURCE = os.environ["PICKER_SOURCE_DIR"]
SERVER = os.environ["PICKER_SERVER"]
CLI = os.environ["PICKER_CLI"]
LISTEN_FLAGS = ("--listen", "--admin-listen", "--metrics-listen")

failures = []


def check(condition, message):
    if condition:
        print("ok:", message)
    else:
        print("FAIL:", message)
        failures.append(message)
    return condition


def read(path):
    with open(os.path.join(SOURCE, path)) as f:
        return f.read()


def dockerfile_instructions():
    """(instruction, argument, stage index) of the Dockerfile, continuations joined."""
    text = re.sub(r"\\\n", " ", read("Dockerfile"))
    stage = -1
    out = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        word, _, arg = line.partition(" ")
        word = word.upper()
        if word == "FROM":
            stage += 1
        out.append((word, arg.strip(), stage))
    return out


def exec_form(arg):
    value = json.loads(arg)
    assert isinstance(value, list) and all(isinstance(v, str) for v in value), arg
    return value


def flag_values(args):
    """{flag: value} of --flag value / --flag=value arguments."""
    values = {}
    i = 0
    while i < len(args):
        a = args[i]
        if a.startswith("--") and "=" in a:
            k, _, v = a.partition("=")
            values[k] = v
        elif a.startswith("--") and i + 1 < len(args) and not args[i + 1].startswith("--"):
            values[a] = args[i + 1]
            i += 1
        else:
            values[a] = None
        i += 1
    return values


def rewrite(args, data_dir, mounts):
    """The command line with loopback ephemeral ports, a temporary data dir,
    and container paths of mounted files mapped to the host."""
    out = []
    i = 0
    while i < len(args):
        a = args[i]
        k, eq, v = a.partition("=")
        if eq:
            pair = [k, v]
        elif a.startswith("--") and i + 1 < len(args) and not args[i + 1].startswith("--"):
            pair = [a, args[i + 1]]
            i += 1
        else:
            out.append(a)
            i += 1
            continue
        flag, value = pair
        if flag in LISTEN_FLAGS:
            value = "127.0.0.1:0"
        elif flag == "--data-dir":
            value = data_dir
        elif value.startswith("/"):
            for container_path, host_path in mounts.items():
                if value == container_path:
                    value = host_path
        out += [flag, value]
        i += 1
    return out


def port_of(address):
    return int(address.rsplit(":", 1)[1])


def is_loopback(address):
    host = address.rsplit(":", 1)[0].strip("[]")
    return host in ("localhost", "::1") or host.startswith("127.")


def check_admin_exposure(name, args, mounts):
    """A command whose admin listener is not loopback must say how it is
    guarded (a token, mutual TLS) or that it is not (--admin-insecure):
    picker-server refuses to start otherwise."""
    values = flag_values(args)
    admin = values.get("--admin-listen") or "127.0.0.1:50052"
    guarded = any(f in values for f in ("--admin-insecure", "--admin-token-file", "--tls-client-ca"))
    check(is_loopback(admin) or guarded,
          f"{name}: the admin listener {admin} is loopback, guarded or marked --admin-insecure")
    if is_loopback(admin):
        return
    # Without the marking, the same command stops before it binds anything
    # (the data listener asks for an invalid port, should it get that far).
    bare = [a for a in args if a != "--admin-insecure"]
    bare = rewrite(bare, tempfile.mkdtemp(), mounts)
    bare[bare.index("--admin-listen") + 1] = admin
    bare[bare.index("--listen") + 1] = "127.0.0.1:99999"
    r = subprocess.run([SERVER] + bare, capture_output=True, text=True, timeout=30)
    if "--admin-insecure" in args:
        check(r.returncode == 1 and "--admin-insecure" in r.stderr,
              f"{name}: without --admin-insecure picker-server refuses the command "
              f"({r.stderr.strip()[-160:]})")


def healthcheck_command(instructions):
    """The final stage's HEALTHCHECK CMD (exec form), or None."""
    last_stage = max(s for _, _, s in instructions)
    for word, arg, stage in instructions:
        if word == "HEALTHCHECK" and stage == last_stage:
            return exec_form(arg[arg.index("CMD") + 3:].strip())
    return None


def run_healthcheck(name, command, data_address):
    """The HEALTHCHECK command with the image's picker-cli mapped to the one
    built here and its --addr to the server's data port."""
    args = [CLI if os.path.basename(a) == "picker-cli" else a for a in command]
    for i, a in enumerate(args):
        if a == "--addr" and i + 1 < len(args):
            args[i + 1] = data_address
    r = subprocess.run(args, capture_output=True, text=True, timeout=30)
    check(r.returncode == 0 and "SERVING" in r.stdout,
          f"{name}: the HEALTHCHECK command passes ({r.returncode}: {r.stdout.strip()} {r.stderr.strip()})")


def run_server(name, args, healthcheck=None):
    """Runs picker-server with args; checks it gets ready, picks, passes the
    health check, drains."""
    print(f"== {name}: picker-server {shlex.join(args)}")
    proc = subprocess.Popen([SERVER] + args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    log = []
    ready = threading.Event()
    addresses = {}

    def drain():
        for line in proc.stdout:
            log.append(line)
            m = re.search(r"listening data=(\S+) admin=(\S+) metrics=(\S+)", line)
            if m:
                addresses.update(data=m[1], admin=m[2], metrics=m[3])
                ready.set()
        ready.set()

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        ready.wait(20)
        if not check("data" in addresses, f"{name}: the server becomes ready"):
            print("".join(log))
            return
        for a in addresses.values():
            check(a.startswith("127.0.0.1:"), f"{name}: listens on loopback only ({a})")
        pick = subprocess.run([CLI, "pick", "--addr", addresses["data"], "--upstream", "demo",
                               "--release"], capture_output=True, text=True, timeout=30)
        check(pick.returncode == 0 and "state=RELEASED" in pick.stdout,
              f"{name}: upstream demo answers a pick ({pick.stdout.strip()} {pick.stderr.strip()})")
        if healthcheck:
            run_healthcheck(name, healthcheck, addresses["data"])
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = proc.wait()
        reader.join(5)
        if not check(code == 0, f"{name}: SIGTERM drains and exits 0 (got {code})"):
            print("".join(log))


def compose_config(file="docker-compose.yml"):
    import yaml  # python3-yaml, a dependency of docker-compose

    result = subprocess.run(["docker-compose", "-f", os.path.join(SOURCE, file),
                             "config"], capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        raise SystemExit("FAIL: docker-compose config failed:\n" + result.stderr)
    return yaml.safe_load(result.stdout)


def host_mounts(service):
    """{container path: host path} of a compose service's bind mounts."""
    mounts = {}
    for volume in service.get("volumes", []):
        parts = volume.split(":") if isinstance(volume, str) else [volume["source"], volume["target"]]
        if parts[0].startswith("/"):
            mounts[parts[1]] = parts[0]
    return mounts


def dependency_closure(packages):
    """The packages and everything their Depends/Pre-Depends pull in, as dpkg
    on this machine (the same Debian release as the image) records them."""
    seen, todo = set(), list(packages)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        r = subprocess.run(["dpkg-query", "-W", "-f=${Depends}, ${Pre-Depends}", name],
                           capture_output=True, text=True)
        for alternative in r.stdout.split(","):
            # "libfoo (>= 1) | libbar": the first alternative apt would pick.
            dep = alternative.split("|")[0].strip().split(" ")[0].split(":")[0]
            if dep:
                todo.append(dep)
    return seen


def main():
    for tool, package in (("docker-compose", "docker-compose"), ("dpkg", "dpkg")):
        if subprocess.run(["sh", "-c", f"command -v {tool}"], capture_output=True).returncode:
            print(f"FAIL: {tool} is not installed: run scripts/install-deps.sh (package {package})")
            return 1
    for path in (SERVER, CLI):
        if not os.access(path, os.X_OK):
            print(f"FAIL: {path} is not built")
            return 1

    instructions = dockerfile_instructions()
    last_stage = max(s for _, _, s in instructions)
    final = [(w, a) for w, a, s in instructions if s == last_stage]
    entrypoint = [exec_form(a) for w, a in final if w == "ENTRYPOINT"][-1]
    cmd = [exec_form(a) for w, a in final if w == "CMD"][-1]
    exposed = {int(p.split("/")[0]) for w, a in final if w == "EXPOSE" for p in a.split()}
    check(os.path.basename(entrypoint[0]) == "picker-server",
          f"the image's entrypoint runs picker-server ({entrypoint})")

    compose = compose_config()
    picker = compose["services"]["picker"]
    compose_cmd = picker.get("entrypoint", entrypoint)[1:] + picker.get("command", cmd)
    mounts = host_mounts(picker)

    # Ports: EXPOSE, published, scraped.
    for name, args in (("Dockerfile", entrypoint[1:] + cmd), ("compose", compose_cmd)):
        values = flag_values(args)
        for flag in LISTEN_FLAGS:
            if check(values.get(flag), f"{name}: command sets {flag}"):
                check(port_of(values[flag]) in exposed,
                      f"{name}: {flag} port {port_of(values[flag])} is EXPOSEd by the Dockerfile")
    values = flag_values(compose_cmd)
    published = set()
    for p in picker.get("ports", []):
        published.add(int(p["target"]) if isinstance(p, dict) else int(p.split(":")[-1].split("/")[0]))
    for flag in LISTEN_FLAGS:
        if values.get(flag):
            check(port_of(values[flag]) in published,
                  f"compose: {flag} port {port_of(values[flag])} is published")
    if values.get("--metrics-listen"):
        check(f"picker:{port_of(values['--metrics-listen'])}" in read("docker/prometheus.yml"),
              "docker/prometheus.yml scrapes the picker service's metrics port")

    # The commands, for real.
    with tempfile.TemporaryDirectory(prefix="picker-container-") as tmp:
        check_admin_exposure("Dockerfile", entrypoint[1:] + cmd, {})
        check_admin_exposure("compose", compose_cmd, mounts)
        # The replicas' file: each replica's command passes the same check
        # (its etcd flags are not reached: the check stops before binding).
        for name, service in sorted(compose_config("docker-compose.replicas.yml")["services"].items()):
            if name.startswith("picker-"):
                check_admin_exposure(f"docker-compose.replicas.yml {name}",
                                     service.get("entrypoint", entrypoint)[1:] + service["command"],
                                     host_mounts(service))
        healthcheck = healthcheck_command(instructions)
        if check(healthcheck and os.path.basename(healthcheck[0]) == "picker-cli"
                 and "healthcheck" in healthcheck,
                 f"the image's HEALTHCHECK runs picker-cli healthcheck ({healthcheck})"):
            check(healthcheck[healthcheck.index("--addr") + 1].rsplit(":", 1)[1]
                  == str(port_of(flag_values(entrypoint[1:] + cmd)["--listen"])),
                  "the HEALTHCHECK checks the port --listen serves")
        run_server("Dockerfile", rewrite(entrypoint[1:] + cmd, os.path.join(tmp, "d1"), {}),
                   healthcheck)
        args = rewrite(compose_cmd, os.path.join(tmp, "d2"), mounts)
        for flag, value in flag_values(args).items():
            if flag != "--data-dir" and value and value.startswith("/"):
                check(os.path.exists(value), f"compose: {flag} {value} exists (mounted from the repo)")
        run_server("compose", args)

    # Packages.
    deps = read("scripts/install-deps.sh")
    m = re.search(r"^APT_PACKAGES=\((.*?)^\)", deps, re.S | re.M)
    apt_packages = set(re.sub(r"#.*", "", m[1]).split()) if m else set()
    check(apt_packages, "scripts/install-deps.sh has an APT_PACKAGES list")
    installs = {}
    for w, a, s in instructions:
        if w == "RUN" and "apt-get install" in a:
            words = a.split("apt-get install", 1)[1].split("&&")[0].split()
            installs.setdefault(s, set()).update(x for x in words if not x.startswith("-"))
    build_packages = installs.get(0, set())
    check(apt_packages <= build_packages,
          f"the build stage installs APT_PACKAGES (missing: {sorted(apt_packages - build_packages)})")

    runtime_packages = installs.get(last_stage, set())
    needed = set()
    base = {"libc6", "libgcc-s1", "libstdc++6"}
    libs = set()
    for binary in (SERVER, CLI):
        ldd = subprocess.run(["ldd", binary], capture_output=True, text=True).stdout
        libs.update(lib for lib in re.findall(r"=> (/\S+)", ldd)
                    if not re.search(r"lib(asan|ubsan|tsan|lsan)", lib))  # sanitizer builds
    owner = {}
    # dpkg knows a library by one of its paths (merged /usr: /lib or /usr/lib).
    for variant in (lambda p: p, os.path.realpath, lambda p: re.sub(r"^/usr", "", p)):
        todo = {variant(lib): lib for lib in libs if lib not in owner}
        if not todo:
            break
        r = subprocess.run(["dpkg", "-S"] + sorted(todo), capture_output=True, text=True)
        for line in r.stdout.splitlines():
            pkgs, _, path = line.partition(": ")
            if path in todo:
                owner[todo[path]] = pkgs.split(",")[0].split(":")[0].strip()
    check(set(owner) == libs,
          f"every shared library belongs to a Debian package (unknown: {sorted(libs - set(owner))})")
    needed = set(owner.values()) - base
    # apt installs what the listed packages depend on, so a library reached
    # through a Depends line (libcurl4 brings libnghttp2-14, ...) is covered.
    installed = dependency_closure(runtime_packages)
    check(needed <= installed,
          f"the run stage installs the libraries' packages (missing: {sorted(needed - installed)})")

    copied = set()
    for w, a, s in instructions:
        if w == "COPY" and s == 0:
            copied.update(p.rstrip("/") for p in a.split()[:-1])
    always = set(re.findall(r"^add_subdirectory\((\w+)\)", read("CMakeLists.txt"), re.M))
    check(always <= copied,
          f"the build stage COPYs every directory CMakeLists.txt adds (missing: {sorted(always - copied)})")

    if failures:
        print(f"{len(failures)} check(s) failed")
        return 1
    print("PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
