"""The collation of columns that hold opaque keys (content hashes, idempotency keys)."""

# Byte order: a key has no language to sort by, and a language's collation makes every
# comparison in the key's unique index dearer (on PostgreSQL with ICU's en-US, indexing an
# import's 100k idempotency keys took 675 ms instead of 375 ms). SQLite has BINARY built in;
# migration 0023 gives PostgreSQL a collation of that name ("C" is not one on SQLite).
BYTE_ORDER = "binary"
