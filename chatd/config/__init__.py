"""Typed configuration read from ``CHATD_*`` environment variables.

Every setting has an embedded default so that ``chatd serve`` works on a fresh machine.  A value
that is present but invalid stops the server at start-up with a message naming the variable and
what was expected: a health messenger must not run on a silently-ignored setting.  Unknown
``CHATD_*`` variables are refused too, because a typo (``CHATD_VISIBLE_WINDOWS``) would
otherwise be ignored without a word.

The settings are grouped in sections (:mod:`chatd.config.sections`), each part of the code
seeing its own, but the variables stay one flat ``CHATD_*`` namespace: an operator never
needs to know which section a variable belongs to.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator, Mapping
from typing import Any

from chatd.config.parsers import InvalidValue, parse_bool, written
from chatd.config.sections import (
    DOC,
    PARSE,
    VARIABLE,
    AccountSettings,
    AttachmentSettings,
    ClusterSettings,
    GatewaySettings,
    Section,
    StoreSettings,
    setting,
)
from chatd.core.errors import ConfigError
from chatd.i18n import N_, Sentences, Text

PREFIX = "CHATD_"
# The terminal client's variables live in a namespace of their own, so that a terminal set up
# for chatd-cli (README: ``export CHATD_CLI_CONFIG_DIR=…``) still runs every ``chatd`` command.
# ``CHATD_SERVER`` is the client's older name for ``CHATD_CLI_SERVER``, still honoured by it.
CLIENT_PREFIX = "CHATD_CLI_"
CLIENT_VARIABLES = frozenset({"CHATD_SERVER"})


def is_client_variable(name: str) -> bool:
    """A ``CHATD_*`` name that belongs to chatd-cli, not to the server: ignored here."""
    return name.startswith(CLIENT_PREFIX) or name in CLIENT_VARIABLES


@dataclasses.dataclass(frozen=True)
class Settings:
    """All settings: one field per section, and the few that concern a whole process."""

    store: StoreSettings = dataclasses.field(default_factory=StoreSettings)
    gateway: GatewaySettings = dataclasses.field(default_factory=GatewaySettings)
    accounts: AccountSettings = dataclasses.field(default_factory=AccountSettings)
    attachments: AttachmentSettings = dataclasses.field(default_factory=AttachmentSettings)
    cluster: ClusterSettings = dataclasses.field(default_factory=ClusterSettings)
    debug: bool = setting(
        "CHATD_DEBUG", False, parse_bool, N_("Verbose logging (never logs content).")
    )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Read settings from ``environ`` (default ``os.environ``); raise ConfigError if bad.

        ``overrides`` are typed values named like their variable without ``CHATD_``
        (``visible_window=7`` for ``CHATD_VISIBLE_WINDOW``), whichever section holds them.
        """
        env = os.environ if environ is None else environ
        defaults = cls()
        known = {f.metadata[VARIABLE]: (section, f) for section, f in _every_setting(defaults)}
        chosen: dict[str | None, dict[str, Any]] = {}
        problems: list[Text] = []
        for key, raw in env.items():
            if not key.startswith(PREFIX) or is_client_variable(key):
                continue
            if key not in known:
                problems.append(Text(N_("{variable} is not a chatd setting."), {"variable": key}))
                continue
            section, field = known[key]
            try:
                chosen.setdefault(section, {})[field.name] = field.metadata[PARSE](raw)
            except InvalidValue as exc:
                problems.append(exc.about(key))
        for name, value in overrides.items():
            variable = PREFIX + name.upper()
            if variable not in known:
                raise TypeError(f"{name} is not a chatd setting")
            section, field = known[variable]
            chosen.setdefault(section, {})[field.name] = value
        top = chosen.pop(None, {})
        sections = {
            name: dataclasses.replace(getattr(defaults, name), **values)
            for name, values in chosen.items()
            if name is not None
        }
        settings = dataclasses.replace(defaults, **top, **sections)
        problems += [problem for section in settings.sections() for problem in section.problems()]
        if problems:
            raise ConfigError(
                N_("Invalid configuration: {problems}"), problems=Sentences(tuple(problems))
            )
        return settings

    def sections(self) -> list[Section]:
        """Every section, in the order of the fields."""
        return [value for value in vars(self).values() if isinstance(value, Section)]

    @classmethod
    def describe(cls) -> list[tuple[str, str, str]]:
        """(variable, default, description) for every setting, section by section, for
        ``--help`` and docs; the description is an English message id (``chatd settings``
        says it translated)."""
        return [
            (f.metadata[VARIABLE], written(f.default), f.metadata[DOC])
            for _, f in _every_setting(cls())
        ]


def _every_setting(settings: Settings) -> Iterator[tuple[str | None, dataclasses.Field[Any]]]:
    """(section's field name, field) of every setting in order; None for a top-level one."""
    for field in dataclasses.fields(settings):
        value = getattr(settings, field.name)
        if isinstance(value, Section):
            yield from ((field.name, inner) for inner in dataclasses.fields(value))
        else:
            yield None, field
