"""Errors a person can read: one base class, exit codes, and how the command line shows them.

Every error alpagasus raises on purpose derives from :class:`AlpagasusError`. Its message
says what is wrong (the file, the line or index, the field), its ``hint`` how to fix it, and
its ``exit_code`` how the process ends: 1 for something to fix and rerun, 2 for a stop (the
budget is reached, the provider refused a request), 0 for an expected stop (a dry run,
batch jobs still running). :func:`run_cli` (what ``main()`` calls) prints them as one or a
few lines on stderr without a traceback; ``HYDRA_FULL_ERROR=1`` or ``ALPAGASUS_VERBOSE=1``
re-raises them for the full traceback.

Also here: the ``alpagasus.run_id`` resolver that makes Hydra run folders unique.
"""

from __future__ import annotations

import logging
import os
import secrets
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from omegaconf import OmegaConf
from omegaconf.errors import InterpolationResolutionError, MissingMandatoryValue

log = logging.getLogger("alpagasus")
T = TypeVar("T")

VERBOSE_ENV = ("HYDRA_FULL_ERROR", "ALPAGASUS_VERBOSE")
INTERRUPTED_EXIT = 130  # the shell's code for a process ended by SIGINT


class AlpagasusError(Exception):
    """An error with a message a person can act on; see the module docstring."""

    exit_code: int = 1
    hint: str = ""
    reported: bool = False  # already shown to the user (no traceback needed)

    def __init__(self, message: str = "", *, hint: str | None = None):
        super().__init__(message)
        if hint is not None:
            self.hint = hint


class ConfigError(AlpagasusError):
    """A config value that composes but cannot work (a missing ``???`` value, say)."""


def exit_code_for(exc: BaseException | None) -> int:
    """The process exit code a job ending with ``exc`` (None: success) should have."""
    if exc is None:
        return 0
    if isinstance(exc, AlpagasusError):
        return exc.exit_code
    if isinstance(exc, KeyboardInterrupt):
        return INTERRUPTED_EXIT
    if isinstance(exc, SystemExit):
        return exc.code if isinstance(exc.code, int) else 1
    return 1


def verbose() -> bool:
    return any(os.environ.get(name, "").strip() not in ("", "0") for name in VERBOSE_ENV)


def describe(exc: AlpagasusError) -> str:
    """The lines shown for an error: what is wrong, then how to fix it."""
    kind = "stopped" if exc.exit_code == 2 else "error"
    lines = [f"alpagasus: {kind}: {exc}"]
    if exc.hint:
        lines.append(f"  fix: {exc.hint}")
    return "\n".join(lines)


def config_error(exc: MissingMandatoryValue | InterpolationResolutionError) -> ConfigError:
    key = getattr(exc, "full_key", None) or "?"
    if isinstance(exc, MissingMandatoryValue):
        return ConfigError(f"config value '{key}' is required but not set (???)",
                           hint=f"give it on the command line: {key}=VALUE")
    return ConfigError(f"config value '{key}' could not be resolved: {getattr(exc, 'msg', exc)}",
                       hint="set the environment variable or the key it refers to")


def run_cli(run: Callable[[Any], T], cfg: Any, *,
            started: Callable[[], bool] | None = None) -> T | None:
    """Run one job the way the command line does: errors as a few lines and an exit code.

    ``started()`` says whether the failed job had started any work; the caller knows how
    (the entry point: whether a W&B run was opened), this module does not. A job refused
    before that (bad input or config) leaves nothing under the output root: the Hydra run
    folder it got is removed as well, since it holds only the composed config and a log of
    the message just printed. Without ``started`` the folder is kept.
    """
    try:
        return run(cfg)
    except KeyboardInterrupt:
        if verbose():
            raise
        _say(interrupted_line(cfg))
        sys.exit(INTERRUPTED_EXIT)
    except (MissingMandatoryValue, InterpolationResolutionError) as e:
        if verbose():
            raise
        error: AlpagasusError = config_error(e)
    except AlpagasusError as e:
        if e.exit_code == 0:  # an expected stop (dry run, batch pending): the log says what next
            log.info("%s", e)
            return None
        if verbose():
            raise
        error = e
    _say(describe(error))
    if _in_multirun():
        # A sweep goes on past a failed job (alpagasus/callbacks.py) and its report lists the
        # job as failed from its result.json; the sweep's exit status says a job failed.
        error.reported = True
        raise error
    if started is not None and not started():
        remove_hydra_output(cfg)
    sys.exit(error.exit_code)


