"""Project configuration for ``bnfold check``: ``[tool.bnfold]`` in ``pyproject.toml`` or a
``bnfold.toml`` with the same keys at top level.

Discovery walks up from the working directory; in each folder a ``bnfold.toml`` is taken as it
stands and a ``pyproject.toml`` only when it has a ``[tool.bnfold]`` table. The first hit wins and
nothing is merged across folders. Command-line values are laid over the file with
:meth:`Config.override`; every value remembers where it came from (:meth:`Config.source`).

Keys (kebab-case; an unknown key is an error that names it)::

    fail-on = "error"                  # error | warning | info | never
    require-folded = false
    ignore = ["dead-channel"]          # finding codes, or "not-folded"
    [per-path-ignores]                 # glob (relative to the config file's folder) -> codes
    "models/legacy/**" = ["not-folded"]
    [validation]                       # defaults for fuse and validate (flags override)
    atol = 1e-5
    rtol = 1e-4
    provider = "auto"                  # auto | cpu | cuda

Globs work as in ``.gitignore``: one without a ``/`` matches a file or folder name at any depth
(``"*_fp16.onnx"``, ``"legacy"``); one with a ``/`` matches the path relative to the config file's
folder (``"models/legacy/**"``, ``"models/*.onnx"``). ``**`` spans folders, ``*`` and ``?`` stay
inside one; a glob that matches a folder covers everything below it.
"""

from __future__ import annotations

import difflib
import math
import os
import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

from .audit import CHECKS
from .errors import InputError

PYPROJECT = "pyproject.toml"
BNFOLD_TOML = "bnfold.toml"
NOT_FOLDED = "not-folded"
FAIL_ON_CHOICES = ("error", "warning", "info", "never")
PROVIDER_CHOICES = ("auto", "cpu", "cuda")
DEFAULT_SOURCE = "default"
COMMAND_LINE = "command line"

_TOP_KEYS = ("fail-on", "require-folded", "ignore", "per-path-ignores", "validation")
_VALIDATION_KEYS = ("atol", "rtol", "provider")


class ConfigError(InputError):
    """The configuration file or a configuration value is unusable (exit status 2)."""


def known_codes() -> frozenset[str]:
    """Codes that ``ignore`` accepts: every audit finding code plus ``not-folded``."""
    return frozenset(CHECKS) | {NOT_FOLDED}


@dataclass(frozen=True)
class ValidationConfig:
    """``[validation]``: tolerances and provider for fuse/validate (None: per-dtype default)."""

    atol: float | None = None
    rtol: float | None = None
    provider: str = "auto"

    def to_dict(self) -> dict:
        return {"atol": self.atol, "rtol": self.rtol, "provider": self.provider}


@dataclass(frozen=True)
class Config:
    """The effective settings of ``bnfold check`` and where each one came from.

    ``path`` is the file the values were read from (None when none was used); ``root`` is the
    folder per-path-ignore globs are relative to (the file's folder; None: the working directory
    at match time). ``sources`` maps a key (``"fail-on"``, ``"validation.atol"``, ...) to a path
    or ``"command line"``; keys not in it have their default.
    """

    fail_on: str = "error"
    require_folded: bool = False
    ignore: tuple[str, ...] = ()
    per_path_ignores: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    validation: ValidationConfig = field(default_factory=ValidationConfig)
    path: Path | None = None
    root: Path | None = None
    sources: Mapping[str, str] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        _check_fail_on(self.fail_on, "fail-on")
        if not isinstance(self.require_folded, bool):
            raise ConfigError(f"require-folded must be true or false, not {self.require_folded!r}")
        object.__setattr__(self, "ignore", _check_codes(self.ignore, "ignore"))
        object.__setattr__(self, "per_path_ignores", {
            str(glob): _check_codes(codes, f"per-path-ignores.{glob!r}")
            for glob, codes in dict(self.per_path_ignores).items()
        })

    def source(self, key: str) -> str:
        return self.sources.get(key, DEFAULT_SOURCE)

    def override(self, *, fail_on: str | None = None, require_folded: bool | None = None,
                 ignore: Iterable[str] | None = None,
                 per_path_ignores: Mapping[str, Iterable[str]] | None = None,
                 source: str = COMMAND_LINE) -> Config:
        """A copy with the given values (None: keep this one's), marked as coming from ``source``."""
        changes: dict = {}
        sources = dict(self.sources)
        for key, attr, value in (("fail-on", "fail_on", fail_on),
                                 ("require-folded", "require_folded", require_folded),
                                 ("ignore", "ignore", None if ignore is None else
                                  _check_codes(ignore, "--ignore" if source == COMMAND_LINE else "ignore"))):
            if value is not None:
                changes[attr] = value
                sources[key] = source
        if per_path_ignores is not None:
            changes["per_path_ignores"] = dict(per_path_ignores)
            changes["root"] = None  # given directly: relative to the working directory
            sources["per-path-ignores"] = source
        return replace(self, sources=sources, **changes)

    def ignored_codes(self, model_path: str | os.PathLike) -> frozenset[str]:
        """The codes ignored for one model: ``ignore`` plus every matching per-path entry."""
        codes = set(self.ignore)
        if self.per_path_ignores:
            root = self.root if self.root is not None else Path.cwd()
            for glob, extra in self.per_path_ignores.items():
                if path_matches(glob, model_path, root):
                    codes.update(extra)
        return frozenset(codes)

    def to_dict(self) -> dict:
        return {
            "fail-on": self.fail_on,
            "require-folded": self.require_folded,
            "ignore": list(self.ignore),
            "per-path-ignores": {g: list(c) for g, c in self.per_path_ignores.items()},
            "validation": self.validation.to_dict(),
        }

    def describe(self) -> list[tuple[str, object, str]]:
        """``(key, value, source)`` for every setting, in documentation order."""
        rows: list[tuple[str, object, str]] = [
            ("fail-on", self.fail_on, self.source("fail-on")),
            ("require-folded", self.require_folded, self.source("require-folded")),
            ("ignore", list(self.ignore), self.source("ignore")),
            ("per-path-ignores", {g: list(c) for g, c in self.per_path_ignores.items()},
             self.source("per-path-ignores")),
        ]
        for key in _VALIDATION_KEYS:
            rows.append((f"validation.{key}", getattr(self.validation, key),
                         self.source(f"validation.{key}")))
        return rows


