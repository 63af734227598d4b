"""``send --attach`` and ``get`` against a real server; how messages show their files."""

from __future__ import annotations

import io
import json
from pathlib import Path

from PIL import Image

from clients.cli.attachments import ProgressBar, clean_name, free_path, human_size, label
from clients.cli.directory import Directory
from clients.cli.render import event_line
from tests.attachments import samples
from tests.cli.conftest import CliUser, MakeUser, Terminal
from tests.cli.test_commands import conv_of

EXIF_TAG = 0x0112  # orientation: set in the sample, gone once the server re-encodes


def files(tmp: Path) -> tuple[Path, Path]:
    pdf = tmp / "ordonnance été.pdf"
    pdf.write_bytes(samples.pdf_document("Ordonnance"))
    jpeg = tmp / "plaie.jpg"
    jpeg.write_bytes(samples.jpeg_with_gps())
    assert Image.open(jpeg).getexif()  # the sample does carry metadata
    return pdf, jpeg


def send_json(user: CliUser, *args: str) -> dict[str, object]:
    (reply,) = user.json("send", *args)
    return reply


async def test_send_with_files_then_get(cli_user: MakeUser, tmp_path: Path) -> None:
    alice, bob = await cli_user("Alice"), await cli_user("Bob")
    conv = conv_of(alice, "--to", bob.login, "--subject", "Plaie")
    pdf, jpeg = files(tmp_path)

    sent = alice.run("send", conv, "Voici", "--attach", str(pdf), "--attach", str(jpeg))
    assert sent.returncode == 0, sent.stderr
    assert "[attachment: ordonnance été.pdf — PDF," in sent.stdout
    assert "[attachment: plaie.jpg — JPEG image," in sent.stdout
    assert "%" not in sent.stderr  # no progress bar when stderr is not a terminal
    seq = 2

    (event,) = bob.json("history", conv, "--before", str(seq + 1), "--limit", "1")
    assert event["seq"] == seq and event["text"] == "Voici"
    names = [(a["name"], a["mime"]) for a in event["attachments"]]
    assert names == [("ordonnance été.pdf", "application/pdf"), ("plaie.jpg", "image/jpeg")]
    human = bob.ok("history", conv).stdout
    assert "Alice Test: Voici\n" in human and "[attachment: plaie.jpg — JPEG image, " in human

    out = tmp_path / "bob"
    out.mkdir()
    got = bob.json("get", conv, str(seq), "--out", str(out))
    assert [Path(g["path"]).name for g in got] == ["ordonnance été.pdf", "plaie.jpg"]
    assert (out / "ordonnance été.pdf").read_bytes() == pdf.read_bytes()
    stored = out / "plaie.jpg"
    assert stored.stat().st_size == event["attachments"][1]["size"]
    with Image.open(stored) as image:
        image.load()
        assert image.format == "JPEG" and EXIF_TAG not in image.getexif()
        assert not image.getexif()
    assert b"PhoneMaker" not in stored.read_bytes()

    # Never over an existing file; --index picks one; --thumbnail the image's thumbnail.
    again = bob.ok("get", conv, str(seq), "--out", str(out), "--index", "1")
    assert "ordonnance été (1).pdf" in again.stdout
    assert (out / "ordonnance été (1).pdf").read_bytes() == pdf.read_bytes()
    (thumb,) = bob.json("get", conv, str(seq), "--out", str(out), "--thumbnail")
    with Image.open(thumb["path"]) as image:
        assert image.format == "JPEG" and max(image.size) <= 320
    assert sorted(p.name for p in out.iterdir()) == [
        "ordonnance été (1).pdf",
        "ordonnance été.pdf",
        "plaie.jpg",
        "plaie.thumbnail.jpg",
    ]  # no temporary file left behind

    # Files only, no text; the outbox keeps no trace once delivered.
    only = send_json(alice, conv, "--attach", str(pdf))
    assert only["last_seq"] == 3 and len(only["attachments"]) == 1  # type: ignore[arg-type]
    assert alice.json("outbox") == []

    # In a terminal, the upload draws a progress bar on stderr.
    terminal = Terminal(["send", conv, "--attach", str(jpeg)], alice.env())
    try:
        assert "100%" in terminal.wait("Sent to #")
        assert terminal.wait_exit() == 0
    finally:
        terminal.kill()


