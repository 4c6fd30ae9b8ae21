"""`synthwatch monitor run|replay|status`, `synthwatch retrain` and `synthwatch schedule start|list|run|stop`."""

from __future__ import annotations

from flows.commands import CommandResult, add_common


def register(subparsers) -> None:
    p = subparsers.add_parser("monitor", help="Score what arrived in the inbox; replay a table into it; status.")
    sub = p.add_subparsers(dest="monitor_command", metavar="ACTION", required=True)
    run = add_common(sub.add_parser("run", help="One monitor run: ingest the inbox, score new batches, drift, events."))
    run.add_argument("--dask-workers", type=int, default=0,
                     help="score on a local Dask cluster of N worker processes (default 0: in this process)")
    run.set_defaults(handler=run_monitor)
    replay = add_common(sub.add_parser("replay", help="Drop a table into the inbox as timed batches (a demo feed)."))
    replay.add_argument("--table", default="creditcard", help="table to replay (default creditcard)")
    replay.add_argument("--inbox", help="inbox folder (default: monitor.inbox of the config)")
    replay.add_argument("--time-column", default="Time", help="column the windows are cut by (default Time)")
    replay.add_argument("--window", type=float, default=3600.0, help="window width in time units (default 3600)")
    replay.add_argument("--start", type=int, default=0, help="first window (default 0)")
    replay.add_argument("--files", type=int, help="number of windows to write (default: all)")
    replay.add_argument("--interval", type=float, default=0.0, help="seconds between files (default 0)")
    replay.add_argument("--drop", action="append", default=[], help="column left out of the files (repeatable)")
    replay.set_defaults(handler=run_replay)
    add_common(sub.add_parser("status", help="Batches, alert rates, drift and events of the monitored table.")
               ).set_defaults(handler=run_status)

    add_common(subparsers.add_parser(
        "retrain", help="Train a challenger detector; it replaces the champion only when not worse on labels.")
    ).set_defaults(handler=run_retrain)

    s = subparsers.add_parser("schedule", help="Serve the pipeline.yaml deployments on the local Prefect server.")
    ssub = s.add_subparsers(dest="schedule_command", metavar="ACTION", required=True)
    add_common(ssub.add_parser("start", help="Start the server (if needed) and serve every deployment.")
               ).set_defaults(handler=run_schedule_start)
    add_common(ssub.add_parser("list", help="Deployments with their schedules and next runs.")
               ).set_defaults(handler=run_schedule_list)
    now = add_common(ssub.add_parser("run", help="Run one deployment now."))
    now.add_argument("name", help="deployment name (see schedule list)")
    now.add_argument("--wait", type=float, default=0.0, help="seconds to wait for the run to finish (default 0)")
    now.set_defaults(handler=run_schedule_run)
    add_common(ssub.add_parser("stop", help="Stop serving (the schedules are paused).")
               ).set_defaults(handler=run_schedule_stop)


def run_monitor(args, settings) -> CommandResult:
    from flows.commands import run_flow, state_result
    from flows.monitor_flows import monitor_flow, with_dask

    if args.dask_workers < 0:
        from flows.monitor import MonitorError

        raise MonitorError(f"--dask-workers must be 0 or more, got {args.dask_workers}")
    flow_fn = with_dask(monitor_flow, args.dask_workers) if args.dask_workers else monitor_flow
    r = state_result(run_flow(flow_fn, str(settings.db_path), str(settings.data_dir),
                              str(settings.config_path) if settings.config_path else None, args.dask_workers))
    inbox = r.get("inbox") or {}
    lines = [f"inbox: {inbox.get('ingested', 0)} file(s) ingested, {inbox.get('rejected', 0)} rejected"
             if inbox else "no inbox configured",
             f"scored {len(r['batches'])} new batch(es), {r['rows']:,} rows, {r['alerts']:,} alerts"
             + (f" with {r['model_id']}" if r.get("model_id") else "")]
    events = [f"{b['batch_id']}: {', '.join(b['events'])}" for b in r["batches"] if b["events"]]
    if events:
        lines.append("events: " + "; ".join(events[:10]) + (f" and {len(events) - 10} more" if len(events) > 10 else ""))
    if r.get("gap_event"):
        lines.append(f"gap: {r['gap_event']}")
    return CommandResult(data={"ok": True, **r}, text="\n".join(lines))


