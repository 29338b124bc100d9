"""``gsr-bench list`` and ``gsr-bench plugins``: what is installed, without importing torch."""

from __future__ import annotations

import argparse
import sys

from gsr_bench.cli._shared import Add
from gsr_bench.clitable import table
from gsr_bench.errors import GsrBenchError


def add_parsers(add: Add) -> None:
    p = add(
        "list",
        "list registered methods, datasets or protocols",
        "gsr-bench list methods --family gsr",
    )
    p.add_argument("what", nargs="?", default="all", choices=["methods", "datasets", "protocols", "all"])
    p.add_argument("--family", choices=["gsr", "sr", "regression"], help="only methods of this family")
    p.add_argument("--filter", help="shell-style name pattern, e.g. 'msg*'")
    p.set_defaults(fn=cmd_list)

    p = add(
        "plugins",
        "list installed plugins, their versions, what they registered and failures",
        "gsr-bench plugins",
    )
    p.set_defaults(fn=cmd_plugins)


def cmd_list(args: argparse.Namespace) -> int:
    from gsr_bench.plugins import get_plugin_manager

    what = args.what
    if what in ("methods", "all"):
        reg = get_plugin_manager().methods
        rows = [
            [s.name, s.family, s.version, s.distribution, s.description]
            for s in reg
            if s.name in reg.names(args.filter, args.family)
        ]
        print(table(rows, ["method", "family", "version", "plugin", "description"]))
    if what in ("datasets", "all"):
        reg_d = get_plugin_manager().datasets
        rows = [
            [s.name, s.version, s.distribution, s.description]
            for s in reg_d
            if s.name in reg_d.names(args.filter)
        ]
        print(table(rows, ["dataset", "version", "plugin", "description"]))
    if what in ("protocols", "all"):
        rows = [
            [
                p.name,
                p.version,
                str(p.task.crop),
                str(p.train.steps),
                " ".join(map(str, p.seeds)),
                p.description,
            ]
            for p in get_plugin_manager().list_protocols()
        ]
        print(table(rows, ["protocol", "version", "crop", "steps", "seeds", "description"]))
    failures = get_plugin_manager().failures
    if failures:  # what failed is missing from the lists above: never in silence
        names = ", ".join(sorted({f.plugin for f in failures}))
        print(
            f"warning: {len(failures)} plugin failure(s) ({names}): `gsr-bench plugins` says what failed",
            file=sys.stderr,
        )
    return 0


def cmd_plugins(args: argparse.Namespace) -> int:
    from gsr_bench.plugins import get_plugin_manager
    from gsr_bench.registry import check_factory

    pm = get_plugin_manager()
    rows = [
        [
            p.name,
            p.distribution,
            p.version,
            "; ".join(f"{k}: {', '.join(v)}" for k, v in sorted(p.registered.items())) or "-",
        ]
        for p in pm.plugins.values()
    ]
    print(table(rows, ["plugin", "distribution", "version", "registered"]))
    # a plugin can load and still register a factory that cannot be imported: check them all
    broken = []
    for kind, registry in (("method", pm.methods), ("dataset", pm.datasets)):
        for spec in registry:
            try:
                check_factory(kind, spec)
            except GsrBenchError as exc:
                broken.append(str(exc))
    if pm.failures or broken:
        print(f"\n{len(pm.failures) + len(broken)} plugin failure(s):", file=sys.stderr)
        for f in pm.failures:
            print(f"  {f}", file=sys.stderr)
            if args.verbose and f.traceback:
                print(f.traceback, file=sys.stderr)
        for line in broken:
            print(f"  {line}", file=sys.stderr)
        return 1
    return 0
