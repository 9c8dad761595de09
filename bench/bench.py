#!/usr/bin/env python3
"""Benchmarks our amqp-* tools against Debian's C amqp-tools in the same run.

Every measurement alternates the sides (C, ours, C, ours, ...) so that load changes on a shared
machine hit both alike; the table gives medians, the min-max spread and the ratio ours/C.
Queues are deleted and recreated between runs, and each run's result is checked on the broker
(message counts), so a fast but wrong run cannot look good.

Started by bench/run, which builds our tools and installs what is missing; see bench/README.md.
"""

import argparse
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time

C_DIR = "/usr/bin"
TOOLS = ["amqp-publish", "amqp-consume", "amqp-get", "amqp-declare-queue", "amqp-delete-queue"]


class Side:
    def __init__(self, name, directory):
        self.name = name
        self.dir = directory

    def tool(self, name):
        return os.path.join(self.dir, name)


class Result:
    """One process run: wall seconds, exit code or signal, peak RSS in KiB."""

    def __init__(self, wall, code, signal, maxrss):
        self.wall = wall
        self.code = code
        self.signal = signal
        self.maxrss = maxrss

    def ok(self):
        return self.code == 0 and self.signal is None

    def describe(self):
        return f"killed by signal {self.signal}" if self.signal else f"exit {self.code}"


def run(argv, stdin=None, stdout=None):
    """posix_spawn + wait4: the least harness overhead, the same for both sides, and the child's
    own peak RSS."""
    actions = []
    if stdin is not None:
        actions.append((os.POSIX_SPAWN_OPEN, 0, stdin, os.O_RDONLY, 0))
    else:
        actions.append((os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0))
    actions.append((os.POSIX_SPAWN_OPEN, 1, stdout or "/dev/null", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644))
    start = time.perf_counter()
    # Python ignores SIGPIPE and children would inherit that; a shell gives them the default.
    pid = os.posix_spawn(argv[0], argv, os.environ, file_actions=actions,
                         setsigdef=(signal.SIGPIPE,))
    _, status, usage = os.wait4(pid, 0)
    wall = time.perf_counter() - start
    if os.WIFSIGNALED(status):
        return Result(wall, None, os.WTERMSIG(status), usage.ru_maxrss)
    return Result(wall, os.WEXITSTATUS(status), None, usage.ru_maxrss)


def peak_rss(argv, tmp):
    """Peak RSS in KiB through GNU time: a child spawned by this (larger) Python process would
    report Python's own RSS, which the kernel carries across exec."""
    out = os.path.join(tmp, "time.out")
    r = run(["/usr/bin/time", "-f", "%M", "-o", out] + argv)
    if not r.ok():
        raise SystemExit(f"bench: {' '.join(argv)}: {r.describe()}")
    with open(out) as f:
        return int(f.read().split()[-1])


def capture(argv, stdin_bytes=None):
    p = subprocess.run(argv, input=stdin_bytes, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       restore_signals=True)
    return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")


class Broker:
    """Queue set-up and checks, done with the C tools (the same for both sides)."""

    def __init__(self, prefix):
        self.prefix = prefix
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

    def fresh(self, q):
        """An empty, newly declared queue, after a pause that lets the broker finish the
        previous run's work (deletes, confirms, garbage collection) before timing starts."""
        self.count_and_delete(q)
        rc, _, err = capture([f"{C_DIR}/amqp-declare-queue", "-q", q])
        if rc != 0:
            raise SystemExit(f"bench: cannot declare queue {q}: {err.strip()}")
        time.sleep(SETTLE)

    def cleanup(self):
        for q in sorted(self.queues):
            capture([f"{C_DIR}/amqp-delete-queue", "-q", q])


SETTLE = 0.5


def load():
    return "%.2f %.2f %.2f" % os.getloadavg()


