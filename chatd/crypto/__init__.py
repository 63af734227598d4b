"""Keys, sealing and opening of stored data, password hashing.

Every foreign cryptography exception is translated into a :mod:`chatd.core.errors` error here, so
the rest of chatd never imports ``cryptography``.
"""
