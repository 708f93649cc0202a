"""``traceany validate``: check episode files against every rule of the episode contract."""
from __future__ import annotations

import sys
from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser("validate", help="check episode files against docs/episode-format.md",
                       description="Exit status 0 when every file is valid; 1 with one message per violated rule.")
    p.add_argument("paths", nargs="+", metavar="DIR_OR_FILE", help="episode .npz files or directories of them")
    p.add_argument("--quiet", action="store_true", help="print only violations and the final count")
    p.set_defaults(func=run)


def episode_files(paths) -> list[Path]:
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files += sorted(p.glob("*.npz"))
        elif p.exists():
            files.append(p)
        else:
            raise FileNotFoundError(f"{p} does not exist; give episode .npz files or directories holding them")
    return files


def run(args) -> int:
    from traceany_ros.episode import validate_episode

    try:
        files = episode_files(args.paths)
    except FileNotFoundError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if not files:
        print(f"error: no .npz episode files in {' '.join(args.paths)}", file=sys.stderr)
        return 2
    bad = 0
    for f in files:
        errs = validate_episode(f)
        if errs:
            bad += 1
            for e in errs:
                print(f"{f}: {e}")
        elif not args.quiet:
            print(f"{f}: ok")
    print(f"{len(files) - bad}/{len(files)} episodes valid")
    return 1 if bad else 0