def _check_fail_on(value, where: str) -> None:
    if value not in FAIL_ON_CHOICES:
        raise ConfigError(f"{where} must be one of {', '.join(FAIL_ON_CHOICES)}, not {value!r}")


def _check_codes(codes, where: str) -> tuple[str, ...]:
    if isinstance(codes, str) or not isinstance(codes, Iterable):
        raise ConfigError(f"{where} must be a list of codes, not {codes!r}")
    codes = tuple(codes)
    known = known_codes()
    for code in codes:
        if not isinstance(code, str):
            raise ConfigError(f"{where}: codes are strings, not {code!r}")
        if code not in known:
            hint = difflib.get_close_matches(code, sorted(known), n=1)
            raise ConfigError(f"{where}: unknown code {code!r}"
                              + (f" (did you mean {hint[0]!r}?)" if hint else
                                 f" (known: {', '.join(sorted(known))})"))
    return tuple(dict.fromkeys(codes))


# ---------------------------------------------------------------------------------------------
# Reading files


def _unknown_key(key: str, allowed: Iterable[str], where: str) -> ConfigError:
    hint = difflib.get_close_matches(key.replace("_", "-"), list(allowed), n=1, cutoff=0.6)
    more = f" (did you mean {hint[0]!r}?)" if hint else f" (known keys: {', '.join(allowed)})"
    return ConfigError(f"{where}: unknown key {key!r}{more}")


def _read_toml(path: Path) -> dict:
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory, not a config file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: invalid TOML ({exc})") from exc


def _section(path: Path, document: dict) -> tuple[dict | None, str]:
    """The bnfold table of a parsed file and how to name it in messages (None: no section)."""
    if path.name == PYPROJECT:
        tool = document.get("tool", {})
        section = tool.get("bnfold") if isinstance(tool, dict) else None
        if section is not None and not isinstance(section, dict):
            raise ConfigError(f"{path}: [tool.bnfold] must be a table")
        return section, f"{path} [tool.bnfold]"
    if "tool" in document and isinstance(document["tool"], dict) and "bnfold" in document["tool"]:
        raise ConfigError(f"{path}: unknown key 'tool' ({path.name} takes the settings as "
                          "top-level keys, without [tool.bnfold])")
    return document, str(path)


def load_config(path: str | os.PathLike) -> Config:
    """Read one config file: ``pyproject.toml`` (its ``[tool.bnfold]``) or any other TOML file
    with the keys at top level. Raises :class:`ConfigError` for unknown keys and bad values."""
    path = Path(path).absolute()
    section, where = _section(path, _read_toml(path))
    if section is None:
        raise ConfigError(f"{path}: no [tool.bnfold] section")
    return _parse(section, path, where)


