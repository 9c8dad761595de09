#!/usr/bin/env python3
"""Benchmarks builds of our amqp-* tools against Debian's C amqp-tools, and bulk publishing
against the broker's own limit, all in the same run.

Every measurement alternates the sides (C, then each of our builds, then C again, ...) so that
load changes on a shared machine hit all alike; the tables give medians, the min-max spread and
the ratio of each build to its reference. Queues are deleted and recreated between runs, and
each run's result is checked on the broker (message counts, consumed output), so a fast but
wrong run stops the benchmark instead of looking good.

Started by bench/run, which builds our tools and the broker-limit client and installs what is
missing; see bench/README.md.
"""

import argparse
import os
import re
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time

C_DIR = "/usr/bin"
TOOLS = ["amqp-publish", "amqp-consume", "amqp-get", "amqp-declare-queue", "amqp-delete-queue"]
# The line length of the B2/B3 message files, newline included: 11-byte bodies.
SMALL = 12
KIB = 1024
# A pause before each timed run, so that the broker has finished the previous run's work
# (deletes, confirms, garbage collection).
SETTLE = 0.5


class Side:
    def __init__(self, name, directory):
        self.name = name
        self.dir = directory

    def tool(self, name):
        return os.path.join(self.dir, name)


class Result:
    """One process run: wall seconds, exit code or signal, the child's peak RSS (KiB) and CPU
    seconds (user + system, from wait4)."""

    def __init__(self, wall, status, usage, timed_out=False):
        self.wall = wall
        self.code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else None
        self.signal = os.WTERMSIG(status) if os.WIFSIGNALED(status) else None
        self.maxrss = usage.ru_maxrss
        self.cpu = usage.ru_utime + usage.ru_stime
        self.timed_out = timed_out

    def ok(self):
        return self.code == 0 and not self.timed_out

    def describe(self):
        if self.timed_out:
            return f"killed after the {TIMEOUT:.0f} s time limit"
        return f"killed by signal {self.signal}" if self.signal else f"exit {self.code}"


class Timeout(Exception):
    pass


def on_alarm(_signum, _frame):
    raise Timeout()


TIMEOUT = 600.0
# The measured process being waited for, killed if the benchmark is stopped meanwhile.
RUNNING = None


def run(argv, stdin=None, stdout=None):
    """posix_spawn + wait4: the least harness overhead, the same for every side, and the
    child's own rusage. A process still running after TIMEOUT seconds is killed and fails, so
    that a hung tool fails the benchmark instead of stalling it."""
    actions = [
        (os.POSIX_SPAWN_OPEN, 0, stdin or "/dev/null", os.O_RDONLY, 0),
        (os.POSIX_SPAWN_OPEN, 1, stdout or "/dev/null", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644),
    ]
    start = time.perf_counter()
    # Python ignores SIGPIPE and children would inherit that; a shell gives them the default.
    pid = os.posix_spawn(argv[0], argv, os.environ, file_actions=actions,
                         setsigdef=(signal.SIGPIPE,))
    global RUNNING
    RUNNING = pid
    waited = None
    timed_out = False
    try:
        signal.setitimer(signal.ITIMER_REAL, TIMEOUT)
        try:
            waited = os.wait4(pid, 0)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
    except Timeout:
        if waited is None:
            timed_out = True
            os.kill(pid, signal.SIGKILL)
            waited = os.wait4(pid, 0)
    RUNNING = None
    wall = time.perf_counter() - start
    _, status, usage = waited
    return Result(wall, status, usage, timed_out)


def must(r, what):
    if not r.ok():
        raise SystemExit(f"bench: {what}: {r.describe()}")
    return r


def peak_rss(argv, tmp, stdout=None):
    """Peak RSS in KiB through GNU time: a child spawned by this (larger) Python process would
    report Python's own RSS, which the kernel carries across exec."""
    out = os.path.join(tmp, "time.out")
    must(run(["/usr/bin/time", "-f", "%M", "-o", out] + argv, stdout=stdout), " ".join(argv))
    with open(out) as f:
        return int(f.read().split()[-1])


def capture(argv):
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, restore_signals=True)
    return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")


