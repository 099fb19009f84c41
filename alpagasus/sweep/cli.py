"""``alpagasus-report DIR``: the sweep report of a finished multirun directory, on demand."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from omegaconf import OmegaConf

from alpagasus.sweep.report import summary, write_report
from alpagasus.sweep.results import RESULT
from alpagasus.sweep.wandb_logging import log_to_wandb, wandb_group


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="alpagasus-report",
        description="Write sweep.csv, sweep.md and the figure of a finished multirun directory "
                    "(e.g. outputs/multiruns/2026-11-21/15-30-00) from its jobs' result.json.")
    parser.add_argument("sweep_dir", type=Path)
    parser.add_argument("--wandb", action="store_true",
                        help="also log the table and figure to W&B, in the sweep's group (the "
                             "callback already did at the end of the sweep)")
    args = parser.parse_args(argv)
    if not args.sweep_dir.is_dir():
        parser.error(f"{args.sweep_dir}: no such directory")
    report = write_report(args.sweep_dir)
    if not report.results:
        print(f"{args.sweep_dir}: no job of a multirun found (no {RESULT}, no .hydra/)",
              file=sys.stderr)
        return 1
    print(summary(report))
    if args.wandb:
        conf = OmegaConf.load(args.sweep_dir / "multirun.yaml")
        log_to_wandb(report, conf.logger, conf.paths.wandb,
                     wandb_group(OmegaConf.select(conf, "hydra.sweep.dir") or args.sweep_dir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