def _parse(section: dict, path: Path, where: str) -> Config:
    src = str(path)
    for key in section:
        if key not in _TOP_KEYS:
            raise _unknown_key(key, _TOP_KEYS, where)
    values: dict = {}
    sources: dict[str, str] = {}
    if "fail-on" in section:
        _check_fail_on(section["fail-on"], f"{where}: fail-on")
        values["fail_on"] = section["fail-on"]
        sources["fail-on"] = src
    if "require-folded" in section:
        if not isinstance(section["require-folded"], bool):
            raise ConfigError(f"{where}: require-folded must be true or false, "
                              f"not {section['require-folded']!r}")
        values["require_folded"] = section["require-folded"]
        sources["require-folded"] = src
    if "ignore" in section:
        values["ignore"] = _check_codes(section["ignore"], f"{where}: ignore")
        sources["ignore"] = src
    if "per-path-ignores" in section:
        table = section["per-path-ignores"]
        if not isinstance(table, dict):
            raise ConfigError(f"{where}: per-path-ignores must be a table of glob = [codes]")
        values["per_path_ignores"] = {
            glob: _check_codes(codes, f"{where}: per-path-ignores.{glob!r}")
            for glob, codes in table.items()
        }
        sources["per-path-ignores"] = src
    if "validation" in section:
        table = section["validation"]
        if not isinstance(table, dict):
            raise ConfigError(f"{where}: validation must be a table (atol, rtol, provider)")
        fields: dict = {}
        for key, value in table.items():
            if key not in _VALIDATION_KEYS:
                raise _unknown_key(f"validation.{key}", [f"validation.{k}" for k in _VALIDATION_KEYS],
                                   where)
            if key == "provider":
                if value not in PROVIDER_CHOICES:
                    raise ConfigError(f"{where}: validation.provider must be one of "
                                      f"{', '.join(PROVIDER_CHOICES)}, not {value!r}")
            elif (isinstance(value, bool) or not isinstance(value, (int, float))
                  or not math.isfinite(value) or value < 0):
                raise ConfigError(f"{where}: validation.{key} must be a number >= 0, not {value!r}")
            else:
                value = float(value)
            fields[key] = value
            sources[f"validation.{key}"] = src
        values["validation"] = ValidationConfig(**fields)
    return Config(**values, path=path, root=path.parent, sources=sources)


def find_config(start: str | os.PathLike | None = None) -> Path | None:
    """The config file that applies in ``start`` (default: the working directory), or None.

    Walks up to the filesystem root; in each folder a ``bnfold.toml`` wins over a
    ``pyproject.toml``, which counts only when it has ``[tool.bnfold]``.
    """
    here = Path(start if start is not None else Path.cwd()).absolute()
    for folder in (here, *here.parents):
        candidate = folder / BNFOLD_TOML
        if candidate.is_file():
            return candidate
        candidate = folder / PYPROJECT
        if candidate.is_file():
            section, _ = _section(candidate, _read_toml(candidate))
            if section is not None:
                return candidate
    return None


def resolve_config(config_file: str | os.PathLike | None = None, *, discover: bool = True,
                   start: str | os.PathLike | None = None) -> Config:
    """The configuration before command-line values: ``config_file`` if given, else the
    discovered one (when ``discover``), else the defaults."""
    if config_file is not None:
        return load_config(config_file)
    if discover:
        found = find_config(start)
        if found is not None:
            return load_config(found)
    return Config()


# ---------------------------------------------------------------------------------------------
# Globs


def _glob_regex(pattern: str) -> re.Pattern[str]:
    out, i, n = [], 0, len(pattern)
    while i < n:
        c = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif c == "*":
            out.append("[^/]*")
            i += 1
        elif c == "?":
            out.append("[^/]")
            i += 1
        elif c == "[":
            end = pattern.find("]", i + 2 if pattern[i + 1:i + 2] in ("!", "]") else i + 1)
            if end < 0:
                out.append(re.escape(c))
                i += 1
                continue
            body = pattern[i + 1:end]
            if body.startswith("!"):
                body = "^" + body[1:]
            out.append("[" + body.replace("\\", "\\\\") + "]")
            i = end + 1
        else:
            out.append(re.escape(c))
            i += 1
    return re.compile("".join(out) + r"\Z")


def path_matches(pattern: str, path: str | os.PathLike, root: str | os.PathLike) -> bool:
    """Whether ``path`` (a model file) is covered by ``pattern`` (see the module docstring).

    As in ``.gitignore``: a pattern without a ``/`` (other than a trailing one) matches any one
    component of the path below ``root`` (the file name, or a folder, which covers what is in
    it); one with a ``/`` is anchored at ``root`` and matches the file or a folder above it. A
    trailing ``/`` restricts the pattern to folders.
    """
    pattern = pattern.replace(os.sep, "/")
    folders_only = pattern.endswith("/")
    pattern = pattern.rstrip("/")
    while pattern.startswith("./"):
        pattern = pattern[2:]
    if not pattern:
        return False
    regex = _glob_regex(pattern)
    p = Path(os.path.abspath(path))
    if Path(pattern).is_absolute():
        candidates = [c.as_posix() for c in ([] if folders_only else [p]) + list(p.parents)]
        return any(regex.match(c) for c in candidates)
    try:
        parts = p.relative_to(Path(os.path.abspath(root))).parts
    except ValueError:  # outside the config's folder: only a bare file-name pattern can match
        return "/" not in pattern and not folders_only and bool(regex.match(p.name))
    upto = len(parts) - 1 if folders_only else len(parts)
    if "/" not in pattern:
        return any(regex.match(part) for part in parts[:upto])
    return any(regex.match("/".join(parts[:k])) for k in range(upto, 0, -1))