class Broker:
    """Queue set-up and checks, done with the C tools (the same for every side). Every queue
    name starts with this process's own prefix, and every queue is deleted at the end."""

    def __init__(self):
        self.prefix = f"bench-{os.getpid()}-{secrets.token_hex(3)}"
        self.queues = set()

    def queue(self, name):
        q = f"{self.prefix}-{name}"
        self.queues.add(q)
        return q

    def count_and_delete(self, q):
        """Deletes q and returns how many messages it held (amqp-delete-queue prints it)."""
        rc, out, err = capture([f"{C_DIR}/amqp-delete-queue", "-q", q])
        if rc != 0:
            raise SystemExit(f"bench: cannot delete queue {q}: {err.strip()}")
        return int(out.strip() or "0")

    def expect(self, q, count, what):
        """Deletes q, failing the benchmark unless it held exactly `count` messages."""
        held = self.count_and_delete(q)
        if held != count:
            raise SystemExit(f"bench: {what}: the queue holds {held} messages, not {count}")

    def fresh(self, q):
        """An empty, newly declared queue, after the settling pause."""
        self.count_and_delete(q)
        rc, _, err = capture([f"{C_DIR}/amqp-declare-queue", "-q", q])
        if rc != 0:
            raise SystemExit(f"bench: cannot declare queue {q}: {err.strip()}")
        time.sleep(SETTLE)

    def cleanup(self):
        for q in sorted(self.queues):
            capture([f"{C_DIR}/amqp-delete-queue", "-q", q])


def load():
    return "%.2f %.2f %.2f" % os.getloadavg()


def fmt(v, unit):
    if unit == "msgs/s":
        return f"{v:,.0f}"
    if unit == "KiB":
        return f"{v:,.0f}"
    if unit == "CPU s":
        return f"{v:.3f}"
    if unit in ("ms", "Minstr"):
        return f"{v:.2f}"
    return f"{v:.3g}"


def summary(values, unit):
    if not values:
        return "-"
    med = statistics.median(values)
    if len(values) == 1:
        return fmt(med, unit)
    return f"{fmt(med, unit)} [{fmt(min(values), unit)}-{fmt(max(values), unit)}]"


def ratio(values, ref):
    if not values or not ref:
        return None
    return statistics.median(values) / statistics.median(ref)


class Row:
    """One line of the main table: a reference (C unless `ref` names another) and one value
    list per build; the ratio is each build's median over the reference's."""

    def __init__(self, bench, what, unit, higher_better, target=None, ref="C"):
        self.bench = bench
        self.what = what
        self.unit = unit
        self.higher_better = higher_better
        self.target = target  # ratio build/reference to reach, or None
        self.ref_name = ref
        self.ref = []
        self.values = {}  # build name -> list of floats
        # No ratio to reach, but every run of our builds must succeed (C's `true` case).
        self.must_complete = False
        self.failures = {}  # "side `command`" -> what each failed run did

    def add(self, side, value):
        if side == self.ref_name:
            self.ref.append(value)
        else:
            self.values.setdefault(side, []).append(value)

    def met(self, build, rounds):
        r = ratio(self.values.get(build), self.ref)
        if self.target is not None and r is not None:
            # Judged as printed (two decimals), so that the table never shows 0.90 failing 0.9.
            r = round(r, 2)
            ok = r >= self.target if self.higher_better else r <= self.target
            return "yes" if ok else "NO"
        if self.must_complete:
            return "completes" if len(self.values.get(build, [])) == rounds else "NO"
        return "-"


