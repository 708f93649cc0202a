"""``traceany eval``: score predictions (files or a method) against episodes with the contract's metrics."""
from __future__ import annotations

import json
import sys
from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser("eval", help="evaluate predictions against episode ground truth",
                       description="Predictions come from --pred DIR (files named like the episodes) or from "
                                   "--method: static | oracle | any backend name (flow, model, ...).")
    p.add_argument("--data", required=True, help="episode directory (or one .npz)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--pred", help="directory of prediction .npz files, matched by episode file name")
    src.add_argument("--method", help="static | oracle | a backend of traceany_ros.backends.make_backend")
    p.add_argument("--limit", type=int, default=None, help="evaluate only the first N episodes")
    p.add_argument("--per-episode", action="store_true", help="include per-episode results in the JSON")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--output", help="also write the JSON result to this file")
    p.set_defaults(func=run)


def predictor_for(method: str):
    """ep -> (tracks_world [Q,T,3], confidence [Q,T] | None) for a method name."""
    from traceany_ros.baselines import BASELINES

    if method in BASELINES:
        return BASELINES[method]
    try:
        from traceany_ros.backends import make_backend
        from traceany_ros.predict import predict_episode
    except ImportError as e:
        raise SystemExit(f"method {method!r} is not a baseline ({sorted(BASELINES)}) and the backend modules "
                         f"cannot be imported ({e}); use --method static|oracle or --pred DIR")
    try:
        backend = make_backend(method)
    except ValueError as e:
        raise SystemExit(f"unknown method {method!r}: {e} (baselines: {sorted(BASELINES)})")
    return lambda ep: predict_episode(ep, backend)


def run(args) -> int:
    from tqdm import tqdm

    from traceany_ros.commands.validate import episode_files
    from traceany_ros.episode import load_episode, load_prediction
    from traceany_ros.metrics import aggregate, evaluate_predictions, format_table

    try:
        files = episode_files([args.data])
    except FileNotFoundError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.limit:
        files = files[: args.limit]
    if not files:
        print(f"error: no episodes in {args.data}", file=sys.stderr)
        return 2
    predict = predictor_for(args.method) if args.method else None
    per = {}
    for f in tqdm(files, desc="eval", unit="ep", disable=args.json):
        ep = load_episode(f)
        if predict is not None:
            tracks, conf = predict(ep)
        else:
            pf = Path(args.pred) / f.name
            if not pf.exists():
                print(f"error: no prediction {pf} for episode {f}; name prediction files like the episodes",
                      file=sys.stderr)
                return 2
            tracks, conf = load_prediction(pf)
        try:
            per[f.name] = evaluate_predictions(ep, tracks, conf)
        except ValueError as e:
            print(f"error: {f.name}: {e}", file=sys.stderr)
            return 2
    name = args.method or Path(args.pred).name
    result = {"method": name, "data": str(args.data), **aggregate(list(per.values()))}
    if args.per_episode:
        result["per_episode"] = per
    text = json.dumps(result, indent=2)
    if args.output:
        Path(args.output).write_text(text + "\n")
    if args.json:
        print(json.dumps(result))
    else:
        print(format_table({name: result}))
    return 0
