"""Attachments: type detection, image cleaning, encrypted chunked storage (design §6, §7).

* :mod:`.sniff` — :func:`~.sniff.classify`: the type from the content alone (with
  :mod:`.pdf`, :mod:`.office` for OOXML, :mod:`.ole2` for legacy Office, :mod:`.images`);
* :mod:`.images` — decode under a pixel limit, re-encode without metadata, thumbnail;
* :mod:`.ingest` — one spooled upload to what is stored; file-name sanitising;
* :mod:`.spool` — size-limited spooling of an upload stream;
* :mod:`.blobstore` — the encrypted files on disk (format in :mod:`chatd.crypto.chunks`).

Nothing here touches the database: the attachment service (:mod:`chatd.services.attachments`)
writes a file here before the store records its row.  Attachment ids, per-attachment data keys
and sealed file names are in :mod:`chatd.crypto.attachment_keys`.
"""
