"""`synthwatch feedback`: label an alert fraud or normal (stored at once in `_feedback`)."""

from __future__ import annotations

from flows.commands import CommandResult, add_common


def register(subparsers) -> None:
    p = subparsers.add_parser("feedback", help="Label a scored item (an alert) as fraud or normal.")
    add_common(p)
    p.add_argument("--alert", required=True, help="the item key of the alert (as shown in the alerts)")
    p.add_argument("--label", required=True, choices=["fraud", "normal"])
    p.add_argument("--model", help="the detector that raised the alert (default: any that scored the item)")
    p.add_argument("--table", help="the scored table, when the item key occurs in several")
    p.add_argument("--note", help="a free-text note kept with the label")
    p.set_defaults(handler=run_feedback)


def run_feedback(args, settings) -> CommandResult:
    from flows.feedback import precision_at_k, record_feedback

    row = record_feedback(settings, item_key=args.alert, label=args.label, model_id=args.model, table=args.table,
                          note=args.note, source="cli")
    precision = precision_at_k(settings, row["model_id"])
    shown = ", ".join(f"{k} {v:.2f}" for k, v in precision.items() if k.startswith("p@") and v is not None)
    text = (f"labelled {row['table_name']} item {row['item_key']} as {row['label']} (alert of {row['model_id']}); "
            f"{precision['labelled']} labels for this detector" + (f"; precision {shown}" if shown else ""))
    return CommandResult(data={"ok": True, "feedback": row, "precision": precision}, text=text)