class Bench:
    def __init__(self, args):
        self.args = args
        self.c = Side("C", C_DIR)
        self.builds = [Side(name, d) for name, d in args.ours]
        self.sides = [self.c] + self.builds
        self.limit = args.limit_client
        self.rows = []
        self.detail = []  # B2: (size label, [(text, rates, cpus, reference rates)], limits ratio)
        self.broker = Broker()
        self.tmp = tempfile.mkdtemp(prefix="amqp-bench-")

    def row(self, *a, **k):
        r = Row(*a, **k)
        self.rows.append(r)
        return r

    def log(self, text):
        print(f"bench: {text} (load {load()})", file=sys.stderr, flush=True)

    def lines_file(self, name, count, size):
        """`count` distinct lines of `size` bytes, newline included."""
        path = os.path.join(self.tmp, name)
        with open(path, "wb") as f:
            for i in range(count):
                f.write(str(i).encode().rjust(size - 1, b"x") + b"\n")
        return path

    def fill(self, q, path):
        """Puts the lines of `path` in q as messages, confirmed by the broker."""
        must(run([self.limit, "--queue", q, "--confirm", path]), f"filling {q}")
        time.sleep(SETTLE)

    # B1: the tutorial's loop, one amqp-publish process per message.
    def b1(self):
        n = self.args.b1_count
        row = self.row("B1", f"tutorial loop: {n} x `amqp-publish -r Q -p -b itemN`", "msgs/s", True,
                       target=1.1)
        q = self.broker.queue("b1")
        self.log(f"B1: {n} publish processes, {self.args.rounds} rounds")
        for _ in range(self.args.rounds):
            for side in self.sides:
                self.broker.fresh(q)
                tool = side.tool("amqp-publish")
                start = time.perf_counter()
                for i in range(n):
                    must(run([tool, "-r", q, "-p", "-b", f"item{i}"]), f"B1 {side.name} amqp-publish")
                wall = time.perf_counter() - start
                self.broker.expect(q, n, f"B1 {side.name}")
                row.add(side.name, n / wall)

    # B2: amqp-publish -l, one message per line: ours with confirms (the default) against the
    # broker's limit with confirms, ours with --no-confirm against C (which has no confirms),
    # and the client's CPU per run.
    def b2(self):
        for count, size in ((self.args.b2_small, SMALL), (self.args.b2_large, KIB)):
            path = self.lines_file(f"lines-{size}", count, size)
            label = f"{count:,} x {size} B" if size < KIB else f"{count:,} x 1 KiB"
            confirmed = self.row("B2", f"`-l` {label}, ours with confirms (the default) vs the broker's "
                                 "limit with confirms", "msgs/s", True, target=0.9, ref="limit-confirm")
            unconfirmed = self.row("B2", f"`-l` {label}, ours `--no-confirm` vs C", "msgs/s", True,
                                   target=1.0)
            cpu_confirmed = self.row("B2", f"`-l` {label}: client CPU per run, ours with confirms vs C",
                                     "CPU s", False, target=2.0)
            cpu_unconfirmed = self.row("B2", f"`-l` {label}: client CPU per run, ours `--no-confirm` vs C",
                                       "CPU s", False, target=2.0)
            # (key, argv with Q for the queue, stdin)
            variants = [
                ("C", [self.c.tool("amqp-publish"), "-r", "Q", "-l"], path),
                ("limit-confirm", [self.limit, "--queue", "Q", "--confirm", path], None),
                ("limit", [self.limit, "--queue", "Q", path], None),
            ]
            for b in self.builds:
                variants.append((b.name, [b.tool("amqp-publish"), "-r", "Q", "-l"], path))
                variants.append((f"{b.name} --no-confirm",
                                 [b.tool("amqp-publish"), "-r", "Q", "-l", "--no-confirm"], path))
            rates = {key: [] for key, _, _ in variants}
            cpus = {key: [] for key, _, _ in variants}
            q = self.broker.queue(f"b2-{size}")
            self.log(f"B2: -l {label}, {self.args.rounds} rounds")
            for _ in range(self.args.rounds):
                for key, argv, stdin in variants:
                    self.broker.fresh(q)
                    argv = [q if a == "Q" else a for a in argv]
                    r = must(run(argv, stdin=stdin), f"B2 {label} {key}")
                    self.broker.expect(q, count, f"B2 {label} {key}")
                    rates[key].append(count / r.wall)
                    cpus[key].append(r.cpu)
            confirmed.ref = rates["limit-confirm"]
            unconfirmed.ref = rates["C"]
            cpu_confirmed.ref = cpu_unconfirmed.ref = cpus["C"]
            for b in self.builds:
                confirmed.values[b.name] = rates[b.name]
                unconfirmed.values[b.name] = rates[f"{b.name} --no-confirm"]
                cpu_confirmed.values[b.name] = cpus[b.name]
                cpu_unconfirmed.values[b.name] = cpus[f"{b.name} --no-confirm"]
            lines = [("broker's limit with confirms (minimal client)", "limit-confirm", "limit-confirm")]
            lines += [(f"{b.name}, with confirms", b.name, "limit-confirm") for b in self.builds]
            lines += [("broker's limit without confirms (minimal client)", "limit", "limit"),
                      ("C (no confirms)", "C", "limit")]
            lines += [(f"{b.name} `--no-confirm`", f"{b.name} --no-confirm", "limit") for b in self.builds]
            self.detail.append((label, [(text, rates[key], cpus[key], rates[ref]) for text, key, ref in lines],
                                ratio(rates["limit-confirm"], rates["limit"])))

    # B3: amqp-consume -c N running a command per message.
    def b3(self):
        n = self.args.b3_count
        size = SMALL
        path = self.lines_file("consume", n, size)
        q = self.broker.queue("b3")
        body_bytes = n * (size - 1)
        # (label, options, command, bytes the command writes to stdout, target)
        commands = [
            ("cat", [], ["cat"], body_bytes, 1.0),
            ("sh -c 'cat >/dev/null'", [], ["sh", "-c", "cat >/dev/null"], 0, 1.0),
            ("true", [], ["true"], 0, None),
            ("-p 100 cat", ["-p", "100"], ["cat"], body_bytes, 1.0),
        ]
        rows = {label: self.row("B3", f"`amqp-consume -c {n} {label}`", "msgs/s", True, target=target)
                for label, _, _, _, target in commands}
        rows["true"].must_complete = True
        jobs = self.row("B3", f"`amqp-consume -c {n} -j 2 cat` (ours) vs C's `cat`", "msgs/s", True,
                        target=1.0)
        self.log(f"B3: consume {n} messages, {self.args.rounds} rounds")
        for _ in range(self.args.rounds):
            for label, extra, argv, out_bytes, _ in commands:
                for side in self.sides:
                    self.b3_one(side, q, path, n, extra, argv, out_bytes, rows[label], label)
            for b in self.builds:
                self.b3_one(b, q, path, n, ["-j", "2"], ["cat"], body_bytes, jobs, "-j 2 cat")
        # C's cat rate is the reference for -j 2.
        jobs.ref = list(rows["cat"].ref)

    def b3_one(self, side, q, path, n, extra, argv, out_bytes, row, label):
        self.broker.fresh(q)
        self.fill(q, path)
        out = os.path.join(self.tmp, "consume.out")
        r = run([side.tool("amqp-consume"), "-q", q, "-c", str(n)] + extra + ["--"] + argv, stdout=out)
        left = self.broker.count_and_delete(q)
        written = os.path.getsize(out)
        if r.ok() and left == 0 and written == out_bytes:
            row.add(side.name, n / r.wall)
            return
        what = f"{r.describe()} after taking {n - left} of {n} messages"
        if r.ok():
            what += f", its commands wrote {written} bytes, not {out_bytes}"
        if side is not self.c:
            raise SystemExit(f"bench: B3 {side.name} `{label}`: {what}")
        row.failures.setdefault(f"{side.name} `{label}`", []).append(what)

    # B4: one invocation of declare, publish and get: wall time and peak RSS.
    def b4(self):
        k = self.args.b4_count
        # A queue per side: each must end with what it started with (one publish per get), and
        # every invocation's stdout is checked, so a tool that does nothing cannot pass.
        queues = {side.name: self.broker.queue(f"b4-{i}") for i, side in enumerate(self.sides)}
        cases = [
            ("amqp-declare-queue", lambda side, q: [side.tool("amqp-declare-queue"), "-q", q],
             lambda q: f"{q}\n"),
            ("amqp-publish -b x", lambda side, q: [side.tool("amqp-publish"), "-r", q, "-b", "x"],
             lambda q: ""),
            ("amqp-get", lambda side, q: [side.tool("amqp-get"), "-q", q], lambda q: "x"),
        ]
        walls = {name: self.row("B4", f"one `{name}`: wall", "ms", False, target=0.9) for name, *_ in cases}
        rss = {name: self.row("B4", f"one `{name}`: peak RSS", "KiB", False, target=1.2) for name, *_ in cases}
        self.log(f"B4: {k} invocations of each tool per side")
        # Every amqp-get (timed, then under GNU time) needs a message, whatever order they run in.
        stock = 2 * k + 2
        stock_file = os.path.join(self.tmp, "b4")
        with open(stock_file, "wb") as f:
            f.write(b"x\n" * stock)
        for q in queues.values():
            self.broker.fresh(q)
            self.fill(q, stock_file)
        out = os.path.join(self.tmp, "b4.out")
        for name, argv, expect in cases:
            for _ in range(k):
                for side in self.sides:
                    q = queues[side.name]
                    what = f"B4 {side.name} {name}"
                    r = must(run(argv(side, q), stdout=out), what)
                    self.check_output(out, expect(q), what)
                    walls[name].add(side.name, r.wall * 1000)
                    rss[name].add(side.name, peak_rss(argv(side, q), self.tmp, out))
                    self.check_output(out, expect(q), what)
        for side in self.sides:
            self.broker.expect(queues[side.name], stock, f"B4 {side.name}")

    @staticmethod
    def check_output(path, expected, what):
        with open(path, "rb") as f:
            got = f.read()
        if got != expected.encode():
            raise SystemExit(f"bench: {what}: wrote {got[:80]!r} on stdout, not {expected!r}")

    # B5: instructions (callgrind) of one `amqp-publish -b x` and of a 10,000-line -l publish.
    def b5(self):
        n = self.args.b5_lines
        path = self.lines_file("b5", n, SMALL)
        q = self.broker.queue("b5")
        cases = [
            ("`amqp-publish -r Q -b x`", ["-b", "x"], "/dev/null", 1),
            (f"`amqp-publish -r Q -l` < {n:,} lines", ["-l"], path, n),
        ]
        self.log("B5: callgrind")
        for label, extra, stdin, expect in cases:
            row = self.row("B5", f"{label}: instructions", "Minstr", False)
            for side in self.sides:
                self.broker.fresh(q)
                out = os.path.join(self.tmp, "callgrind.out")
                log = os.path.join(self.tmp, "callgrind.log")
                cmd = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                       f"--log-file={log}", side.tool("amqp-publish"), "-r", q] + extra
                with open(stdin, "rb") as f:
                    p = subprocess.run(cmd, stdin=f, stdout=subprocess.DEVNULL)
                with open(log) as f:
                    m = re.search(r"Collected\s*:\s*(\d+)", f.read())
                if p.returncode != 0 or not m:
                    raise SystemExit(f"bench: B5 {side.name} {label}: valgrind failed (see {log})")
                row.add(side.name, int(m.group(1)) / 1e6)
                self.broker.expect(q, expect, f"B5 {side.name} {label}")

    def table(self):
        names = [b.name for b in self.builds]
        head = ["bench", "what", "reference: C unless stated"] + names + [f"{n}/ref" for n in names] + [
            "target", "met" + (f" ({' / '.join(names)})" if len(names) > 1 else "")]
        out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for r in self.rows:
            ref = summary(r.ref, r.unit)
            if not r.ref and r.failures:
                ref = "fails"
            cells = [r.bench, f"{r.what} ({r.unit})", ref]
            cells += [summary(r.values.get(n, []), r.unit) for n in names]
            for n in names:
                x = ratio(r.values.get(n), r.ref)
                cells.append("-" if x is None else f"{x:.2f}")
            target = "-"
            if r.target is not None:
                target = f"{'>=' if r.higher_better else '<='} {r.target}"
            cells += [target, " / ".join(r.met(n, self.args.rounds) for n in names)]
            out.append("| " + " | ".join(cells) + " |")
        notes = []
        for r in self.rows:
            for who, runs in r.failures.items():
                notes.append(f"{who}, {len(runs)} failed run(s): " + "; ".join(runs))
        if notes:
            out.append("")
            out.extend(f"- {n}" for n in notes)
        return "\n".join(out)

    def limit_table(self):
        if not self.detail:
            return ""
        out = ["| `-l` run | msgs/s | client CPU s | vs the broker's limit in the same mode |",
               "|---|---|---|---|"]
        for label, lines, limits in self.detail:
            for text, rates, cpus, ref in lines:
                x = ratio(rates, ref)
                out.append(f"| {label}: {text} | {summary(rates, 'msgs/s')} | {summary(cpus, 'CPU s')} | "
                           f"{'-' if x is None else f'{x:.2f}'} |")
            out.append(f"| {label}: broker's limit with confirms / without | "
                       f"{'-' if limits is None else f'{limits:.2f}'} | | |")
        return "\n".join(out)


