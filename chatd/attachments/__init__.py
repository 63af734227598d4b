"""Attachments: type detection, image cleaning, encrypted chunked storage (design §6, §7).

* :mod:`.sniff` — :func:`~.sniff.classify`: the type from the content alone (with
  :mod:`.pdf`, :mod:`.office` for OOXML, :mod:`.ole2` for legacy Office, :mod:`.images`);
* :mod:`.images` — decode under a pixel limit, re-encode without metadata, thumbnail;
* :mod:`.ingest` — one spooled upload to what is stored; file-name sanitising;
* :mod:`.spool` — size-limited spooling of an upload stream;
* :mod:`.keys` — attachment ids, per-attachment data keys, sealed file names;
* :mod:`.blobstore` — the encrypted files on disk (format in :mod:`chatd.crypto.chunks`).

Nothing here touches the database; the routes and the table come with the gateway.
"""
