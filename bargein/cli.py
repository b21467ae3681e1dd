"""The ``bargein`` command: ``serve`` (signaling + WebRTC + mixer) and ``simulate`` (the simulator)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from bargein.logs import configure_logging

DESCRIPTION = """\
bargein: contact-center call audio. Agents and customers talk over WebRTC through a batched
conference mixer; supervisors pick a live call from a real-time agents view and monitor it
silently, barge in (both parties hear them) or coach the agent alone.

  bargein serve       run the server (open http://127.0.0.1:8080/ in a browser)
  bargein simulate    simulate many calls and verify who hears whom
"""

SERVE_DESCRIPTION = """\
Run the server: the signaling WebSocket (/ws), the web client (/), the real-time views for
supervisors (/api/agents, /api/calls, /api/records), /healthz and Prometheus /metrics, with the
conference mixer and the WebRTC media gateway. Settings come from their defaults, then the TOML
file given with --config, then BARGEIN_* environment variables, then the flags below.
"""

OTHER_VARIABLES = [
    ("BARGEIN_LOG_LEVEL", "DEBUG, INFO (default) or WARNING"),
    ("BARGEIN_LOG_JSON", "1: JSON logs even on a terminal"),
    ("BARGEIN_MIX_KERNEL", "numpy: use the numpy mixer instead of the C kernel"),
]


def _environment_help() -> str:
    from bargein.signaling.settings import environment_variables

    rows = environment_variables() + OTHER_VARIABLES
    width = max(len(name) for name, _ in rows) + 2
    lines = [f"  {name:<{width}}{what}" for name, what in rows]
    return "environment variables:\n" + "\n".join(lines)


def _serve(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from bargein.app import serve
    from bargein.signaling.settings import load_settings

    if args.demo_calls < 0 or (args.demo_chats or 0) < 0:
        sys.stderr.write("bargein serve: --demo-calls and --demo-chats must be >= 0\n")
        return 2
    try:
        settings = load_settings(args.config, host=args.host, port=args.port, media_workers=args.media_workers,
                                 load_users=args.load_users, redis_url=args.redis, node_id=args.node_id,
                                 public_url=args.public_url)
    except (ValidationError, OSError, ValueError) as exc:
        sys.stderr.write(f"bargein serve: bad settings: {exc}\n")
        return 2
    if settings.redis_url and (args.demo_calls or args.demo_chats):
        sys.stderr.write("bargein serve: --demo-calls and --demo-chats run inside one server; with --redis drive the "
                         "cluster with `bargein simulate --server ws://NODE/ws` instead\n")
        return 2
    serve(settings, demo_calls=args.demo_calls, demo_chats=args.demo_chats)
    return 0


def build_parser() -> argparse.ArgumentParser:
    from bargein.simulator import cli as sim_cli

    ap = argparse.ArgumentParser(prog="bargein", description=DESCRIPTION,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--log-level", default=None, help="DEBUG, INFO (default), WARNING")
    ap.add_argument("--log-json", action="store_true", help="JSON logs even on a terminal")
    sub = ap.add_subparsers(dest="command", required=True, metavar="{serve,simulate}")
    serve = sub.add_parser("serve", help="run the signaling/WebRTC server with its mixer",
                           description=SERVE_DESCRIPTION, epilog=_environment_help(),
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    serve.add_argument("--host", default=None, help="bind address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=None, help="port (default 8080)")
    serve.add_argument("--config", default=None, metavar="FILE",
                       help="TOML settings file (BARGEIN_* environment variables override it)")
    serve.add_argument("--demo-calls", type=int, default=0, metavar="N",
                       help="run N simulated agent-customer calls inside the server (the live demo)")
    serve.add_argument("--demo-chats", type=int, default=None, metavar="N",
                       help="run N simulated customer-agent chats inside the server (default: 3 with --demo-calls)")
    serve.add_argument("--media-workers", type=int, default=None, metavar="N",
                       help="media worker processes (default: one per core; BARGEIN_MEDIA_WORKERS); "
                            "0 keeps media in the signaling process")
    serve.add_argument("--load-users", type=int, default=None, metavar="N",
                       help="generate N test agents, customers and supervisors (loadagent1.., token = name)")
    serve.add_argument("--redis", default=None, metavar="URL",
                       help="redis://HOST:PORT/DB: run as one node of a cluster (BARGEIN_REDIS_URL); "
                            "docs/architecture.md, Cluster")
    serve.add_argument("--node-id", default=None, metavar="NAME",
                       help="this node's name in the cluster (default HOST:PORT; BARGEIN_NODE_ID)")
    serve.add_argument("--public-url", default=None, metavar="URL",
                       help="how other nodes reach this one over HTTP (default http://HOST:PORT)")
    serve.set_defaults(func=_serve)
    sim_cli.register(sub)
    return ap


def main(argv: list[str] | None = None) -> Any:
    args = build_parser().parse_args(argv)
    quiet = "WARNING" if args.command == "simulate" else None  # per-call events would drown the progress bar
    configure_logging(args.log_level or quiet, json=True if args.log_json else None)
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