def linkage(path):
    try:
        p = subprocess.run(["file", "-bL", path], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    except OSError:
        return "?"
    m = re.search(r"(dynamically linked|statically linked|static-pie linked)", p.stdout.decode())
    return m.group(1) if m else "?"


def machine():
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    broker = "?"
    try:
        p = subprocess.run(["rabbitmqctl", "version"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                           timeout=30)
        broker = p.stdout.decode().strip() or "?"
    except (OSError, subprocess.TimeoutExpired):
        pass
    return f"{os.cpu_count()} CPUs ({cpu}), RabbitMQ {broker}, {os.uname().sysname} {os.uname().release}"


def c_version():
    rc, out, _ = capture(["dpkg-query", "-W", "-f=${Version}", "amqp-tools"])
    return out.strip() if rc == 0 else "?"


def side_arg(text):
    name, sep, directory = text.partition("=")
    if not sep:
        name, directory = "ours", text
    if not name or name == "C" or name.startswith("limit") or " " in name:
        raise argparse.ArgumentTypeError(f"'{name}' cannot name a build (C, limit* and spaces are taken)")
    return name, directory


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ours", action="append", type=side_arg, required=True, metavar="NAME=DIR",
                    help="a build of our tools to measure: the directory holding the five binaries "
                         "(repeatable; a DIR alone is named 'ours')")
    ap.add_argument("--limit-client", required=True, metavar="PATH",
                    help="the broker-limit client (bench/broker-limit), also used to fill queues")
    ap.add_argument("--quick", action="store_true", help="small counts, one round: checks that it works")
    ap.add_argument("--only", default="B1,B2,B3,B4,B5", help="comma-separated subset, e.g. B2,B5")
    ap.add_argument("--rounds", type=int, help="A/B rounds per measurement (default 5, quick 1)")
    ap.add_argument("--timeout", type=float, default=600,
                    help="seconds after which a measured process is killed and the run fails (600)")
    a = ap.parse_args()
    global TIMEOUT
    TIMEOUT = a.timeout
    names = [n for n, _ in a.ours]
    if len(set(names)) != len(names):
        raise SystemExit(f"bench: two builds have the same name: {', '.join(names)}")
    quick = a.quick
    a.rounds = a.rounds or (1 if quick else 5)
    a.b1_count = 20 if quick else 200
    a.b2_small = 2_000 if quick else 200_000
    a.b2_large = 500 if quick else 50_000
    a.b3_count = 50 if quick else 2_000
    a.b4_count = 3 if quick else 30
    a.b5_lines = 500 if quick else 10_000
    if not os.access("/usr/bin/time", os.X_OK):
        raise SystemExit("bench: /usr/bin/time (Debian package time) is missing")
    if not os.access(a.limit_client, os.X_OK):
        raise SystemExit(f"bench: the broker-limit client {a.limit_client} is missing")
    for d in [C_DIR] + [d for _, d in a.ours]:
        for t in TOOLS:
            if not os.access(os.path.join(d, t), os.X_OK):
                raise SystemExit(f"bench: {d}/{t} is missing")
    signal.signal(signal.SIGALRM, on_alarm)
    # Queues are deleted on the way out (the finally below), also when stopped by SIGTERM.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    b = Bench(a)
    wanted = {w.strip().upper() for w in a.only.split(",")}
    started = time.time()
    load_before = load()
    try:
        for name in ("B1", "B2", "B3", "B4", "B5"):
            if name in wanted:
                getattr(b, name.lower())()
    finally:
        if RUNNING is not None:
            os.kill(RUNNING, signal.SIGKILL)
            os.waitpid(RUNNING, 0)
        b.broker.cleanup()
    builds = ", ".join(f"`{n}` = {d} ({linkage(os.path.join(d, 'amqp-publish'))})" for n, d in a.ours)
    print(f"Our builds: {builds}; C: Debian amqp-tools {c_version()} ({C_DIR}).")
    print(f"{'Quick' if quick else 'Full'} run, {a.rounds} round(s) in alternation, "
          f"{time.time() - started:.0f} s. Machine: {machine()}.")
    print(f"Load average: before {load_before}, after {load()}.")
    print()
    print(b.table())
    limits = b.limit_table()
    if limits:
        print()
        print("B2 in detail, with the broker's limit (minimal client: one connection, pre-encoded "
              "frames; with confirms it waits for the last ack):")
        print()
        print(limits)


if __name__ == "__main__":
    main()
