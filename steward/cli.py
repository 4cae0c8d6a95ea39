"""The ``steward`` command: one name for every entry point.

    steward simulate scenario=gradual_drift policy=periodic
    steward train experiment=smoke
    steward evaluate policy_path=RUN/policy.json scenario=elec2
    steward ope logs=RUN/logs.parquet
    steward serve policy_path=RUN/policy.json
    steward portfolio predictions=P labels=L
    steward operate backend=simulator

Everything after the command goes to the entry point unchanged: Hydra overrides,
``-m`` sweeps, ``--help``, ``--cfg job``. ``steward NAME`` and ``python -m MODULE`` run
the same code. A command whose extra is not installed stops in one line that names it.
"""

import importlib
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from steward.extras import MissingExtraError, extra_for, require_extras


@dataclass(frozen=True)
class Command:
    """One entry point: its module, a summary line, and the extras it always needs.

    The module's ``run()`` is called (or ``main()`` when it has none), with ``sys.argv``
    set to the command line after the command's name.
    """

    module: str
    summary: str
    extras: tuple[str, ...] = ()


# one line per entry point; a new one is a line here
COMMANDS: dict[str, Command] = {
    "simulate": Command("steward.experiments.simulate", "run a world under a fixed policy"),
    "train": Command("steward.experiments.train", "train the agent", ("train",)),
    "evaluate": Command(
        "steward.experiments.evaluate", "the agent against tuned baselines on held-out seeds"
    ),
    "ope": Command("steward.experiments.ope", "offline evaluation of logged decisions", ("ope",)),
    "serve": Command("steward.agent.server.__main__", "serve a trained policy", ("server",)),
    "portfolio": Command("steward.experiments.portfolio", "portfolios from a service's own logs"),
    "operate": Command(
        "steward.experiments.operate", "operate a model end to end on a registry (MLflow)"
    ),
}


def usage() -> str:
    """The command list."""
    width = max(len(name) for name in COMMANDS)
    lines = ["usage: steward COMMAND [OVERRIDES...]   (steward COMMAND --help for its config)", ""]
    lines += [f"  {name:<{width}}  {c.summary}" for name, c in COMMANDS.items()]
    return "\n".join(lines)


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def main(argv: Sequence[str] | None = None) -> int:
    """Dispatch ``steward COMMAND ARGS...``; returns the exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    name, rest = args[0], args[1:]
    command = COMMANDS.get(name)
    if command is None:
        return _fail(f"no command {name!r}. Fix: use one of {', '.join(COMMANDS)}")
    try:
        require_extras(*command.extras)
        module = importlib.import_module(command.module)
    except MissingExtraError as err:
        return _fail(str(err))
    except ModuleNotFoundError as err:
        extra = extra_for(err.name or "")
        if extra is None:
            raise
        return _fail(str(MissingExtraError(err.name or "", extra)))
    entry: Callable[[], Any] = getattr(module, "run", None) or module.main
    sys.argv = [f"steward {name}", *rest]
    entry()  # Hydra and the entry points exit with their own status on failure
    return 0


if __name__ == "__main__":
    sys.exit(main())
