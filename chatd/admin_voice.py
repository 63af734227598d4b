"""The language of the ``chatd`` admin command (:mod:`chatd.cli`).

The terminal's language first (``LC_ALL``, ``LC_MESSAGES``, ``LANG``: the first one set
decides), if chatd speaks it; else ``CHATD_DEFAULT_LANGUAGE`` (the server's default for
people, :attr:`chatd.config.sections.AccountSettings.default_language`); else French.
Decided once, in :func:`chatd.cli.main`, before the parser (and its help) is built.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from chatd.i18n import (
    DEFAULT_LANGUAGE,
    SERVER_DOMAIN,
    SERVER_LOCALE_DIR,
    Language,
    Voice,
    from_environment,
    language,
)

ADMIN = Voice(SERVER_DOMAIN, SERVER_LOCALE_DIR)


def admin_language(environ: Mapping[str, str] | None = None) -> Language:
    env = os.environ if environ is None else environ
    return (
        from_environment(env)
        or language(env.get("CHATD_DEFAULT_LANGUAGE", "").strip())
        or DEFAULT_LANGUAGE
    )
