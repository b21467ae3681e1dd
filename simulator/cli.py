"""``bargein simulate``: run a scenario, show progress and a summary, write the JSON report.

:func:`register` adds the subcommand to the ``bargein`` command; ``python -m bargein.simulator`` runs it alone.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from .report import Report
from .scenario import ScenarioError, build_scenario, load_scenario

EXIT_OK, EXIT_VIOLATIONS, EXIT_BAD_SCENARIO = 0, 1, 2

DESCRIPTION = """\
Simulate a contact center: many agent-customer calls arriving at random, supervisors who monitor,
barge, coach and leave, parties who mute, hold and bring in third parties. Every simulated person
goes through the real signaling core and the real mixer; each leg speaks its own tone and every
listener is checked against the routing table. Prints a summary; --json PATH writes the full report.

Scenarios come from a TOML or JSON file (--scenario), flags override it. With --server URL the
simulator drives a running bargein server over its WebSocket protocol instead, --webrtc-calls of
them carrying audio over real WebRTC connections.

exit status: 0 when every routing check passed, 1 on any routing violation, 2 on a bad scenario
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--scenario", metavar="FILE", help="scenario file (.toml or .json); flags override it")
    p.add_argument("--calls", type=int, help="target number of concurrent calls (default 100)")
    p.add_argument("--duration", type=float, metavar="SECONDS", help="simulated time (default 60)")
    p.add_argument("--seed", type=int, help="random seed (default 1)")
    p.add_argument("--clock", choices=["virtual", "realtime"], help="virtual: as fast as possible; realtime: 20 ms")
    p.add_argument("--rate", type=int, choices=[8000, 16000, 48000], help="mixer rate in Hz (default 48000)")
    p.add_argument("--server", metavar="URL", help="drive a running bargein server at URL (ws://127.0.0.1:8080/ws); "
                   "a cluster: its nodes' URLs, comma-separated (connections are spread over them)")
    p.add_argument("--webrtc-calls", type=int, metavar="N", help="server path: calls carried over WebRTC legs")
    p.add_argument("--control", choices=["signaling", "direct"], default="signaling",
                   help="in-process call control: the real signaling core (default) or straight to the mixer")
    p.add_argument("--json", metavar="PATH", help="write the report as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def register(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "simulate",
        help="simulate many calls with supervisors and verify who hears whom",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(p)
    p.set_defaults(func=run)
    return p


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "calls": args.calls,
        "duration_s": args.duration,
        "seed": args.seed,
        "clock": args.clock,
        "rate": args.rate,
        "server": args.server,
        "webrtc_calls": args.webrtc_calls,
    }


def run(args: argparse.Namespace) -> int:
    console = Console(stderr=True)
    try:
        if args.scenario:
            scenario = load_scenario(args.scenario, _overrides(args))
        else:
            scenario = build_scenario({k: v for k, v in _overrides(args).items() if v is not None}, "(flags)")
    except ScenarioError as err:
        console.print(f"[bold red]error:[/] {err}", markup=True, highlight=False)
        return EXIT_BAD_SCENARIO
    from .sim import Simulation, default_control_factory

    ticks = scenario.ticks
    with Progress(
        TextColumn("[bold]simulating[/] {task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("ticks"), TimeElapsedColumn(), console=console, disable=args.quiet, transient=False,
    ) as progress:
        where = "server, real-time" if scenario.server else f"{scenario.clock} clock"
        task = progress.add_task(f"{scenario.calls} calls, {where}", total=ticks)

        def on_progress(done: int) -> None:
            progress.update(task, completed=done)

        if scenario.server:
            from .remote import run_remote

            report = run_remote(scenario, on_progress)
        else:
            if args.control == "direct":
                from .control import DirectControl

                factory: Any = DirectControl
            else:
                factory = default_control_factory()
            report = Simulation(scenario, control=factory).run(on_progress)
        progress.update(task, completed=ticks)
    print_summary(report, Console())
    if args.json:
        report.write_json(args.json)
        console.print(f"report written to {args.json}")
    return EXIT_OK if report.ok else EXIT_VIOLATIONS


def print_summary(r: Report, console: Console) -> None:
    t = Table(title=f"bargein simulation ({r.path}, {r.control}, {r.clock} clock, {r.rate} Hz)")
    t.add_column("metric")
    t.add_column("value", justify="right")
    rows: list[tuple[str, Any]] = [
        ("simulated time", f"{r.simulated_s:.1f} s ({r.ticks} ticks)"),
        ("wall time", f"{r.wall_time_s:.1f} s (+{r.setup_s:.1f} s set-up)"),
        ("calls started / completed / refused", f"{r.calls_started} / {r.calls_completed} / {r.calls_refused}"),
        ("peak concurrent calls (legs)", f"{r.peak_concurrent_calls} ({r.peak_legs})"),
        ("monitor sessions", r.monitor_sessions),
        ("barge / coach / monitor toggles", f"{r.barge_toggles} / {r.coach_toggles} / {r.monitor_toggles}"),
        ("supervisor leaves / ended by call end", f"{r.supervisor_leaves} / {r.supervision_ended_by_call_end}"),
        ("mutes (party / supervisor), holds, third parties",
         f"{r.party_mutes} / {r.supervisor_mutes}, {r.holds}, {r.third_parties}"),
        ("refusals", sum(r.refusals.values())),
        ("routing checks (listener x speaker)", f"{r.routing_checks:,}"),
        ("routing violations", f"[bold {'red' if r.routing_violations else 'green'}]{r.routing_violations}[/]"),
        ("tick ms p50 / p99 / max", f"{r.tick_ms['p50']:.2f} / {r.tick_ms['p99']:.2f} / {r.tick_ms['max']:.2f}"),
        ("deadline misses", r.deadline_misses),
        ("frames missing / dropped", f"{r.frames_missing} / {r.frames_dropped}"),
    ]
    if r.chats:
        c = r.chats
        rows += [("chats started / completed / refused",
                  f"{c['chats_started']} / {c['chats_completed']} / {c['chats_refused']}"),
                 ("chat messages (barged) / supervisor joins",
                  f"{c['messages']} ({c['barged_messages']}) / {c['supervisor_joins']}"),
                 ("chat violations", f"[bold {'red' if c['violations'] else 'green'}]{c['violations']}[/]")]
    for k, v in rows:
        t.add_row(k, str(v))
    console.print(t)
    if r.refusals:
        rt = Table(title="refusals (expected: limits and permissions at work)")
        rt.add_column("code and reason")
        rt.add_column("count", justify="right")
        for k, v in sorted(r.refusals.items(), key=lambda kv: -kv[1]):
            rt.add_row(k, str(v))
        console.print(rt)
    if r.violations:
        vt = Table(title=f"routing violations (first {len(r.violations)} of {r.routing_violations})", style="red")
        for col in ("tick", "call", "listener", "speaker", "expected", "measured dB"):
            vt.add_column(col)
        for v in r.violations[:20]:
            vt.add_row(str(v["tick"]), v["call"], v["listener"], v["speaker"], v["expected"], str(v["measured_db"]))
        console.print(vt)
    for note in r.notes:
        console.print(f"[dim]note: {note}[/]")


def main(argv: list[str] | None = None) -> int:
    import structlog

    from bargein.logs import configure_logging

    if not structlog.is_configured():
        configure_logging(level="WARNING")
    parser = argparse.ArgumentParser(prog="python -m bargein.simulator", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    args = parser.parse_args(argv)
    return run(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
