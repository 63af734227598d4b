"""The pure core: chatd's vocabulary and rules, with no I/O.

Nothing here opens a file or a socket, awaits, or loads a database driver or a crypto
library: errors and ids, the clock, events and records, the conversation, claim and
visibility rules, sessions and the password rule.  Everything else stands on it; it stands
on nothing of chatd's but :mod:`chatd.i18n` (the sentences).  The layout test and the
import-linter contracts keep it so.
"""
