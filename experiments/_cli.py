"""Entry-point plumbing shared by every app: config checked before any work, one line per user error, exit 2.

``@hydra_app("config", schema=MAIN)`` replaces ``@hydra.main(...)``:

1. ``data.daily.<ASSET>=...`` (also ``hourly`` / ``funding``), ``data.max_gap_days=...`` and ``overwrite=...``
   need no ``+``: the command line is rewritten to Hydra's add-or-override form (``++key=value``) before Hydra
   parses it, since an asset is known by its files alone and these keys are not listed in every app's YAML.
2. The composed config is checked against the app's :class:`experiments.schema.Schema` BEFORE the task runs (no
   JAX work), ``progress: auto`` becomes ``true`` when stderr is a terminal, and an output directory that
   already holds an earlier run's files is refused unless ``overwrite=true``.
3. A user's mistake (a :class:`experiments.schema.ConfigError`, Hydra's own override / composition errors, the
   project's typed errors: bad data, too little data, bad margin input, book, policy, liquidation, proof or
   account file) prints ONE line ``error: <message>`` to stderr and exits with status 2. A run that failed its
   config check leaves no run directory behind. Anything else is a bug and keeps its traceback.
   ``HYDRA_FULL_ERROR=1`` shows the full traceback of every error.

``run_cli(main)`` gives an argparse app (the aggregators, ``verify``) the same one-line errors.
"""
from __future__ import annotations

import functools
import os
import re
import shutil
import sys
from pathlib import Path
from typing import Any, Callable, NoReturn

from omegaconf import DictConfig, open_dict

from experiments.schema import ConfigError, Schema, check_config

__all__ = ["CONF_DIR", "USAGE_ERROR", "hydra_app", "is_user_error", "one_line", "run_cli"]

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"
#: Exit status of a user's mistake (bad file, bad override, bad account); 1 stays "rejected" / a bug's status.
USAGE_ERROR = 2

# (module, class) of the project's typed errors that describe a user's input, not a bug.
_USER_ERRORS = (
    ("predictive.data", "DataValidationError"),
    ("predictive.base", "InsufficientDataError"),
    ("predictive.combo", "ComboConfigError"),
    ("margin.simulation.calibration", "CalibrationError"),
    ("margin.validation", "MarginInputError"),
    ("margin.simulation.book", "BookError"),
    ("margin.simulation.policies", "PolicyError"),
    ("margin.simulation.liquidation", "LiquidationError"),
    ("zkproofs.errors", "ProofError"),
    ("experiments.prove", "AccountFileError"),
    ("zkproofs.account", "AccountFileError"),
    ("hydra.errors", "HydraException"),
    ("omegaconf.errors", "OmegaConfBaseException"),
)
_HINTS = {"InsufficientDataError": " (move train_end later, or give a longer data file)"}
# Keys a user may set without '+' although an app's YAML does not list them (asset -> file maps, optional switches).
_OPEN_KEYS = re.compile(r"^(data\.(daily|hourly|funding)\.[^=]+|data\.max_gap_days|overwrite)=")
# What Hydra writes into a run directory before the task starts; anything else there is an earlier run's output.
_HYDRA_OWN = (".hydra",)


_FORCED_FULL_ERROR = "_PREDICTIVE_MARGIN_FORCED_HYDRA_FULL_ERROR"


def _full_error() -> bool:
    """True if the USER set HYDRA_FULL_ERROR (entry() sets it too, to receive Hydra's errors, and marks that)."""
    return os.environ.get("HYDRA_FULL_ERROR", "") not in ("", "0") and _FORCED_FULL_ERROR not in os.environ


def _user_error_types() -> tuple[type, ...]:
    types: list[type] = [ConfigError]
    main = sys.modules.get("__main__")
    main_name = getattr(getattr(main, "__spec__", None), "name", None)  # `python -m experiments.prove`
    for module, name in _USER_ERRORS:
        loaded = sys.modules.get(module) or (main if main_name == module else None)
        if loaded is None:
            continue  # not imported yet, so it cannot have raised: do not pay for importing JAX here
        error_type = getattr(loaded, name, None)
        if isinstance(error_type, type):
            types.append(error_type)
    return tuple(types)


def is_user_error(exc: BaseException) -> bool:
    """True for the project's typed input errors (see the module docstring), False for a bug."""
    return isinstance(exc, _user_error_types())


def one_line(exc: BaseException | str) -> str:
    """The message of ``exc`` on one line: Hydra's multi-line texts joined, plus the first line of its cause."""
    text = exc if isinstance(exc, str) else str(exc)
    text = text.split("Config search path")[0]  # Hydra's list of search paths is noise for a typo
    parts = [p.strip() for p in text.splitlines() if p.strip()]
    cause = getattr(exc, "__cause__", None)
    framework = type(exc).__module__.split(".")[0] in ("hydra", "omegaconf")  # their cause holds the reason
    if framework and cause is not None and str(cause).strip():
        first = str(cause).strip().splitlines()[0].strip()
        if first not in parts:
            parts.append(f"({first})")
    hint = "" if isinstance(exc, str) else _HINTS.get(type(exc).__name__, "")
    return " ".join(parts) + hint


