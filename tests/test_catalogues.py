"""Every sentence a user reads has its French translation, and no catalogue entry is stale.

Three checks over both domains (``chatd``: server and admin command; ``chatd_cli``: the
terminal client), the same extraction as ``tools/catalogues.py``:

- every marked sentence (``_``, ``N_``, ``ngettext``) is in the French catalogue, translated
  (every plural form), not fuzzy, with the same ``{fields}`` as the English;
- every entry of the catalogue is still in the code (no stale entry);
- no sentence escapes marking: an error raised, or a line printed for a person, with a bare
  string or an f-string as its sentence fails here, naming the file and line.

And the compiled ``.mo`` installed beside each catalogue is the catalogue compiled now (a
``.po`` edited without ``pip install -e .`` would otherwise go unnoticed).
"""

from __future__ import annotations

import ast
import builtins
import io
import re
import string

import pytest
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

from tools.catalogues import DOMAINS, ROOT, Domain, extracted


def fields(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}


@pytest.mark.parametrize("domain", DOMAINS, ids=[d.name for d in DOMAINS])
def test_every_sentence_is_translated_and_nothing_is_stale(domain: Domain) -> None:
    with domain.po_path("fr").open("rb") as src:
        catalog = read_po(src, locale="fr")
    in_code: dict[str, str] = {}
    for where, line, message in extracted(domain):
        msgid = message if isinstance(message, str) else message[0]
        in_code.setdefault(msgid, f"{where}:{line}")

    problems = []
    for msgid, where in sorted(in_code.items(), key=lambda item: item[1]):
        entry = catalog.get(msgid)
        if entry is None:
            problems.append(f"{where}: not in the catalogue: {msgid!r}")
            continue
        translations = entry.string if isinstance(entry.string, tuple) else (entry.string,)
        originals = entry.id if isinstance(entry.id, tuple) else (entry.id,)
        if entry.fuzzy or not all(translations):
            problems.append(f"{where}: no French for {msgid!r}")
            continue
        expected = set().union(*(fields(text) for text in originals))
        for text in translations:
            if fields(text) != expected:
                problems.append(f"{where}: fields {fields(text)} ≠ {expected} in {text!r}")
    stale = [
        m.id
        for m in catalog
        if m.id and (m.id if isinstance(m.id, str) else m.id[0]) not in in_code
    ]
    problems += [f"stale entry (no longer in the code): {msgid!r}" for msgid in stale]
    assert not problems, (
        f"{len(problems)} problem(s) in {domain.po_path('fr').relative_to(ROOT)}"
        " (python tools/catalogues.py updates it):\n" + "\n".join(problems)
    )


@pytest.mark.parametrize("domain", DOMAINS, ids=[d.name for d in DOMAINS])
def test_the_installed_catalogue_is_the_compiled_source(domain: Domain) -> None:
    po_path = domain.po_path("fr")
    with po_path.open("rb") as src:
        catalog = read_po(src, locale="fr")
    compiled = io.BytesIO()
    write_mo(compiled, catalog, use_fuzzy=False)
    mo_path = po_path.with_suffix(".mo")
    assert mo_path.exists(), f"{mo_path} is missing: pip install -e . compiles it"
    assert mo_path.read_bytes() == compiled.getvalue(), (
        f"{mo_path} is older than its .po: pip install -e . compiles it again"
    )


# ----------------------------------------------------------------------------- nothing unmarked

# Calls whose first argument is a sentence for a person: it must be a marked message id
# (``N_("…")``, ``_("…")``, ``ngettext(…)``), a variable holding one, or a call building one —
# never a bare literal or an f-string.
SENTENCE_CALLS = {
    # ``print``/``getpass``: the admin command's lines (chatd/cli/; the server's only print
    # is its machine-read "chatd listening on …" line, a variable).
    "chatd": re.compile(
        r"^(\w+Error|\w+NotFound|\w+Too\w+|CorruptFile|UnsupportedFileType|print|getpass)$"
    ),
    "chatd_cli": re.compile(
        r"^(\w+Error|Cancelled|note|result|say|ask|print|write|ProgressBar|getpass)$"
    ),
}
# Arguments that are not sentences: wire codes, log formats, data.
NOT_SENTENCES = re.compile(r"^([a-z_]+|[\W\d_]*|%.*|\{\}|\s*)$")


def _name(func: ast.expr) -> str:
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return ""


def _bare_sentence(node: ast.expr) -> str | None:
    """The text of ``node`` if it is an unmarked sentence (a literal or an f-string)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return None if NOT_SENTENCES.match(node.value) else node.value
    if isinstance(node, ast.JoinedStr):
        literal = "".join(part.value for part in node.values if isinstance(part, ast.Constant))
        return None if NOT_SENTENCES.match(literal) else literal or "f-string"
    if isinstance(node, ast.BinOp):
        return _bare_sentence(node.left) or _bare_sentence(node.right)
    return None


# Python's own exceptions carry programming errors, never a sentence for a person.
BUILTIN_ERRORS = {name for name in dir(builtins) if name.endswith("Error")} | {
    "ValueError",
    "TypeError",
    "RuntimeError",
    "AssertionError",
    "KeyError",
    "OSError",
}


@pytest.mark.parametrize("domain", DOMAINS, ids=[d.name for d in DOMAINS])
def test_no_sentence_escapes_translation(domain: Domain) -> None:
    pattern = SENTENCE_CALLS[domain.name]
    found = []
    for path in sorted((ROOT / domain.sources).rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            name = _name(node.func) if isinstance(node, ast.Call) else ""
            if not pattern.match(name) or name in BUILTIN_ERRORS:
                continue
            assert isinstance(node, ast.Call)
            if _name(node.func) in ("write", "print") and not _writes_to_a_person(node):
                continue
            for arg in node.args[:1]:
                text = _bare_sentence(arg)
                if text is not None:
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {text[:70]!r}")
    assert not found, "sentences not marked for translation:\n" + "\n".join(found)


def _writes_to_a_person(node: ast.Call) -> bool:
    """``print``/``write`` calls that reach a terminal (not JSON, not a file's content)."""
    source = ast.unparse(node)
    return not ("json" in source or "encode" in source or "dumps" in source)