def _in_multirun() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def interrupted_line(cfg: Any) -> str:
    paths = cfg.paths
    return (f"alpagasus: interrupted. Kept: every finished artifact in {paths.artifacts}, every "
            f"judge reply in {paths.judge_cache}, training checkpoints in .partial-* folders; "
            "run the same command again to resume.")


def _say(text: str) -> None:
    """To the terminal (stderr) and to the job's log file, without a console duplicate."""
    print(text, file=sys.stderr, flush=True)
    record = log.makeRecord(log.name, logging.ERROR, __file__, 0, text, None, None)
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)


def remove_hydra_output(cfg: Any) -> list[Path]:
    """Delete what Hydra wrote for this job (its config copies, its log), then empty parents.

    Only files Hydra itself creates are removed, and a folder only once empty, so a run
    folder pointed at an existing directory (hydra.run.dir=.) loses nothing else.
    """
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized():  # called outside @hydra.main (tests, notebooks)
        return []
    hc = HydraConfig.get()
    out = Path(hc.runtime.output_dir)
    removed = []
    candidates = [out / f"{hc.job.name}.log"]
    # A refused job (bad input or config: nothing started) leaves no result.json either;
    # a job that fails once started keeps it, and the sweep report shows it as failed.
    candidates.append(out / "result.json")
    if hc.output_subdir:
        candidates += [out / hc.output_subdir / n for n in ("config.yaml", "hydra.yaml",
                                                           "overrides.yaml")]
    for f in candidates:
        if f.is_file():
            f.unlink()
            removed.append(f)
    if hc.mode == RunMode.MULTIRUN:  # the sweep's multirun.yaml, once no other job is there
        sweep = Path(hc.sweep.dir)
        others = [p for p in sweep.iterdir() if p.name != "multirun.yaml"] if sweep.is_dir() else []
        if all(_only_empty_dirs(p) for p in others) and (sweep / "multirun.yaml").is_file():
            (sweep / "multirun.yaml").unlink()
            removed.append(sweep / "multirun.yaml")
    # Folders only inside the output root, innermost first, and only once empty.
    root = Path(cfg.paths.root).resolve()
    folder = (out / hc.output_subdir) if hc.output_subdir else out
    folder = folder.resolve()
    while root in folder.parents and _rmdir_if_empty(folder):
        folder = folder.parent
    return removed


def _only_empty_dirs(p: Path) -> bool:
    return p.is_dir() and all(_only_empty_dirs(c) for c in p.iterdir())


def _rmdir_if_empty(d: Path) -> bool:
    try:
        d.rmdir()
        return True
    except OSError:  # not empty, or gone
        return not d.exists()


# --- unique run folders ------------------------------------------------------------------------

# One value per process: Hydra resolves the run (or sweep) folder several times per job and
# must get the same folder each time, while two jobs started in the same second differ.
_RUN_ID = f"{os.getpid():x}{secrets.token_hex(2)}"


def output_root(root: str) -> str:
    """``paths.root`` as Hydra's run folder needs it: an existing file there is refused in
    one line (exit 1) before Hydra tries to make folders inside it and prints a traceback.
    SystemExit, because Hydra and OmegaConf wrap any Exception raised by a resolver."""
    path = Path(str(root)).expanduser()
    existing = next(p for p in (path, *path.parents) if p.exists())  # "/" always exists
    if not existing.is_dir():
        _say(f"error: paths.root={root}: the output root is a file ({existing}), not a "
             "folder. Point paths.root at a folder (it is created if missing).")
        sys.exit(1)
    return str(root)


def register_resolvers() -> None:
    if not OmegaConf.has_resolver("alpagasus.run_id"):
        OmegaConf.register_new_resolver("alpagasus.run_id", lambda: _RUN_ID)
    if not OmegaConf.has_resolver("alpagasus.output_root"):
        OmegaConf.register_new_resolver("alpagasus.output_root", output_root)