def fail(exc: BaseException | str) -> NoReturn:
    """Print ``error: <one line>`` to stderr and exit with :data:`USAGE_ERROR`."""
    print(f"error: {one_line(exc)}", file=sys.stderr, flush=True)
    raise SystemExit(USAGE_ERROR)


def _open_keys(argv: list[str]) -> list[str]:
    return [argv[0]] + [f"++{a}" if _OPEN_KEYS.match(a) else a for a in argv[1:]]


def _earlier_outputs(out_dir: Path) -> list[str]:
    if not out_dir.is_dir():
        return []
    return sorted(p.name for p in out_dir.iterdir() if p.name not in _HYDRA_OWN and p.suffix != ".log")


def _remove_fresh_run_dir(out_dir: Path) -> None:
    """Remove a run directory that holds only what Hydra wrote for this run, and the directories above it (below
    the working directory) that are left empty."""
    if out_dir.is_dir() and not _earlier_outputs(out_dir):
        shutil.rmtree(out_dir, ignore_errors=True)
        parent, cwd = out_dir.parent, Path.cwd().resolve()
        while parent.is_dir() and parent.resolve() != cwd and cwd in parent.resolve().parents \
                and not any(parent.iterdir()):
            parent.rmdir()
            parent = parent.parent


def _prepare(cfg: DictConfig, schema: Schema | None, out_dir: Path | None) -> None:
    if out_dir is not None and not cfg.get("overwrite", False):
        earlier = _earlier_outputs(out_dir)
        if earlier:
            raise ConfigError("hydra.run.dir", f"{out_dir} already holds an earlier run's output ({', '.join(earlier)});"
                                               " choose another directory or set overwrite=true")
    if schema is not None:
        check_config(cfg, schema)
    if "progress" in cfg and cfg.progress in (None, "auto"):
        with open_dict(cfg):
            cfg.progress = bool(sys.stderr.isatty())


def hydra_app(config_name: str, schema: Schema | None = None) -> Callable[[Callable], Callable[[], Any]]:
    """Decorator replacing ``@hydra.main(version_base=None, config_path="../conf", config_name=...)``.

    Args:
        config_name: the config under ``conf/`` (``"config"``, ``"zk/cli/prove"``).
        schema: checked against the composed config before the task runs (None: no check).

    Returns:
        a decorator; the decorated function is called with no arguments (``main()``) and reads ``sys.argv`` as
        Hydra does. User errors exit with status 2 after one line on stderr (see the module docstring).
    """
    import hydra
    from hydra.core.hydra_config import HydraConfig

    def decorate(task: Callable[[DictConfig], Any]) -> Callable[[], Any]:
        @functools.wraps(task)
        def job(cfg: DictConfig) -> Any:
            try:
                out_dir = Path(HydraConfig.get().runtime.output_dir)
            except ValueError:  # HydraConfig not set: called outside a Hydra run
                out_dir = None
            try:
                _prepare(cfg, schema, out_dir)
            except Exception as exc:
                if not is_user_error(exc) or _full_error():
                    raise
                refused_dir = isinstance(exc, ConfigError) and exc.key == "hydra.run.dir"
                if out_dir is not None and not refused_dir:
                    _remove_fresh_run_dir(out_dir)
                fail(exc)
            try:
                return task(cfg)
            except Exception as exc:
                if is_user_error(exc) and not _full_error():
                    if out_dir is not None:
                        _remove_fresh_run_dir(out_dir)  # only if nothing but Hydra's own files was written
                    fail(exc)
                raise

        hydra_main = hydra.main(version_base=None, config_path=str(CONF_DIR), config_name=config_name)(job)

        @functools.wraps(task)
        def entry() -> Any:
            sys.argv = _open_keys(sys.argv)
            if _full_error():
                return hydra_main()
            # Hydra prints its own errors (and exits 1) unless HYDRA_FULL_ERROR is set: let them reach us instead.
            os.environ["HYDRA_FULL_ERROR"] = os.environ[_FORCED_FULL_ERROR] = "1"
            try:
                return hydra_main()
            except Exception as exc:
                if is_user_error(exc):
                    fail(exc)
                raise
            finally:
                os.environ.pop("HYDRA_FULL_ERROR", None)
                os.environ.pop(_FORCED_FULL_ERROR, None)

        entry.task = task  # the undecorated function, for tests and notebooks
        return entry

    return decorate


def run_cli(main: Callable[[], Any]) -> NoReturn:
    """Run an argparse app's ``main()`` and exit: an int result is the exit status; a user error (the project's
    typed errors, a missing or unreadable file) prints one line and exits 2; ``HYDRA_FULL_ERROR=1`` re-raises."""
    try:
        result = main()
    except (ConfigError, OSError, ValueError) as exc:
        # OSError: a missing / unreadable path; ValueError covers the typed errors and malformed JSON
        if _full_error() or not (is_user_error(exc) or isinstance(exc, OSError) or type(exc).__name__ ==
                                 "JSONDecodeError"):
            raise
        fail(exc)
    raise SystemExit(result if isinstance(result, int) else 0)