class Row:
    def __init__(self, bench, what, unit, higher_better, target=None, note=""):
        self.bench = bench
        self.what = what
        self.unit = unit
        self.higher_better = higher_better
        self.target = target  # ratio ours/C to reach, or None
        # No ratio to reach, but every run of ours must succeed (C's `true` case).
        self.must_complete = False
        self.values = {}  # side name -> list of floats
        self.notes = []
        self.failures = {}  # "side `command`" -> what each failed run did
        if note:
            self.notes.append(note)

    def add(self, side, value):
        self.values.setdefault(side, []).append(value)


def fmt(v, unit):
    if v is None:
        return "-"
    if unit in ("msgs/s",):
        return f"{v:,.0f}"
    if unit == "ms":
        return f"{v:.2f}"
    if unit == "KiB":
        return f"{v:,.0f}"
    if unit == "Minstr":
        return f"{v:.2f}"
    return f"{v:.3g}"


def summary(values, unit):
    if not values:
        return "-"
    med = statistics.median(values)
    if len(values) == 1:
        return fmt(med, unit)
    return f"{fmt(med, unit)} [{fmt(min(values), unit)}-{fmt(max(values), unit)}]"


class Bench:
    def __init__(self, args):
        self.args = args
        self.c = Side("C", C_DIR)
        self.ours = Side("ours", args.ours)
        self.sides = [self.c, self.ours]
        self.rows = []
        self.broker = Broker(f"bench-{os.getpid()}")
        self.tmp = tempfile.mkdtemp(prefix="amqp-bench-")
        self.loads = []

    def row(self, *a, **k):
        r = Row(*a, **k)
        self.rows.append(r)
        return r

    def log(self, text):
        print(f"bench: {text} (load {load()})", file=sys.stderr, flush=True)

    def lines_file(self, name, count, size):
        path = os.path.join(self.tmp, name)
        with open(path, "wb") as f:
            for i in range(count):
                f.write(str(i).encode().rjust(size - 1, b"x") + b"\n")
        return path

    # B1: the tutorial's loop, one amqp-publish process per message.
    def b1(self):
        n = self.args.b1_count
        row = self.row("B1", f"tutorial loop: {n} x `amqp-publish -r Q -p -b itemN`", "msgs/s", True,
                       target=1.25)
        q = self.broker.queue("b1")
        self.log(f"B1: {n} publish processes, {self.args.rounds} rounds")
        for _ in range(self.args.rounds):
            for side in self.sides:
                self.broker.fresh(q)
                tool = side.tool("amqp-publish")
                start = time.perf_counter()
                for i in range(n):
                    r = run([tool, "-r", q, "-p", "-b", f"item{i}"])
                    if not r.ok():
                        raise SystemExit(f"bench: B1 {side.name} amqp-publish {r.describe()}")
                wall = time.perf_counter() - start
                held = self.broker.count_and_delete(q)
                if held != n:
                    raise SystemExit(f"bench: B1 {side.name}: queue holds {held}, not {n}")
                row.add(side.name, n / wall)

    # B2: amqp-publish -l, one message per line, confirmed (ours' default) and not.
    def b2(self):
        for count, size in ((self.args.b2_small, 12), (self.args.b2_large, 1024)):
            path = self.lines_file(f"lines-{size}", count, size)
            label = f"{count:,} x {size} B" if size < 1024 else f"{count:,} x 1 KiB"
            confirmed = self.row("B2", f"`-l`, {label} lines (ours: confirms on, the default)", "msgs/s",
                                 True, target=0.9)
            unconfirmed = self.row("B2", f"`-l`, {label} lines (ours: `--no-confirm`)", "msgs/s", True,
                                   target=1.0)
            q = self.broker.queue(f"b2-{size}")
            self.log(f"B2: -l {label}, {self.args.rounds} rounds")
            for _ in range(self.args.rounds):
                variants = [(self.c, [], [confirmed, unconfirmed]), (self.ours, [], [confirmed]),
                            (self.ours, ["--no-confirm"], [unconfirmed])]
                for side, extra, rows in variants:
                    self.broker.fresh(q)
                    r = run([side.tool("amqp-publish"), "-r", q, "-l"] + extra, stdin=path)
                    held = self.broker.count_and_delete(q)
                    if not r.ok() or held != count:
                        raise SystemExit(f"bench: B2 {side.name} {extra}: {r.describe()}, queue holds "
                                         f"{held}, not {count}")
                    for row in rows:
                        row.add(side.name, count / r.wall)

    # B3: amqp-consume -c N running a command per message.
    def b3(self):
        n = self.args.b3_count
        path = self.lines_file("consume", n, 12)
        q = self.broker.queue("b3")
        commands = [
            ("cat", ["cat"], 1.0),
            ("sh -c 'cat >/dev/null'", ["sh", "-c", "cat >/dev/null"], 1.0),
            ("true", ["true"], None),
        ]
        rows = {}
        for label, _, target in commands:
            rows[label] = self.row("B3", f"`amqp-consume -c {n} {label}`", "msgs/s", True, target=target)
        rows["true"].must_complete = True
        jobs = self.row("B3", f"`amqp-consume -c {n} -j 2 cat` (ours) vs C's `cat`", "msgs/s", True,
                        target=1.6)
        self.log(f"B3: consume {n} messages, {self.args.rounds} rounds")
        for _ in range(self.args.rounds):
            for label, argv, _ in commands:
                for side in self.sides:
                    self.b3_one(side, q, path, n, [], argv, rows[label], label)
            self.b3_one(self.ours, q, path, n, ["-j", "2"], ["cat"], jobs, "-j 2 cat")
        # C's cat rate is the reference for -j 2.
        jobs.values["C"] = list(rows["cat"].values.get("C", []))

    def b3_one(self, side, q, path, n, extra, argv, row, label):
        self.broker.fresh(q)
        self.broker_fill_kept(q, path, n)
        out = os.path.join(self.tmp, "consume.out")
        r = run([side.tool("amqp-consume"), "-q", q, "-c", str(n)] + extra + ["--"] + argv, stdout=out)
        left = self.broker.count_and_delete(q)
        if r.ok() and left == 0:
            row.add(side.name, n / r.wall)
            return
        row.failures.setdefault(f"{side.name} `{label}`", []).append(
            f"{r.describe()} after taking {n - left} of {n} messages")
        if side is self.ours:
            raise SystemExit(f"bench: B3 {note}")

    def broker_fill_kept(self, q, path, n):
        r = run([f"{C_DIR}/amqp-publish", "-r", q, "-l"], stdin=path)
        if not r.ok():
            raise SystemExit(f"bench: cannot fill {q}: {r.describe()}")
        time.sleep(SETTLE)

    # B4: one invocation of declare, publish and get: wall time and peak RSS.
    def b4(self):
        k = self.args.b4_count
        q = self.broker.queue("b4")
        cases = [
            ("amqp-declare-queue", lambda side: [side.tool("amqp-declare-queue"), "-q", q]),
            ("amqp-publish", lambda side: [side.tool("amqp-publish"), "-r", q, "-b", "x"]),
            ("amqp-get", lambda side: [side.tool("amqp-get"), "-q", q]),
        ]
        walls = {name: self.row("B4", f"`{name}` wall", "ms", False, target=0.8) for name, _ in cases}
        rss = {name: self.row("B4", f"`{name}` peak RSS", "KiB", False, target=1.5) for name, _ in cases}
        self.log(f"B4: {k} invocations of each tool per side")
        self.broker.fresh(q)
        # amqp-get needs a message each time; amqp-publish adds one each time too.
        for _ in range(2 * k + 4):
            run([f"{C_DIR}/amqp-publish", "-r", q, "-b", "x"])
        time.sleep(SETTLE)
        for name, argv in cases:
            for _ in range(k):
                for side in self.sides:
                    r = run(argv(side))
                    if not r.ok():
                        raise SystemExit(f"bench: B4 {side.name} {name}: {r.describe()}")
                    walls[name].add(side.name, r.wall * 1000)
                    rss[name].add(side.name, peak_rss(argv(side), self.tmp))
        self.broker.count_and_delete(q)

    # B5: instructions (callgrind) of one `amqp-publish -b x` and of a 10,000-line -l publish.
    def b5(self):
        n = self.args.b5_lines
        path = self.lines_file("b5", n, 12)
        q = self.broker.queue("b5")
        cases = [
            ("`amqp-publish -r Q -b x`", [], None, 0.5),
            (f"`amqp-publish -r Q -l` < {n:,} lines", ["-l"], path, None),
        ]
        self.log("B5: callgrind")
        for label, extra, stdin, target in cases:
            row = self.row("B5", f"{label} instructions", "Minstr", False, target=target)
            for side in self.sides:
                self.broker.fresh(q)
                argv = [side.tool("amqp-publish"), "-r", q] + (extra or ["-b", "x"])
                out = os.path.join(self.tmp, "callgrind.out")
                log = os.path.join(self.tmp, "callgrind.log")
                cmd = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                       f"--log-file={log}"] + argv
                p = subprocess.run(cmd, stdin=open(stdin or "/dev/null", "rb"),
                                   stdout=subprocess.DEVNULL)
                with open(log) as f:
                    m = re.search(r"Collected\s*:\s*(\d+)", f.read())
                if p.returncode != 0 or not m:
                    raise SystemExit(f"bench: B5 {side.name} {label}: valgrind failed (see {log})")
                row.add(side.name, int(m.group(1)) / 1e6)
                held = self.broker.count_and_delete(q)
                expect = n if extra else 1
                if held != expect:
                    raise SystemExit(f"bench: B5 {side.name}: queue holds {held}, not {expect}")

    def table(self):
        out = []
        out.append("| bench | what | C: median [min-max] | ours: median [min-max] | ours/C | target | met |")
        out.append("|---|---|---|---|---|---|---|")
        for r in self.rows:
            c = r.values.get("C", [])
            o = r.values.get("ours", [])
            ratio = None
            if c and o:
                ratio = statistics.median(o) / statistics.median(c)
            target = met = "-"
            if r.target is not None:
                sign = ">=" if r.higher_better else "<="
                target = f"{sign} {r.target}"
                if ratio is not None:
                    ok = ratio >= r.target if r.higher_better else ratio <= r.target
                    met = "yes" if ok else "NO"
            elif r.must_complete:
                met = "completes" if len(o) == self.args.rounds else "NO"
            c_text = summary(c, r.unit)
            if not c and r.failures:
                c_text = "fails"
            out.append(f"| {r.bench} | {r.what} ({r.unit}) | {c_text} | {summary(o, r.unit)} | "
                       f"{'-' if ratio is None else f'{ratio:.2f}'} | {target} | {met} |")
        notes = [n for r in self.rows for n in r.notes]
        for r in self.rows:
            for who, runs in r.failures.items():
                notes.append(f"{who}, {len(runs)} failed run(s): " + "; ".join(runs))
        if notes:
            out.append("")
            out.extend(f"- {n}" for n in notes)
        return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ours", required=True, help="directory holding our five binaries")
    ap.add_argument("--quick", action="store_true", help="small counts, one round: checks that it works")
    ap.add_argument("--only", default="B1,B2,B3,B4,B5", help="comma-separated subset, e.g. B2,B5")
    ap.add_argument("--rounds", type=int, help="A/B rounds per measurement (default 5, quick 1)")
    a = ap.parse_args()
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
    for t in TOOLS:
        for d in (C_DIR, a.ours):
            if not os.access(os.path.join(d, t), os.X_OK):
                raise SystemExit(f"bench: {d}/{t} is missing")
    b = Bench(a)
    wanted = {w.strip().upper() for w in a.only.split(",")}
    started = time.time()
    load_before = load()
    try:
        for name in ("B1", "B2", "B3", "B4", "B5"):
            if name in wanted:
                getattr(b, name.lower())()
    finally:
        b.broker.cleanup()
    print(f"amqp-tools benchmark: ours = {a.ours}, C = {C_DIR} ({'quick' if quick else 'full'}, "
          f"{a.rounds} round(s), {time.time() - started:.0f} s)")
    print(f"machine: {machine()}")
    print(f"load average: before {load_before}, after {load()}")
    print()
    print(b.table())


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


if __name__ == "__main__":
    main()
