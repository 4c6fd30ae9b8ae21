"""`synthwatch server start|stop|status`: a local Prefect server on 127.0.0.1."""

from __future__ import annotations

import sys

from flows.commands import CommandResult, add_common


def register(subparsers) -> None:
    p = subparsers.add_parser("server", help="Start, stop or inspect the local Prefect server (127.0.0.1).")
    sub = p.add_subparsers(dest="server_command", metavar="ACTION", required=True)
    start = add_common(sub.add_parser("start", help="Start the server in the background."))
    start.add_argument("--host", default="127.0.0.1",
                       help="bind address (default 127.0.0.1; anything but loopback needs --allow-remote)")
    start.add_argument("--allow-remote", action="store_true",
                       help="allow a --host reachable from the network (the server has no authentication)")
    start.add_argument("--port", type=int, help="port (default: a free one)")
    start.set_defaults(handler=run_start)
    add_common(sub.add_parser("stop", help="Stop the server.")).set_defaults(handler=run_stop)
    add_common(sub.add_parser("status", help="Is the server up?")).set_defaults(handler=run_status)


def _with_note(text: str, info: dict) -> str:
    return f"{text} ({info['note']})" if info.get("note") else text


def run_start(args, settings) -> CommandResult:
    from flows import server

    if args.allow_remote and not server.is_loopback(args.host):
        print(f"warning: {server.remote_warning(args.host)}", file=sys.stderr)
    info = server.start(settings.prefect_home, host=args.host, port=args.port, allow_remote=args.allow_remote)
    verb = "started" if info["started"] else "already running"
    text = f"prefect server {verb} at {info['api_url']}"
    return CommandResult(data={"ok": True, **info}, text=_with_note(text, info))


def run_stop(args, settings) -> CommandResult:
    from flows import server

    info = server.stop(settings.prefect_home)
    text = "prefect server stopped" if info["stopped"] else "no server was running"
    return CommandResult(data={"ok": True, **info}, text=_with_note(text, info))


def run_status(args, settings) -> CommandResult:
    from flows import server

    info = server.status(settings.prefect_home)
    text = f"prefect server running at {info['api_url']}" if info["running"] else "prefect server not running"
    return CommandResult(data={"ok": True, **info}, text=_with_note(text, info))
