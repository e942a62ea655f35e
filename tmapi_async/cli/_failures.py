"""The failures file beside the export, and how a failed shop is described."""

from __future__ import annotations

from pathlib import Path
from typing import IO, TYPE_CHECKING

from ._output import clip, secrets

if TYPE_CHECKING:
    from .._shop import ShopResult
    from ._shoplist import ShopList

__all__ = ["Failures", "describe", "failures_path"]


def failures_path(output: Path) -> Path:
    """Where the failures of the last run are listed (a valid SHOPS file)."""
    return output.with_name(output.name + ".failures.txt")


class Failures:
    """The failures file: written as failures come, itself a SHOPS file (each failed
    shop's line as it was given, preceded by a ``#`` comment giving the reason)."""

    def __init__(self, output: Path) -> None:
        self.path = failures_path(output)
        self.output = output
        self.count = 0
        self._file: IO[str] | None = None

    def add(self, line: str, reason: str) -> None:
        """List ``line`` (kept whole, so the file stays a SHOPS list) with ``reason``."""
        if self._file is None:
            self._file = open(self.path, "w", encoding="utf-8")  # noqa: SIM115
            self._file.write(
                f"# shops tmapi-async could not harvest completely into {self.output.name};\n"
                "# this file is a SHOPS list: harvest it again once the cause is fixed\n"
            )
        reason = " ".join(secrets.scrub(reason).splitlines())  # one comment line
        self._file.write(f"# {reason}\n{secrets.scrub(line)}\n")
        self._file.flush()
        self.count += 1

    def close(self) -> None:
        """Close the file; remove the one of an earlier run if nothing failed now."""
        if self._file is not None:
            self._file.close()
        elif self.path.exists():
            self.path.unlink()


def describe(result: ShopResult, shops: ShopList) -> tuple[str, str]:
    """(what to name the shop by, why it failed) for a failed or partial shop; input
    quoted in either is cut to a readable length."""
    from .._errors import InvalidParameterError, quote_input

    error = result.error
    reason = clip(str(error)) if error is not None else "unknown error"
    lineno = shops.invalid.get(result.shop_url)
    if lineno is not None and isinstance(error, InvalidParameterError) and error.code is None:
        return f"line {lineno} {quote_input(result.shop_url)}", f"invalid shop URL: {reason}"
    if result.status == "partial":
        return result.shop_url, (
            f"partial, {result.pages} pages and {result.item_count} items read: {reason}"
        )
    return result.shop_url, reason
