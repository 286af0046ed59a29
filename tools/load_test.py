"""A class on one server: N students at once on the loopback address, each opening pages and moving sliders.

    PYTHONPATH=. .venv/bin/python tools/load_test.py [--sessions 30] [--rounds 2] [--browser] [--json PATH [--force]]

Starts `streamlit run app.py` (the shipped checkpoints, .streamlit/config.toml) on 127.0.0.1 and drives it with
Streamlit's own websocket protocol (BackMsg / ForwardMsg protobufs, what the browser sends and receives), so the
students cost the machine almost nothing and what is measured is the server. Each student opens the Latent
explorer, drags z sliders, opens Generate and moves its step slider (when the page has one), with a think time
between moves, then leaves. Bounded: at most --sessions students, --moves moves each, --time-limit seconds a round.

Reports the time from a student's move to the end of the rerun it caused (median and 95th percentile), the
exceptions the pages raised (any fails the run), and the server's CPU (cores) and resident memory: before the
first round (caches warm after one visit), during each round, and after each round's sessions are closed and
their state dropped. Streamlit keeps a closed session for --server.disconnectedSessionTTL seconds (short here) in
case it reconnects, and drops expired ones when its session store is next used: the next student to connect does
that, so after the TTL one short visit (the home page) comes before memory is read.
With --browser, one real chromium page (Playwright) measures, during the load, the time from a key press on a z
slider to the redrawn digit in the browser: the end-to-end time a student sees.

Lives in tools/ because it drives the Streamlit app; it reuses the browser tests' server set-up.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import websockets
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from streamlit.proto.WidgetStates_pb2 import WidgetState

from draw_core.arguments import finite_number, positive_number, whole_number
from draw_core.io.files import check_writable, write_atomically

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from browser_support import CHROMIUM, IDLE, key_to_picture_ms, streamlit_server  # noqa: E402

SESSION_TTL_S = 2  # the server forgets a closed session's state this long after its websocket closes
SERVER_ENV = {"MALLOC_ARENA_MAX": "2"}  # as `make app` runs the server (see the Makefile)
RERUN_TIMEOUT_S = 120  # a rerun that takes longer counts as a failure of the run
FINISHED = {ForwardMsg.FINISHED_SUCCESSFULLY, ForwardMsg.FINISHED_FRAGMENT_RUN_SUCCESSFULLY}
MEMORY_TOLERANCE = 0.10  # after a round, the server's memory must be within this fraction of its level before


@dataclass
class Widget:
    id: str  # Streamlit's element id, "$$ID-<hash>-<key>"
    kind: str  # the element type: "slider", "button", ...
    fragment_id: str  # the fragment that drew it ("" outside fragments): a change reruns only that
    proto: object = field(repr=False)


class Student:
    """One browser session spoken to over Streamlit's websocket protocol."""

    def __init__(self, url: str):
        self.url = url
        self.widgets: dict[str, Widget] = {}  # by widget key
        self.page_hash = ""
        self.exceptions: list[str] = []
        self.socket = None

    async def connect(self) -> None:
        stream = self.url.replace("http://", "ws://") + "/_stcore/stream"
        self.socket = await websockets.connect(stream, subprotocols=["streamlit"], max_size=None)

    async def close(self) -> None:
        await self.socket.close()

    async def _rerun(self, *, page: str | None = None, state: WidgetState | None = None, fragment: str = "") -> float:
        """Send a rerun (a page to open, or one widget's new value) and wait until it has finished; seconds."""
        message = BackMsg()
        client = message.rerun_script
        if page is not None:
            client.page_name = page
            self.widgets.clear()
        else:
            client.page_script_hash = self.page_hash
        if state is not None:
            client.widget_states.widgets.append(state)
        client.fragment_id = fragment
        start = time.perf_counter()
        await self.socket.send(message.SerializeToString())
        while True:
            reply = ForwardMsg()
            reply.ParseFromString(await asyncio.wait_for(self.socket.recv(), RERUN_TIMEOUT_S))
            kind = reply.WhichOneof("type")
            if kind == "new_session":
                self.page_hash = reply.new_session.page_script_hash
            elif kind == "delta" and reply.delta.WhichOneof("type") == "new_element":
                self._saw(reply.delta.new_element, reply.delta.fragment_id)
            elif kind == "script_finished" and reply.script_finished != ForwardMsg.FINISHED_EARLY_FOR_RERUN:
                if reply.script_finished not in FINISHED:
                    self.exceptions.append(f"the script did not finish: status {reply.script_finished}")
                return time.perf_counter() - start

    def _saw(self, element, fragment_id: str) -> None:
        kind = element.WhichOneof("type")
        proto = getattr(element, kind)
        if kind == "exception":
            self.exceptions.append(f"{proto.type}: {proto.message}")
        widget_id = getattr(proto, "id", "")
        if widget_id.startswith("$$ID-"):
            self.widgets[widget_id.split("-", 2)[2]] = Widget(widget_id, kind, fragment_id, proto)

    async def open(self, page: str) -> float:
        return await self._rerun(page=page)

    def sliders(self, prefix: str) -> list[str]:
        return [key for key, w in self.widgets.items() if w.kind == "slider" and key.startswith(prefix)]

    async def slide(self, key: str, value: float) -> float:
        widget = self.widgets[key]
        state = WidgetState(id=widget.id)
        state.double_array_value.data.append(value)
        return await self._rerun(state=state, fragment=widget.fragment_id)


