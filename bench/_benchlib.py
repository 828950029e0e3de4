"""Shared helpers for bench/peers.py and bench/scale.py.

Only the standard library is imported at module level, so that the parent
benchmark process stays small and never loads a peer tool itself: every tool
runs as a separate whole process (see ``run_measured``).
"""
from __future__ import annotations

import json
import os
import platform
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
WORKER = BENCH_DIR / "_peer_worker.py"

# Peer tools run through bench/_peer_worker.py; value: the module that must import.
PEER_MODULES = {
    "onnxoptimizer": "onnxoptimizer",
    "onnxsim": "onnxsim",
    "onnxslim": "onnxslim",
    "ort-basic": "onnxruntime",
    "onnxscript": "onnxscript",
    "onnx-load-save": "onnx",
}


# --------------------------------------------------------------------------- #
# bnfold command discovery
# --------------------------------------------------------------------------- #
def bnfold_command(explicit: str | None = None) -> list[str] | None:
    """The command prefix that runs the bnfold CLI, or None when none is found.

    Order: ``--bnfold``/``$BNFOLD`` (shell-split), the repo venv's ``bnfold``,
    ``bnfold`` on PATH, then ``<repo>/.venv/bin/python cli.py``.
    """
    explicit = explicit or os.environ.get("BNFOLD")
    if explicit:
        return shlex.split(explicit)
    venv_bin = REPO_DIR / ".venv" / "bin"
    if (venv_bin / "bnfold").exists():
        return [str(venv_bin / "bnfold")]
    found = shutil.which("bnfold")
    if found:
        return [found]
    if (venv_bin / "python").exists() and (REPO_DIR / "cli.py").exists():
        return [str(venv_bin / "python"), str(REPO_DIR / "cli.py")]
    return None


def peer_available(tool: str) -> tuple[bool, str]:
    """(installed, version-or-reason) for a peer tool, checked without importing it."""
    import importlib.metadata as md
    import importlib.util

    mod = PEER_MODULES[tool]
    if importlib.util.find_spec(mod) is None:
        return False, "not installed"
    dist = {"onnx-load-save": "onnx", "ort-basic": "onnxruntime"}.get(tool, tool)
    try:
        return True, md.version(dist)
    except md.PackageNotFoundError:
        return True, "?"


# --------------------------------------------------------------------------- #
# Whole-process measurement
# --------------------------------------------------------------------------- #
@dataclass
class RunResult:
    cmd: list[str]
    rc: int | None
    wall_s: float
    peak_rss_kib: int | None  # from /usr/bin/time -v or getrusage (max over the tree)
    sampled_rss_kib: int | None  # from polling /proc (sum over the process group)
    timed_out: bool = False
    mem_killed: bool = False
    stdout: str = ""
    stderr: str = ""
    error: str | None = None
    extra: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.rc == 0 and not self.timed_out and not self.mem_killed

    def short_error(self, limit: int = 70) -> str:
        if self.timed_out:
            return f"timeout ({self.wall_s:.0f} s)"
        if self.mem_killed:
            return f"killed: RSS over limit ({fmt_kib(self.sampled_rss_kib)})"
        if self.error:
            return _one_line(self.error, limit)
        if self.rc is not None and self.rc < 0:
            try:
                name = signal.Signals(-self.rc).name
            except ValueError:
                name = str(-self.rc)
            return f"crashed ({name})"
        text = _last_meaningful_line(self.stderr) or _last_meaningful_line(self.stdout)
        return _one_line(f"exit {self.rc}: {text}" if text else f"exit {self.rc}", limit)

    def as_dict(self) -> dict:
        d = asdict(self)
        d["stdout"] = d["stdout"][-2000:]
        d["stderr"] = d["stderr"][-2000:]
        return d