def run_replay(args, settings) -> CommandResult:
    from flows.replay import replay_table

    inbox = args.inbox or (settings.config.get("monitor") or {}).get("inbox") or "inbox"
    r = replay_table(settings, args.table, settings.resolve_path(inbox), time_column=args.time_column,
                     window=args.window, start=args.start, files=args.files, interval=args.interval, drop=args.drop,
                     progress=(lambda line: print(line, flush=True)) if args.interval > 0 and not args.json else None)
    return CommandResult(data={"ok": True, **r}, text=f"{len(r['files'])} file(s) of {args.table} written to "
                                                      f"{r['inbox']} ({r['windows']} windows in the table)")


def run_status(args, settings) -> CommandResult:
    from flows.queries import monitor_status

    cfg = settings.config.get("monitor") or {}
    r = monitor_status(settings, cfg.get("table", "transactions"))
    if not r["batches"]:
        return CommandResult(data={"ok": True, **r}, text=f"{r['table']}: no batch arrived yet (drop files into the "
                                                          "inbox, or: synthwatch monitor replay)")
    lines = [f"{r['table']}: {r['n_batches']} batches ({r['n_rejected']} rejected), champion {r['champion']}",
             f"{'batch':<18} {'rows':>8} {'alerts':>7} {'rate':>7} {'psi(score)':>10} {'max psi':>8}  scored"]
    for b in r["batches"][:15]:
        fmt = lambda v, f: "-" if v is None else format(v, f)  # noqa: E731
        lines.append(f"{b['batch_id']:<18} {b['rows']:>8,} {fmt(b['alerts'], ','):>7} {fmt(b['alert_rate'], '.2%'):>7} "
                     f"{fmt(b['psi_score'], '.3f'):>10} {fmt(b['max_feature_psi'], '.3f'):>8}  {b['scored_at'] or '-'}")
    for e in r["events"][:10]:
        lines.append(f"event {e['created_at'][:19]} {e['event_type']}: {e['message']}")
    return CommandResult(data={"ok": True, **r}, text="\n".join(lines))


def run_retrain(args, settings) -> CommandResult:
    from flows.commands import run_flow, state_result
    from flows.monitor_flows import retrain_flow

    r = state_result(run_flow(retrain_flow, str(settings.db_path), str(settings.data_dir),
                              str(settings.config_path) if settings.config_path else None))
    verb = "replaces" if r["promoted"] else "does not replace"
    return CommandResult(data={"ok": True, **r}, text=f"challenger {r['challenger']} {verb} champion "
                                                      f"{r['champion'] or '(none)'}: {r['reason']}")


def run_schedule_start(args, settings) -> CommandResult:
    from flows.schedule import start

    r = start(settings)
    verb = "serving" if r["started"] else "already serving"
    ui = r["api_url"].removesuffix("/api")
    return CommandResult(data={"ok": True, **r}, text=f"{verb} {', '.join(r['deployments'])} (pid {r['pid']}, log "
                                                      f"{r['log']}); runs are recorded on the Prefect server at {ui}")


def run_schedule_list(args, settings) -> CommandResult:
    from flows.schedule import list_deployments

    rows = list_deployments(settings)
    lines = [f"{'deployment':<28} {'paused':<7} {'schedule':<40} next run"]
    for d in rows:
        lines.append(f"{d['full_name']:<28} {str(d['paused']).lower():<7} {'; '.join(d['schedules'])[:40]:<40} "
                     f"{d['next_runs'][0][:19] if d['next_runs'] else '-'}")
    return CommandResult(data={"ok": True, "deployments": rows}, text="\n".join(lines) if rows else
                         "no deployments on the server: run synthwatch schedule start")


def run_schedule_run(args, settings) -> CommandResult:
    from flows.schedule import run_now

    r = run_now(settings, args.name, wait=args.wait or None)
    return CommandResult(data={"ok": True, **r}, text=f"{r['deployment']}: flow run {r['name']} ({r['flow_run_id']}) "
                                                      f"{(r['state'] or 'scheduled').lower()}")


def run_schedule_stop(args, settings) -> CommandResult:
    from flows.schedule import stop

    r = stop(settings)
    text = (f"stopped serving {', '.join(r['deployments'])} (their schedules are paused)" if r["stopped"]
            else r["note"])
    return CommandResult(data={"ok": True, **r}, text=text)
