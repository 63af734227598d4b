"""Keep the gettext catalogues in step with the code: ``python tools/catalogues.py``.

For each domain it extracts the marked sentences (``_``, ``N_``, ``ngettext``) from the
sources and updates the French catalogue: new sentences arrive with an empty translation,
sentences gone from the code are dropped.  Translate the empty entries, then
``pip install -e .`` compiles the ``.mo`` files;
``tests/test_catalogues.py`` fails while any entry is missing, empty, fuzzy or stale.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import extract, extract_from_dir
from babel.messages.pofile import read_po, write_po

ROOT = Path(__file__).resolve().parents[1]
KEYWORDS = {"_": None, "N_": None, "ngettext": (1, 2)}
LANGUAGES = ("fr",)


@dataclass(frozen=True)
class Domain:
    name: str
    sources: str  # a package directory, relative to the root
    locale: str
    shared: tuple[str, ...] = ()  # files of another package whose sentences it says too

    def po_path(self, lang: str) -> Path:
        return ROOT / self.locale / lang / "LC_MESSAGES" / f"{self.name}.po"


DOMAINS = (
    Domain("chatd", "chatd", "chatd/locale"),
    # argparse's own words: one list, said by both programs.
    Domain("chatd_cli", "clients/cli", "clients/cli/locale", shared=("chatd/argparse_words.py",)),
)


def extracted(domain: Domain) -> Iterator[tuple[str, int, str | tuple[str, ...]]]:
    """(file, line, message id — or (singular, plural)) for every marked sentence."""
    for filename, lineno, message, _comments, _context in extract_from_dir(
        ROOT / domain.sources,
        method_map=[("**.py", "python")],
        keywords=KEYWORDS,
    ):
        yield f"{domain.sources}/{filename}", lineno, message
    for shared in domain.shared:
        with (ROOT / shared).open("rb") as source:
            for lineno, message, _comments, _context in extract(
                "python", source, keywords=KEYWORDS
            ):
                yield shared, lineno, message


def template(domain: Domain) -> Catalog:
    catalog = Catalog(project="chatd", domain=domain.name, charset="utf-8", fuzzy=False)
    for filename, lineno, message in extracted(domain):
        catalog.add(message, locations=[(filename, lineno)])
    return catalog


def update(domain: Domain) -> list[str]:
    """Bring every language's catalogue up to date with the code; what it holds now."""
    pot = template(domain)
    said = []
    for lang in LANGUAGES:
        path = domain.po_path(lang)
        if path.exists():
            with path.open("rb") as src:
                catalog = read_po(src, locale=lang)
            # A stable header: a run that changes no sentence changes no byte (the compiled
            # catalogue, header included, stays the installed one).
            pot.creation_date = catalog.creation_date
        else:
            catalog = Catalog(
                locale=lang,
                domain=domain.name,
                project="chatd",
                fuzzy=False,
                header_comment=f"# {lang} catalogue of {domain.name}: python tools/catalogues.py",
            )
            # French as gettext writes it: singular for 0 and 1 (CLDR's third form, for
            # round millions, only adds an entry to fill for nothing).
            catalog._num_plurals, catalog._plural_expr = 2, "(n > 1)"  # type: ignore[assignment]
        catalog.update(pot, no_fuzzy_matching=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as out:
            write_po(
                out,
                catalog,
                width=100,
                sort_output=True,
                ignore_obsolete=True,
                include_lineno=False,
            )
        empty = sum(1 for m in catalog if m.id and not all(_forms(m.string)))
        said.append(f"{path.relative_to(ROOT)}: {len(catalog)} entries, {empty} to translate")
    return said


def _forms(string: str | tuple[str, ...] | list[str] | None) -> tuple[str, ...]:
    if isinstance(string, (tuple, list)):
        return tuple(string)
    return (string or "",)


if __name__ == "__main__":
    for domain in DOMAINS:
        for line in update(domain):
            print(line)
    sys.exit(0)
