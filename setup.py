"""Build step of chatd: compile the gettext catalogues (``.po`` → ``.mo``).

Everything else is in ``pyproject.toml``.  The compiled ``.mo`` files are written beside their
``.po`` sources, in the source tree, so that an editable install (``pip install -e .``, the
README's commands) finds them as a regular wheel does; they are not committed (``.gitignore``).
A catalogue with a fuzzy or untranslated entry still compiles (English shows through): the
catalogue test (``tests/test_catalogues.py``) is what refuses one.
"""

from __future__ import annotations

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).parent
CATALOGUES = ("chatd/locale", "clients/cli/locale")


def compile_catalogues() -> list[Path]:
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    written = []
    for base in CATALOGUES:
        for po_path in sorted((ROOT / base).glob("*/LC_MESSAGES/*.po")):
            with po_path.open("rb") as po_file:
                catalog = read_po(po_file)
            mo_path = po_path.with_suffix(".mo")
            tmp = mo_path.with_suffix(".mo.tmp")
            with tmp.open("wb") as mo_file:
                write_mo(mo_file, catalog, use_fuzzy=False)
            tmp.replace(mo_path)
            written.append(mo_path)
    return written


class BuildWithCatalogues(build_py):
    def run(self) -> None:
        compile_catalogues()
        super().run()


setup(cmdclass={"build_py": BuildWithCatalogues})
