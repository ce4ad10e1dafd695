#!/usr/bin/env python3
"""Edit a patch series in a git checkout of upstream, and export it back to ``patches/<base>/``.

    python scripts/regenerate_patches.py init 1.8.9     # checkout at $WORK/1.8.9, series applied
    # ... edit, test, `git commit` (one commit a patch; amend or `git rebase -i upstream`) ...
    python scripts/regenerate_patches.py export 1.8.9   # git format-patch -> patches/1.8.9/
    python scripts/regenerate_patches.py port 1.9.0 --from 1.8.9   # the series on a new release

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

``port NEW --from BASE`` starts the series of a new release: the checkout of ``NEW`` (as
``init``), then every patch of ``patches/BASE/series`` in one ``git am``. A patch that does not
apply is applied hunk by hunk (``git apply --reject``): the hunks that did not apply are left as
``*.rej`` files and the ``git am`` stops there; fix them, ``git add -A`` and ``git am
--continue`` (which goes on with the next patches). ``patches/NEW/series`` starts as a copy of
BASE's, so ``export NEW`` keeps each patch's feature. What decides whether the port holds is
the extension's own suite: ``check_patches.py NEW`` runs each patch's tests before and after it,
the series' tests, and this project's whole suite and snapshots with the extension disabled.
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


def init(base: str, force: bool, apply: bool = True) -> None:
    checkout = work_dir(base)
    if checkout.exists():
        if not force:
            raise CheckFailed(f"{checkout} exists: export it first, or pass --force to start over")
        shutil.rmtree(checkout)
    pip = [sys.executable, "-m", "pip"]
    pristine_tree(pip, base, checkout / "tree", checkout / "dist")
    tree = checkout / "tree"
    git(tree, "checkout", "-q", "-b", BRANCH)
    if apply and (PATCHES / base / series_name(base)).is_file():
        for entry in read_series(base, series_name(base)):
            # the developer's own identity and dates, not the pristine commit's fixed ones
            run(["git", "am", "-q", "--keep-cr", entry.patch], cwd=tree)
            log(f"applied {entry.patch.name}")
    log(
        f"{tree}: branch {BRANCH} = upstream {base} + patches/{base}/series; commit there, then export"
    )


def port(new: str, source: str, force: bool) -> None:
    """The series of ``source`` applied to a checkout of ``new`` (see the module docstring)."""
    entries = read_series(source, series_name(source))
    init(new, force, apply=False)
    tree = work_dir(new) / "tree"
    target = PATCHES / new
    target.mkdir(parents=True, exist_ok=True)
    if not (target / "series").is_file() and not (target / "series.pending").is_file():
        # written but not checked yet: check_patches.py ignores it until it is renamed
        shutil.copyfile(PATCHES / source / series_name(source), target / "series.pending")
    patches = [str(entry.patch) for entry in entries]
    if run(["git", "am", "-q", "--keep-cr", *patches], cwd=tree, check=False).returncode == 0:
        log(f"{tree}: all {len(patches)} patches of {source} applied to {new}")
        log(f"next: regenerate_patches.py export {new}, then check_patches.py {new}")
        return
    current = git(tree, "am", "--show-current-patch=diff", capture=True, check=False).stdout
    applied = run(
        ["git", "apply", "--reject", "--whitespace=nowarn"],
        cwd=tree,
        check=False,
        stdin=current,
    )
    rejects = sorted(str(p.relative_to(tree)) for p in tree.rglob("*.rej"))
    done = len(git(tree, "rev-list", "upstream..HEAD", capture=True).stdout.split())
    log(
        f"!! {Path(patches[done]).name} does not apply to {new}"
        + (f"; rejected hunks in: {', '.join(rejects)}" if rejects else "")
        + (" (applied what did)" if applied.returncode in (0, 1) else "")
    )
    log(
        f"fix it in {tree}, remove the .rej files, `git add -A && git am --continue` "
        f"(the remaining patches follow), then export {new}"
    )
    raise CheckFailed(f"port of {source} to {new} stopped at {Path(patches[done]).name}")


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
    parser.add_argument("action", choices=("init", "export", "port"))
    parser.add_argument(
        "base", help="livekit-agents release the series is made against, e.g. 1.8.9"
    )
    parser.add_argument(
        "--force", action="store_true", help="init, port: discard an existing checkout"
    )
    parser.add_argument(
        "--from", dest="source", metavar="BASE", help="port: the base whose series is ported"
    )
    args = parser.parse_args()
    try:
        if args.action == "init":
            init(args.base, args.force)
        elif args.action == "port":
            if not args.source:
                parser.error("port needs --from BASE")
            port(args.base, args.source, args.force)
        else:
            export(args.base)
    except CheckFailed as failure:
        log(f"!! {failure}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