async def test_refusals_and_not_found(cli_user: MakeUser, tmp_path: Path) -> None:
    alice, bob, carol = await cli_user("Alice"), await cli_user("Bob"), await cli_user("Carol")
    conv = conv_of(alice, "--to", bob.login, "--subject", "Refus", "Sans fichier")

    svg = tmp_path / "schema.svg"
    svg.write_text('<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>')
    refused = alice.run("send", conv, "Le schéma", "--attach", str(svg))
    assert refused.returncode == 1
    assert "schema.svg: This type of file cannot be sent." in refused.stderr
    refused_json = alice.run("send", conv, "--attach", str(svg), "--json")
    error = json.loads(refused_json.stderr)
    assert (error["error"], error["exit"]) == ("unsupported_file_type", 1)
    assert alice.json("outbox") == []  # refused before the message was queued
    assert len(bob.json("history", conv)) == 2  # created, the first message: nothing sent

    missing = alice.run("send", conv, "x", "--attach", str(tmp_path / "absent.pdf"))
    assert missing.returncode == 2 and "Not a file" in missing.stderr
    assert alice.run("send", conv).returncode == 2  # neither text nor file

    plain = bob.run("get", conv, "2", "--out", str(tmp_path))
    assert plain.returncode == 4
    assert f"The message 2 of #{conv} has no attachments." in plain.stderr
    beyond = bob.run("get", conv, "99", "--out", str(tmp_path))
    assert beyond.returncode == 4 and f"There is no event 99 in #{conv}" in beyond.stderr

    pdf, _ = files(tmp_path)
    alice.ok("send", conv, "--attach", str(pdf))
    stranger = carol.run("get", conv, "3", "--out", str(tmp_path))
    assert stranger.returncode == 4, stranger.stderr
    assert list(tmp_path.glob("*.part")) == []


def test_labels_names_and_progress(tmp_path: Path) -> None:
    pdf = {"id": "1", "name": "cr.pdf", "mime": "application/pdf", "size": 1_234_567}
    assert label(pdf) == "[attachment: cr.pdf — PDF, 1.2 MB]"
    assert human_size(1) == "1 byte" and human_size(48_213) == "48.2 kB"
    who = Directory({"id": 1, "first_name": "Claire", "last_name": "Dupont"})
    event = {"seq": 4, "kind": "message", "sender": 1, "ts": None, "text": "", "attachments": [pdf]}
    assert event_line(event, who) == "[4] --:--   Claire Dupont: [attachment: cr.pdf — PDF, 1.2 MB]"
    event["text"] = "Le CR"
    assert event_line(event, who).split("\n")[1].strip() == "[attachment: cr.pdf — PDF, 1.2 MB]"

    assert clean_name("../../etc/passwd") == "passwd"
    assert clean_name("..\\x\u202egpj.exe") == "xgpj.exe"
    assert clean_name(".bashrc") == "bashrc" and clean_name("../..") == ""
    (tmp_path / "a.pdf").touch()
    (tmp_path / "a (1).pdf").touch()
    assert free_path(tmp_path, "a.pdf").name == "a (2).pdf"
    assert free_path(tmp_path, "noext").name == "noext"

    err = io.StringIO()
    bar = ProgressBar("cr.pdf", 200, err)
    for done in (0, 50, 50, 200):
        bar(done)
    bar.finish()
    assert err.getvalue().count("\r") == 3 and "100%" in err.getvalue()
    assert err.getvalue().endswith("\n")


README_SAMPLE = Path(__file__).parents[2] / "docs" / "samples" / "ordonnance-exemple.pdf"


async def test_the_readme_sample_is_accepted(cli_user: MakeUser, tmp_path: Path) -> None:
    """The README's attachment example names a file that ships with chatd: it uploads, and
    comes back identical."""
    alice, bob = await cli_user("Alice"), await cli_user("Bob")
    conv = conv_of(alice, "--to", bob.login, "--subject", "Ordonnance")
    reply = send_json(alice, conv, "L'ordonnance", "--attach", str(README_SAMPLE))
    (attached,) = reply["attachments"]  # type: ignore[misc]
    assert attached["mime"] == "application/pdf"
    out = tmp_path / "got"
    out.mkdir()
    bob.ok("get", conv, str(reply["last_seq"]), "--out", str(out))
    (saved,) = out.iterdir()
    assert saved.read_bytes() == README_SAMPLE.read_bytes()
