"""The public contract: every name users import and every flag they type, written out.

The lists below are what the package offered when they were written. Users call these
names and scripts pass these flags, so each must keep working: a name may be added, a
flag may be added, neither may go. The checks are "still there", never "nothing else".
"""

from __future__ import annotations

import argparse
import ast
import importlib
import re
import tomllib
from pathlib import Path

import pytest

import tmapi_async as tm
from tmapi_async.cli import build_parser, main

REPO = Path(tm.__file__).resolve().parent.parent

PUBLIC_NAMES: dict[str, tuple[str, ...]] = {
    "tmapi_async": (
        "Admission", "Answer", "AuthenticationError", "BalanceError", "Category", "Change",
        "Client",
        "DecodeError", "Diff", "DiffInputError", "DiffSummary", "ExportError", "FatalError",
        "Fetched", "Harvest", "HarvestProgress", "HarvestStopped", "InvalidParameterError",
        "Journal", "KnownItems", "Limits", "Listing", "MaxPagesReached", "Metrics", "MockTransport",
        "PageEvent", "PageSource", "RateLimitError", "RedisUnavailableError",
        "RequestBudgetExhausted", "RetryPolicy", "SaleInfo", "ShopCategories", "ShopCheckpoint",
        "ShopItem", "ShopProfile", "ShopRating",
        "ShopItemsPage", "ShopQuery", "ShopReader", "ShopResult", "ShopTakenOver", "Sort",
        "Throttle", "TmapiError", "TokenPool", "TokenUsage", "TransientError", "Transport",
        "TransportError", "UpstreamError", "__version__", "diff", "normalise_image_url",
        "normalise_shop_url",
    ),
    "tmapi_async.export": (
        "CsvSink", "ExportFormat", "ExportJournal", "FORMATS", "JournalError", "JournalSummary",
        "JsonlSink", "ParquetSink", "Sink", "SinkError", "default_state_path", "neutralise",
        "open_sink", "public_base_url", "spool_path",
    ),
    "tmapi_async.testing": (
        "Category", "DEFAULT_FAULT_CODES", "DEFAULT_FAULT_KINDS", "DayChanges", "ENDPOINT",
        "ERROR_MESSAGES", "FaultKind", "Item", "RequestLog", "RequestRecord", "SIMULATOR_KEY",
        "SORTS", "SaleInfo", "SimulatedTmapi", "Simulator", "SimulatorConfig", "create_app",
        "fingerprint", "shop_catalogue", "shop_categories", "shop_name_from_url",
        "sizes_between",
    ),
    "tmapi_async.testing.pytest_plugin": (
        "SimulatorFactory", "tmapi_sim", "tmapi_sim_config", "tmapi_sim_factory", "tmapi_token",
    ),
    "tmapi_async.cli": ("COMMANDS", "ExitCode", "build_parser", "main"),
}  # fmt: skip

# Every flag of every command (``-h``/``--help`` too), and the positional arguments.
COMMAND_FLAGS: dict[str, tuple[str, ...]] = {
    "harvest": (
        "--auth", "--base-url", "--burst", "--cat", "--cat-type", "--concurrency", "--csv-raw",
        "--format", "--help", "--keep", "--log-format", "--max-backlog", "--max-pages",
        "--max-requests", "--metrics-bind", "--metrics-port", "--output", "--page-size",
        "--quiet", "--rate", "--redis", "--redis-outage", "--since", "--sort", "--state",
        "--timeout", "--token", "--verbose", "--workers", "-h", "-o", "-q", "-v",
    ),
    "estimate": (
        "--auth", "--base-url", "--burst", "--cat", "--cat-type", "--concurrency", "--help",
        "--json", "--max-pages", "--page-size", "--quiet", "--rate", "--sort", "--timeout",
        "--token", "--verbose", "--with-profiles", "-h", "-q", "-v",
    ),
    "diff": ("--format", "--help", "--output", "--quiet", "--top", "-h", "-o", "-q"),
    "simulate": (
        "--auth", "--concurrency-limit", "--day", "--day-changes", "--drift", "--fail-shop",
        "--fault-codes", "--fault-rate", "--faults", "--hang-seconds", "--help", "--host",
        "--items-per-shop", "--latency-ms", "--log-max", "--no-prebuild", "--page-size-max",
        "--port", "--quota", "--rate-limit", "--retry-after", "--seed", "--shop", "--shops",
        "--shops-file", "--token", "-h",
    ),
    "demo": (
        "--dir", "--fault-rate", "--format", "--help", "--next-day", "--quiet", "--rate",
        "--shops", "-h", "-q",
    ),
    "worker": (
        "--auth", "--base-url", "--concurrency", "--help", "--log-format", "--metrics-bind",
        "--metrics-port", "--quiet", "--redis", "--redis-outage", "--timeout", "--token",
        "--verbose", "-h", "-q", "-v",
    ),
    "status": ("--help", "--redis", "-h"),
    "dashboard": ("--bind", "--help", "--log-format", "--password", "--port", "--redis", "-h"),
    "pause": ("--help", "--redis", "-h"),
    "resume": ("--help", "--redis", "-h"),
    "cancel": ("--help", "--redis", "-h"),
    "forget": ("--force", "--help", "--redis", "-h"),
}  # fmt: skip

