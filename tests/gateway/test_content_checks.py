"""Content checks through a real server's upload: a ZIP hidden in a PDF out of
``zipfile``'s reach, and a .docx whose VBA project has another part name, are refused and
leave nothing behind; ordinary documents still pass."""

from __future__ import annotations

import io
import zipfile

import httpx
import pytest

from tests.attachments import samples
from tests.gateway.conftest import Admin
from tests.gateway.test_attachments import blob_files, http, spooled, upload, uploaded

__all__ = ["http"]  # the fixture, used here as it is


@pytest.mark.parametrize(
    ("case", "name", "reason_said"),
    [
        ("pdf_zip_65k", "compte-rendu.pdf", "à la fois un PDF et une archive ZIP"),
        ("pdf_zip_2m", "compte-rendu.pdf", "à la fois un PDF et une archive ZIP"),
        ("vba_by_content_type", "courrier.docx", "Les documents contenant des macros"),
        ("vba_by_relationship", "courrier.docx", "Les documents contenant des macros"),
        ("main_type_elsewhere", "courrier.docx", "Ce type de document n'est pas accepté"),
    ],
)
async def test_hidden_content_is_refused_at_upload(
    admin: Admin, http: httpx.AsyncClient, case: str, name: str, reason_said: str
) -> None:
    data = {
        "pdf_zip_65k": samples.pdf_hiding_zip(65 * 1024),
        "pdf_zip_2m": samples.pdf_hiding_zip(2 * 1024 * 1024),
        "vba_by_content_type": samples.docx_hiding_vba(by="content_type"),
        "vba_by_relationship": samples.docx_hiding_vba(by="relationship"),
        "main_type_elsewhere": samples.docx_main_type_elsewhere(),
    }[case]
    if case.startswith("pdf"):
        assert not zipfile.is_zipfile(io.BytesIO(data))  # the gap this closes
    (alice,) = await admin.users(1)  # the server's default language: French
    before = blob_files(admin.server)
    response = await upload(http, alice, data, name)
    assert response.status_code == 415, response.text
    assert response.json()["code"] == "unsupported_file_type"
    assert reason_said in response.json()["message"]
    assert blob_files(admin.server) == before
    assert spooled(admin.server) == []


async def test_documents_with_chance_signatures_still_pass(
    admin: Admin, http: httpx.AsyncClient
) -> None:
    (alice,) = await admin.users(1)
    chance = b"PK\x03\x04" + b"\xff" * 40 + b"\n" + b"%" * 70_000
    assert (await uploaded(http, alice, samples.pdf_document(stream=chance)))["mime"] == (
        "application/pdf"
    )
    with open("docs/samples/ordonnance-exemple.pdf", "rb") as sample:
        assert (await uploaded(http, alice, sample.read(), "ordonnance.pdf"))["kind"] == "pdf"
    assert (await uploaded(http, alice, samples.docx(), "courrier.docx"))["kind"] == "docx"