@dataclass
class Move:
    page: str
    action: str  # "open", "z slider", "step slider"
    seconds: float


async def student_run(url: str, moves: int, think_s: float, rng: random.Random) -> tuple[list[Move], list[str]]:
    """One student's visit: Latent explorer (open, drag z sliders), Generate (open, move the step), then leave."""
    student = Student(url)
    done: list[Move] = []
    await student.connect()
    try:
        done.append(Move("latent", "open", await student.open("latent")))
        for _ in range(moves):
            await asyncio.sleep(rng.uniform(0.5, 1.5) * think_s)
            key = rng.choice(student.sliders("latent_dim_")[:4])
            value = round(rng.uniform(-3, 3) / 0.05) * 0.05
            done.append(Move("latent", "z slider", await student.slide(key, value)))
        await asyncio.sleep(think_s)
        done.append(Move("generate", "open", await student.open("generate")))
        if "step" in student.widgets and student.widgets["step"].kind == "slider":
            T = int(student.widgets["step"].proto.max)
            for _ in range(max(1, moves // 2)):
                await asyncio.sleep(rng.uniform(0.5, 1.5) * think_s)
                done.append(Move("generate", "step slider", await student.slide("step", float(rng.randint(1, T)))))
    finally:
        await student.close()
    return done, student.exceptions


class Meter:
    """Samples a process's CPU time and resident memory from /proc every `every_s` seconds, in a thread."""

    def __init__(self, pid: int, every_s: float = 0.5):
        self.pid, self.every_s = pid, every_s
        self.samples: list[tuple[float, float, float]] = []  # (wall s, cpu s, rss MiB)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def read(self) -> tuple[float, float, float]:
        with open(f"/proc/{self.pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime
        with open(f"/proc/{self.pid}/status") as status:
            rss_kib = next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
        return time.monotonic(), cpu, rss_kib / 1024

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append(self.read())
            self._stop.wait(self.every_s)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def window(self, start: float, stop: float) -> dict:
        """CPU (mean and peak cores over 1-second spans) and peak memory between two monotonic times."""
        inside = [s for s in self.samples if start <= s[0] <= stop]
        if len(inside) < 2:
            return {}
        cores = []
        for a, b in zip(inside, inside[2:], strict=False):  # ~1 s spans
            cores.append((b[1] - a[1]) / (b[0] - a[0]))
        return {
            "cpu_cores_mean": (inside[-1][1] - inside[0][1]) / (inside[-1][0] - inside[0][0]),
            "cpu_cores_peak": max(cores, default=0.0),
            "rss_mib_peak": max(s[2] for s in inside),
        }

    def settled_rss(self, seconds: float = 3.0) -> float:
        """The median resident memory (MiB) over the next `seconds`."""
        readings = []
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            readings.append(self.read()[2])
            time.sleep(0.25)
        return statistics.median(readings)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def browser_probe(url: str, presses: int, results: list[float], errors: list[str], ready: threading.Event) -> None:
    """One real chromium page on the Latent explorer: the time from a key press on the top z slider to the
    redrawn digit (the picture's data changed and the script is idle), for `presses` presses."""
    from playwright.sync_api import sync_playwright

    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(f"{url}/latent")
            page.wait_for_selector(IDLE, timeout=120_000)
            page.locator(".js-plotly-plot").first.wait_for(timeout=120_000)
            thumb = page.get_by_test_id("stSlider").filter(has_text="nats").first.get_by_role("slider")
            ready.set()
            for _ in range(presses):  # each press a new z (no repeat the session's decode cache would answer)
                key = "ArrowRight" if float(thumb.input_value()) < 3.5 else "Home"
                results.append(key_to_picture_ms(page, thumb, key, "drawn from this z") / 1000)
                page.wait_for_timeout(300)
            browser.close()
    except Exception as error:  # reported with the figures; the load itself goes on
        errors.append(f"browser probe: {error}")
    finally:
        ready.set()


async def next_visitor(url: str) -> None:
    """One short visit to the home page: what makes Streamlit drop the closed sessions whose TTL has passed."""
    student = Student(url)
    await student.connect()
    try:
        await student.open("")
    finally:
        await student.close()


async def one_round(url: str, sessions: int, moves: int, think_s: float, time_limit_s: float, seed: int):
    rng = random.Random(seed)
    runs = [student_run(url, moves, think_s, random.Random(rng.random())) for _ in range(sessions)]
    outcomes = await asyncio.wait_for(asyncio.gather(*runs, return_exceptions=True), time_limit_s)
    moves_done, problems = [], []
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            problems.append(f"a session failed: {outcome!r}")
        else:
            moves_done += outcome[0]
            problems += outcome[1]
    return moves_done, problems


def summarise(moves: list[Move]) -> dict:
    rows = {}
    for action in sorted({(m.page, m.action) for m in moves}):
        seconds = [m.seconds for m in moves if (m.page, m.action) == action]
        rows[" ".join(action)] = {
            "count": len(seconds),
            "median_ms": statistics.median(seconds) * 1e3,
            "p95_ms": percentile(seconds, 0.95) * 1e3,
        }
    return rows


def run(args) -> dict:
    folder = Path(tempfile.mkdtemp(prefix="draw-load-"))
    (folder / "runs").mkdir()
    options = {"server.disconnectedSessionTTL": str(SESSION_TTL_S)}
    report: dict = {"sessions": args.sessions, "moves": args.moves, "think_s": args.think, "cpus": os.cpu_count()}
    with streamlit_server(
        runs=folder / "runs", shipped=ROOT / "checkpoints", log=folder / "server.log", options=options, env=SERVER_ENV
    ) as server:
        meter = Meter(server.process.pid)
        meter.start()
        report["rss_mib_started"] = meter.settled_rss(1.0)
        warm, problems = asyncio.run(one_round(server.url, 1, args.moves, 0.1, args.time_limit, args.seed))
        report["warm_up"] = summarise(warm)
        time.sleep(SESSION_TTL_S + 1)
        asyncio.run(next_visitor(server.url))
        before = report["rss_mib_before"] = meter.settled_rss()
        report["rounds"] = []
        for index in range(args.rounds):
            probe_times: list[float] = []
            probe_errors: list[str] = []
            ready = threading.Event()
            probe = None
            if args.browser and index == 0:
                probe = threading.Thread(
                    target=browser_probe, args=(server.url, args.presses, probe_times, probe_errors, ready)
                )
                probe.start()
                ready.wait(180)
            start = time.monotonic()
            moves, round_problems = asyncio.run(
                one_round(server.url, args.sessions, args.moves, args.think, args.time_limit, args.seed + 1 + index)
            )
            stop = time.monotonic()
            if probe is not None:
                probe.join(args.time_limit)
            problems += round_problems + probe_errors
            time.sleep(SESSION_TTL_S + 1)
            asyncio.run(next_visitor(server.url))
            after = meter.settled_rss()
            moved = [m for m in moves if m.action != "open"]
            report["rounds"].append(
                {
                    "wall_s": stop - start,
                    "moves": summarise(moves),
                    "all_moves_median_ms": statistics.median([m.seconds for m in moved]) * 1e3 if moved else None,
                    "all_moves_p95_ms": percentile([m.seconds for m in moved], 0.95) * 1e3 if moved else None,
                    **meter.window(start, stop),
                    "rss_mib_after_close": after,
                    "browser_key_to_picture_ms": [t * 1e3 for t in probe_times],
                }
            )
        meter.stop()
    report["problems"] = problems
    last = report["rounds"][-1]["rss_mib_after_close"]
    report["memory_back_within_10pct"] = last <= before * (1 + MEMORY_TOLERANCE)
    return report


def print_report(report: dict) -> None:
    print(
        f"{report['sessions']} sessions x {report['moves']} moves, think time ~{report['think_s']} s, "
        f"{report['cpus']} CPUs; server memory at start {report['rss_mib_started']:.0f} MiB, "
        f"before the rounds (warm) {report['rss_mib_before']:.0f} MiB"
    )
    for i, round_ in enumerate(report["rounds"], 1):
        print(
            f"round {i}: {round_['wall_s']:.1f} s; server CPU mean {round_.get('cpu_cores_mean', 0):.2f} cores, "
            f"peak {round_.get('cpu_cores_peak', 0):.2f}; memory peak {round_.get('rss_mib_peak', 0):.0f} MiB, "
            f"after the sessions closed {round_['rss_mib_after_close']:.0f} MiB"
        )
        for name, row in round_["moves"].items():
            print(f"  {name:22s} n={row['count']:4d}  median {row['median_ms']:7.0f} ms  p95 {row['p95_ms']:7.0f} ms")
        probe = round_["browser_key_to_picture_ms"]
        if probe:
            print(
                f"  browser, key press -> redrawn digit: median {statistics.median(probe):.0f} ms, "
                f"p95 {percentile(probe, 0.95):.0f} ms (n={len(probe)})"
            )
    print("memory back within 10%:", report["memory_back_within_10pct"])
    for problem in report["problems"]:
        print("PROBLEM:", problem)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tools/load_test.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=whole_number(0, 100), default=30, help="students at once (default 30)")
    parser.add_argument("--moves", type=whole_number(1), default=8, help="z slider moves per student (default 8)")
    parser.add_argument("--think", type=finite_number(0), default=1.0, help="mean seconds between a student's moves")
    parser.add_argument(
        "--rounds", type=whole_number(1, 5), default=2, help="classes one after the other (memory must not grow)"
    )
    parser.add_argument("--time-limit", type=positive_number, default=300, help="seconds a round may take at most")
    parser.add_argument("--browser", action="store_true", help="also time key press -> picture in chromium")
    parser.add_argument("--presses", type=whole_number(1), default=15, help="key presses the browser probe times")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="write the report here as JSON")
    parser.add_argument("--force", action="store_true", help="replace an existing --json")
    args = parser.parse_args(argv)
    if args.json:
        try:  # before the server starts: the report is written at the end, whole, and replaces one only when asked
            check_writable(args.json, replace=args.force)
        except ValueError as error:
            parser.error(f"--json: {error}")
    report = run(args)
    print_report(report)
    if args.json:
        write_atomically(args.json, (json.dumps(report, indent=1) + "\n").encode())
    ok = not report["problems"] and report["memory_back_within_10pct"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