POSITIONALS: dict[str, tuple[str, ...]] = {
    "harvest": ("shops",),
    "estimate": ("shops",),
    "diff": ("old", "new"),
    "pause": ("harvest",),
    "resume": ("harvest",),
    "cancel": ("harvest",),
    "forget": ("harvest",),
}

TOP_LEVEL_FLAGS = ("--help", "--version", "-h")
SCRIPTS = {"tmapi-async": "tmapi_async.cli:main"}


def subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """The parser of each command of ``parser``."""
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def option_strings(parser: argparse.ArgumentParser) -> set[str]:
    """Every flag ``parser`` accepts."""
    return {flag for action in parser._actions for flag in action.option_strings}


def flags_in(text: str) -> set[str]:
    """The flags a help text names (``--cat`` is not found inside ``--cat-type``)."""
    return set(re.findall(r"(?<![\w-])(--?[A-Za-z][\w-]*)", text))


@pytest.mark.parametrize("module", sorted(PUBLIC_NAMES))
def test_every_public_name_of_today_is_still_exported(module: str) -> None:
    """Each listed name is in its module's ``__all__`` and imports as an object."""
    imported = importlib.import_module(module)
    missing = [n for n in PUBLIC_NAMES[module] if n not in getattr(imported, "__all__", ())]
    assert not missing, f"{module} no longer exports {missing}"
    for name in PUBLIC_NAMES[module]:
        assert getattr(imported, name) is not None, f"{module}.{name}"


def test_every_command_of_today_is_still_offered() -> None:
    """Every listed command is still a command, and the bare ``tmapi-async`` still takes
    ``--help`` and ``--version``."""
    commands = subparsers(build_parser())
    assert set(COMMAND_FLAGS) <= set(commands)
    assert option_strings(build_parser()) >= set(TOP_LEVEL_FLAGS)


@pytest.mark.parametrize("command", sorted(set(COMMAND_FLAGS) - {"simulate"}))
def test_every_flag_of_today_is_still_parsed(command: str) -> None:
    """The command's parser still accepts each listed flag and takes the same arguments."""
    parser = subparsers(build_parser())[command]
    missing = set(COMMAND_FLAGS[command]) - option_strings(parser)
    assert not missing, f"tmapi-async {command} lost {sorted(missing)}"
    positionals = tuple(a.dest for a in parser._actions if not a.option_strings)
    assert positionals == POSITIONALS.get(command, ())


@pytest.mark.parametrize("command", sorted(COMMAND_FLAGS))
def test_every_flag_of_today_is_in_the_help(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """``tmapi-async COMMAND --help`` exits 0 and names each listed flag (``simulate``'s
    flags belong to the simulator's own parser: only its help shows them)."""
    with pytest.raises(SystemExit) as stopped:
        main([command, "--help"])
    assert stopped.value.code == 0
    missing = set(COMMAND_FLAGS[command]) - flags_in(capsys.readouterr().out)
    assert not missing, f"tmapi-async {command} --help no longer names {sorted(missing)}"


def test_the_flag_reader_tells_a_flag_from_a_longer_one() -> None:
    """``--cat`` counts only where it stands alone, not as the start of ``--cat-type``."""
    assert flags_in("[--cat-type {1,2}] -o OUT, --output OUT") == {"--cat-type", "-o", "--output"}


def test_the_console_script_is_still_installed() -> None:
    """``pyproject.toml`` still installs ``tmapi-async`` pointing at the CLI's ``main``."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    assert project["project"]["scripts"].items() >= SCRIPTS.items()


def test_public_names_load_on_first_use() -> None:
    """Every name of __all__ resolves, lazily, to the object of its module."""
    from tmapi_async._client import Client

    assert tm.Client is Client
    for name in tm.__all__:
        assert getattr(tm, name) is not None
    with pytest.raises(AttributeError):
        _ = tm.NoSuchName


def test_type_checkers_see_every_lazy_name() -> None:
    """Each lazily loaded name is also imported under TYPE_CHECKING, from the module it
    loads from, so that type checkers and IDEs see the real objects."""
    tree = ast.parse(Path(tm.__file__).read_text(encoding="utf-8"))
    typed: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
            for imp in node.body:
                assert isinstance(imp, ast.ImportFrom)
                typed.update({a.name: f".{imp.module}" for a in imp.names})
    assert typed == tm._SOURCES
    assert set(tm.__all__) == {*tm._SOURCES, "__version__"}
