"""``bargein``: ``serve`` (signaling + WebRTC + mixer) and ``simulate`` (the contact-center simulator)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from bargein.logs import configure_logging


def _serve(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from bargein.signaling.server import Service, run
    from bargein.signaling.settings import load_settings

    try:
        settings = load_settings(args.config, host=args.host, port=args.port, media_workers=args.media_workers,
                                 load_users=args.load_users)
    except (ValidationError, OSError, ValueError) as exc:
        sys.stderr.write(f"bargein serve: bad settings: {exc}\n")
        return 2
    services: list[Service] = []
    if args.demo_calls:
        try:
            from bargein.simulator.demo import DemoCalls  # type: ignore[import-not-found]
        except ImportError as exc:
            sys.stderr.write(f"bargein serve: --demo-calls needs the simulator's demo service ({exc})\n")
            return 2
        services.append(DemoCalls(args.demo_calls))
    run(settings, services)
    return 0


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="bargein", description=__doc__)
    ap.add_argument("--log-level", default=None, help="DEBUG, INFO (default), WARNING")
    ap.add_argument("--log-json", action="store_true", help="JSON logs even on a terminal")
    sub = ap.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the signaling/WebRTC server with its mixer")
    serve.add_argument("--host", default=None, help="bind address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=None, help="port (default 8080)")
    serve.add_argument("--config", default=None, help="TOML settings file (BARGEIN_* env vars override it)")
    serve.add_argument("--demo-calls", type=int, default=0, metavar="N",
                       help="run N simulated agent<->customer calls inside the server")
    serve.add_argument("--media-workers", type=int, default=None, metavar="N",
                       help="media worker processes (default: one per core; BARGEIN_MEDIA_WORKERS); "
                            "0 keeps media in the signaling process")
    serve.add_argument("--load-users", type=int, default=None, metavar="N",
                       help="generate N test agents, customers and supervisors (loadagent1.., token = name)")
    serve.set_defaults(func=_serve)
    try:
        from bargein.simulator import cli as sim_cli
    except ImportError:
        sim_cli = None
    if sim_cli is not None:
        sim_cli.register(sub)
    return ap


def main(argv: list[str] | None = None) -> Any:
    args = build_parser().parse_args(argv)
    quiet = "WARNING" if args.command == "simulate" else None  # per-call events would drown the progress bar
    configure_logging(args.log_level or quiet, json=True if args.log_json else None)
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