def _one_line(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _last_meaningful_line(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    # Prefer a line that looks like an exception/error message.
    for ln in reversed(lines):
        if "Error" in ln or "error" in ln or "Exception" in ln or ln.startswith("fail"):
            return ln
    return lines[-1] if lines else ""


_TIME_V = "/usr/bin/time"


def _has_gnu_time() -> bool:
    if not os.path.exists(_TIME_V):
        return False
    try:
        p = subprocess.run([_TIME_V, "-v", "true"], capture_output=True, text=True, timeout=10)
        return "Maximum resident set size" in p.stderr
    except Exception:
        return False


_GNU_TIME: bool | None = None

_RUSAGE_WRAPPER = (
    "import resource,subprocess,sys\n"
    "rc=subprocess.call(sys.argv[2:])\n"
    "open(sys.argv[1],'w').write('%d %d' % (resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, rc))\n"
    "sys.exit(rc if rc>=0 else 128-rc)\n"
)


def rss_method() -> str:
    global _GNU_TIME
    if _GNU_TIME is None:
        _GNU_TIME = _has_gnu_time()
    return "/usr/bin/time -v" if _GNU_TIME else "getrusage(RUSAGE_CHILDREN) wrapper"


def _group_rss_kib(pgid: int) -> int:
    """Sum of RSS (KiB) of all processes in a process group, from /proc."""
    total = 0
    page_kib = os.sysconf("SC_PAGE_SIZE") // 1024
    try:
        entries = os.listdir("/proc")
    except OSError:
        return 0
    for e in entries:
        if not e.isdigit():
            continue
        try:
            with open(f"/proc/{e}/stat", "rb") as f:
                data = f.read()
        except OSError:
            continue
        # fields after the ")" of comm: state ppid pgrp session ... rss is field 24 overall
        rest = data[data.rfind(b")") + 2 :].split()
        try:
            if int(rest[2]) == pgid:
                total += int(rest[21]) * page_kib
        except (IndexError, ValueError):
            continue
    return total


def run_measured(
    cmd: list[str],
    timeout_s: float,
    mem_limit_kib: int | None = None,
    cwd: str | None = None,
    env: dict | None = None,
) -> RunResult:
    """Run ``cmd`` as a separate process group; measure wall time and peak RSS.

    Peak RSS comes from ``/usr/bin/time -v`` when present, else from a tiny
    Python wrapper reading ``getrusage(RUSAGE_CHILDREN).ru_maxrss``. A watchdog
    thread polls the group's RSS and kills it when it passes ``mem_limit_kib``
    (protecting the machine from a runaway peer) or when ``timeout_s`` passes.
    """
    import tempfile

    fd, rss_file = tempfile.mkstemp(prefix="bnfold-bench-rss-", suffix=".txt")
    os.close(fd)
    if rss_method().startswith("/usr/bin/time"):
        full = [_TIME_V, "-v", "-o", rss_file, *cmd]
    else:
        full = [sys.executable, "-c", _RUSAGE_WRAPPER, rss_file, *cmd]

    sampled_peak = 0
    mem_killed = False
    timed_out = False
    t0 = time.perf_counter()
    try:
        proc = subprocess.Popen(
            full,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            cwd=cwd,
            env=env,
            start_new_session=True,
            text=True,
            errors="replace",
        )
    except OSError as exc:
        os.unlink(rss_file)
        return RunResult(cmd, None, 0.0, None, None, error=f"cannot start: {exc}")

    out_chunks: list[str] = []
    err_chunks: list[str] = []

    def _pump(stream, sink):
        for chunk in iter(lambda: stream.read(65536), ""):
            sink.append(chunk)
            # keep only the tail to bound memory
            if len(sink) > 64:
                del sink[:-32]

    threads = [
        threading.Thread(target=_pump, args=(proc.stdout, out_chunks), daemon=True),
        threading.Thread(target=_pump, args=(proc.stderr, err_chunks), daemon=True),
    ]
    for th in threads:
        th.start()

    def _kill():
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    while True:
        try:
            proc.wait(timeout=0.1)
            break
        except subprocess.TimeoutExpired:
            pass
        rss = _group_rss_kib(proc.pid)
        sampled_peak = max(sampled_peak, rss)
        if mem_limit_kib and rss > mem_limit_kib:
            mem_killed = True
            _kill()
        elif time.perf_counter() - t0 > timeout_s:
            timed_out = True
            _kill()
    wall = time.perf_counter() - t0
    _kill()  # stray grandchildren, if any
    for th in threads:
        th.join(timeout=5)

    peak = None
    rc = proc.returncode
    try:
        text = Path(rss_file).read_text()
        if rss_method().startswith("/usr/bin/time"):
            for line in text.splitlines():
                line = line.strip()
                if "Maximum resident set size" in line:
                    peak = int(line.split(":")[-1].strip())
                elif line.startswith("Command terminated by signal"):
                    # GNU time exits 128+N for a signal; report it as -N
                    rc = -int(line.split()[-1])
        elif text.strip():
            maxrss, child_rc = text.split()
            peak, rc = int(maxrss), int(child_rc)
    except (OSError, ValueError, IndexError):
        pass
    finally:
        try:
            os.unlink(rss_file)
        except OSError:
            pass
    if timed_out or mem_killed:
        rc = -signal.SIGKILL
    stderr = "".join(err_chunks)
    return RunResult(
        cmd=cmd,
        rc=rc,
        wall_s=wall,
        peak_rss_kib=peak,
        sampled_rss_kib=sampled_peak or None,
        timed_out=timed_out,
        mem_killed=mem_killed,
        stdout="".join(out_chunks),
        stderr=stderr,
    )


def worker_command(python: str, *args: str) -> list[str]:
    return [python, str(WORKER), *args]


def parse_worker_json(stdout: str) -> dict | None:
    """The last line of stdout that starts with the worker's JSON marker."""
    for line in reversed(stdout.splitlines()):
        if line.startswith("@@BENCH@@"):
            try:
                return json.loads(line[len("@@BENCH@@") :])
            except json.JSONDecodeError:
                return None
    return None


# --------------------------------------------------------------------------- #
# Machine description and formatting
# --------------------------------------------------------------------------- #
def machine_info() -> dict:
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gib = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_gib = int(line.split()[1]) / 1024 / 1024
                break
    except OSError:
        pass
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count()
    return {
        "cpu": cpu,
        "cores": cores,
        "mem_gib": round(mem_gib, 1) if mem_gib else None,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def machine_line(info: dict | None = None) -> str:
    info = info or machine_info()
    mem = f"{info['mem_gib']:.1f} GiB RAM" if info.get("mem_gib") else "RAM ?"
    return f"{info['cores']} cores, {mem}, {info['cpu'] or 'CPU ?'}, Python {info['python']}"


def fmt_kib(kib: int | None) -> str:
    if kib is None:
        return "?"
    mib = kib / 1024
    return f"{mib / 1024:.2f} GiB" if mib >= 1024 else f"{mib:.0f} MiB"


def fmt_bytes(n: int | None) -> str:
    return fmt_kib(None if n is None else n // 1024)


def fmt_s(s: float | None) -> str:
    if s is None:
        return "?"
    return f"{s:.2f} s" if s < 10 else f"{s:.1f} s"


def print_table(title: str, headers: list[str], rows: list[list[str]], use_rich: bool = True) -> None:
    """A rich table when rich is importable, else aligned plain text."""
    if use_rich:
        try:
            from rich.console import Console
            from rich.table import Table

            table = Table(title=title, show_lines=False)
            for h in headers:
                table.add_column(h, overflow="fold")
            for r in rows:
                table.add_row(*r)
            Console(width=max(160, shutil.get_terminal_size((160, 20)).columns)).print(table)
            return
        except ImportError:
            pass
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    print(title)
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths)))
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)))
    print()
