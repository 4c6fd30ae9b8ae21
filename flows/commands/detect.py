"""`synthwatch detect train|score`: fit anomaly detectors on warehouse tables and score tables into alerts."""

from __future__ import annotations

from flows.commands import CommandResult, add_common, run_flow, state_result


def register(subparsers) -> None:
    p = subparsers.add_parser("detect", help="Train anomaly detectors and score tables into alerts.")
    sub = p.add_subparsers(dest="detect_command", metavar="ACTION")

    train = sub.add_parser("train", help="Fit a detector on a table's normal rows and record it in _detectors.")
    add_common(train)
    train.add_argument("--table", required=True)
    train.add_argument("--detector", required=True, help="ganomaly, anogan, autoencoder or iforest")
    train.add_argument("--label-column", help="column telling normal from anomalous rows (training uses normal rows)")
    train.add_argument("--normal-value", help="value of the label column for normal rows (default 0)")
    train.add_argument("--key-column", help="column identifying each row in anomaly_scores (default: row number)")
    train.add_argument("--epochs", type=int, help="training epochs (deep detectors)")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--max-train-rows", type=int, help="train on a seeded sample of at most this many normal rows")
    train.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                       help="a detector hyperparameter, e.g. score_mode=density or window_length=256 (repeatable)")
    train.set_defaults(handler=run_detect_train)

    score = sub.add_parser("score", help="Score a table with a trained detector into anomaly_scores / alerts.")
    add_common(score)
    score.add_argument("--model", required=True, help="model id printed by detect train")
    score.add_argument("--table", required=True)
    score.set_defaults(handler=run_detect_score)

    listing = sub.add_parser("list", help="List trained detectors with their validation metrics.")
    add_common(listing)
    listing.set_defaults(handler=run_detect_list)

    delete = sub.add_parser("delete", help="Retire a detector: its record, its scores and alerts, its files.")
    add_common(delete)
    delete.add_argument("--model", required=True, action="append", help="model id shown by detect list (repeatable)")
    delete.set_defaults(handler=run_detect_delete)


def run_detect_train(args, settings) -> CommandResult:
    from flows.detect import detect_train_flow
    from flows.detect_checks import check_train_request

    params = check_train_request(settings, args.table, args.detector, args.param)
    state = run_flow(detect_train_flow, str(settings.db_path), str(settings.data_dir), args.table, args.detector,
                     args.label_column, args.normal_value, args.key_column, args.epochs, args.seed, params or None,
                     args.max_train_rows)
    result = state_result(state)
    metrics = ", ".join(f"{k} {result[k]:.4f}" for k in ("auroc", "auprc", "precision", "recall")
                        if result.get(k) is not None)
    text = (f"model {result['model_id']}: {result['detector']} on {result['table']} ({result['kind']}), "
            f"{result['n_train']} training items, threshold {result['threshold']:.4f} ({result['threshold_source']}),"
            f" score {result['score_mode']}"
            + (f"\n  held-out validation ({result['n_report']} items, not used for any choice): {metrics}"
               if metrics else ""))
    return CommandResult(data={"ok": True, **result}, text=text)


def run_detect_score(args, settings) -> CommandResult:
    from flows.detect import detect_score_flow
    from flows.detect_checks import check_score_request, format_alerts

    check_score_request(settings, args.model, args.table)
    result = state_result(run_flow(detect_score_flow, str(settings.db_path), str(settings.data_dir), args.model,
                                   args.table))
    return CommandResult(data={"ok": True, **result}, text=format_alerts(result))


def run_detect_list(args, settings) -> CommandResult:
    from flows.queries import list_detectors

    models = list_detectors(settings)
    if not models:
        return CommandResult(data={"ok": True, "detectors": []},
                             text="no trained detectors yet: run synthwatch detect train --table T --detector NAME")
    # AUROC/AUPRC on the held-out half of the validation rows; "chosen on" = the half the score mode and
    # threshold were chosen on (its figures are optimistic by construction).
    lines = [f"{'model':<44} {'detector':<12} {'table':<20} {'kind':<10} {'score':<14} {'AUROC':>6} {'AUPRC':>6} "
             f"{'(chosen on)':>13}  created"]
    for m in models:
        metric = {k: ("-" if m.get(k) is None else f"{m[k]:.3f}")
                  for k in ("auroc", "auprc", "selection_auroc", "selection_auprc")}
        lines.append(f"{m['model_id']:<44} {m['detector']:<12} {m['table_name']:<20} {m['kind']:<10} "
                     f"{m['score_mode']:<14} {metric['auroc']:>6} {metric['auprc']:>6} "
                     f"{metric['selection_auroc'] + '/' + metric['selection_auprc']:>13}  {m['created_at'][:19]}")
    return CommandResult(data={"ok": True, "detectors": models}, text="\n".join(lines))


def run_detect_delete(args, settings) -> CommandResult:
    from flows.detect import delete_detectors

    deleted = delete_detectors(settings, args.model)
    text = "\n".join(
        f"deleted detector {d['model_id']} (trained on {d['table']}): {d['scores_deleted']} scores and "
        f"{d['alerts_deleted']} alerts removed" + (", files removed" if d["files_deleted"] else ", no files to remove")
        for d in deleted)
    return CommandResult(data={"ok": True, "deleted": deleted}, text=text)
