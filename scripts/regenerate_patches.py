#!/usr/bin/env python3
"""Edit a patch series in a git checkout of upstream, and export it back to ``patches/<base>/``.

    python scripts/regenerate_patches.py init 1.8.9     # checkout at $WORK/1.8.9, series applied
    # ... edit, test, `git commit` (one commit a patch; amend or `git rebase -i upstream`) ...
    python scripts/regenerate_patches.py export 1.8.9   # git format-patch -> patches/1.8.9/

The checkout lives outside this repository, in ``$LIVEKIT_EXT_PATCH_WORK`` (default
``<repo>/../livekit-ext-patch-work``), one directory a base. It is the same tree
``scripts/check_patches.py`` checks: upstream's PyPI release laid out in upstream's repository
layout and committed on branch ``upstream`` (fixed author and date, so the same base always
gives the same commit). ``init`` then makes branch ``livekit-ext`` from it and ``git am``s every
patch of ``patches/<base>/series`` onto it, one commit a patch.

``export`` writes one ``git format-patch`` file per commit of ``upstream..livekit-ext`` (no
numbering in subjects, full blob ids, no signature, zeroed ``From`` line, so unchanged commits
export to unchanged files), removes patches of the directory that are no longer produced, and
rewrites ``series`` in commit order, keeping the ``# feature`` comment of each patch already
listed. A new patch gets ``# FEATURE?``: replace it with the ``livekit_ext`` feature(s) it makes
native, which ``check_patches.py`` then requires ``status()`` to report as ``native``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from check_patches import (
    PATCHES,
    ROOT,
    CheckFailed,
    git,
    log,
    pristine_tree,
    read_series,
    run,
)

BRANCH = "livekit-ext"
FORMAT_PATCH = ("format-patch", "--no-numbered", "--full-index", "--no-signature", "--zero-commit")


def series_name(base: str) -> str:
    """``series``, or ``series.pending`` for a series written but not yet checked in CI."""
    return "series.pending" if (PATCHES / base / "series.pending").is_file() else "series"


def work_dir(base: str) -> Path:
    root = os.environ.get("LIVEKIT_EXT_PATCH_WORK") or ROOT.parent / "livekit-ext-patch-work"
    return Path(root).resolve() / base


def init(base: str, force: bool) -> None:
    checkout = work_dir(base)
    if checkout.exists():
        if not force:
            raise CheckFailed(f"{checkout} exists: export it first, or pass --force to start over")
        shutil.rmtree(checkout)
    pip = [sys.executable, "-m", "pip"]
    pristine_tree(pip, base, checkout / "tree", checkout / "dist")
    tree = checkout / "tree"
    git(tree, "checkout", "-q", "-b", BRANCH)
    if (PATCHES / base / series_name(base)).is_file():
        for entry in read_series(base, series_name(base)):
            # the developer's own identity and dates, not the pristine commit's fixed ones
            run(["git", "am", "-q", "--keep-cr", entry.patch], cwd=tree)
            log(f"applied {entry.patch.name}")
    log(
        f"{tree}: branch {BRANCH} = upstream {base} + patches/{base}/series; commit there, then export"
    )


def export(base: str) -> None:
    tree = work_dir(base) / "tree"
    if not (tree / ".git").is_dir():
        raise CheckFailed(f"no checkout at {tree}: run `init {base}` first")
    if git(tree, "status", "--porcelain", "--untracked-files=no", capture=True).stdout.strip():
        raise CheckFailed(f"{tree} has uncommitted changes: commit them to a patch first")
    out_dir = PATCHES / base
    out_dir.mkdir(parents=True, exist_ok=True)
    series = out_dir / series_name(base)
    comments: dict[str, str] = {}
    header: list[str] = []  # leading comment lines are kept as they are
    if series.is_file():
        for line in series.read_text().splitlines():
            name, sep, comment = line.partition("#")
            if name.strip():
                comments[name.strip()] = comment.strip() if sep else ""
            elif not comments:
                header.append(line)
    staging = tree.parent / "export"
    shutil.rmtree(staging, ignore_errors=True)
    names = git(
        tree, *FORMAT_PATCH, "-o", str(staging), f"upstream..{BRANCH}", capture=True
    ).stdout.split()
    produced = [Path(name).name for name in names]
    if not produced:
        raise CheckFailed(f"branch {BRANCH} has no commit on top of upstream")
    for stale in out_dir.glob("*.patch"):
        if stale.name not in produced:
            stale.unlink()
            log(f"removed {stale.relative_to(ROOT)}")
    width = max(len(name) for name in produced)
    lines = list(header)
    for name in produced:
        shutil.copyfile(staging / name, out_dir / name)
        lines.append(f"{name.ljust(width)}  # {comments.get(name) or 'FEATURE?'}")
        log(f"wrote {(out_dir / name).relative_to(ROOT)}")
    shutil.rmtree(staging)
    series.write_text("\n".join(lines) + "\n")
    log(f"wrote {series.relative_to(ROOT)}; now run scripts/check_patches.py {base}")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("action", choices=("init", "export"))
    parser.add_argument(
        "base", help="livekit-agents release the series is made against, e.g. 1.8.9"
    )
    parser.add_argument("--force", action="store_true", help="init: discard an existing checkout")
    args = parser.parse_args()
    try:
        if args.action == "init":
            init(args.base, args.force)
        else:
            export(args.base)
    except CheckFailed as failure:
        log(f"!! {failure}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
