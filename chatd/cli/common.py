"""What every ``chatd`` sub-command shares: its exit codes, its voice, its output.

Every line for the operator is said in the admin command's language
(:mod:`chatd.admin_voice`); ``--json`` swaps the sentence for one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys

from chatd.admin_voice import ADMIN
from chatd.core.errors import ChatdError

EXIT_PROBLEM, EXIT_USAGE, EXIT_KEYS, EXIT_DATABASE, EXIT_BUSY, EXIT_DAMAGED = 1, 2, 3, 4, 5, 6
EXIT_REWOUND = 7  # the database does not extend its last checkpoint: chatd serve refuses

_ = ADMIN
ngettext = ADMIN.ngettext


def out(args: argparse.Namespace, human: str, data: object) -> None:
    print(json.dumps(data) if getattr(args, "json", False) else human)


def say_error(exc: ChatdError) -> None:
    print(_("chatd: {message}", message=exc.message_in(ADMIN.lang)), file=sys.stderr)
