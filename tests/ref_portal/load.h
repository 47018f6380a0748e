/* load.h — the reference portal's data: the fake portal's generated tables,
 * copied into PostgreSQL.
 *
 * ref_load() generates exactly what iptv-fake-portal serves for the same options
 * (fakegen_create() into an in-memory SQLite), then for every table but `_fake_*`,
 * in fakegen's order: DROP TABLE IF EXISTS, CREATE TABLE with the declared types
 * mapped INTEGER -> bigint, REAL -> double precision, TEXT -> text, TIMESTAMP ->
 * timestamp, BOOLEAN -> boolean, JSON -> jsonb (the primary key kept), COPY of
 * the rows (doubles at full precision), an index on (updated_at, id) where the
 * table has updated_at (as the fake portal has), ANALYZE. Also max(boolean) and
 * min(boolean) aggregates (bool_or, bool_and), which stock PostgreSQL lacks and
 * protocol.md says the portal answers. The tables and their
 * columns are added to cat, which the translator reads.
 *
 * Ownership: the caller owns pg and cat. Returns 0, or -1 with err naming the
 * table (or step) that failed. */
#ifndef IA_REF_LOAD_H
#define IA_REF_LOAD_H
#include <libpq-fe.h>
#include <stddef.h>

#include "tests/fake_portal/gen.h"
#include "tests/ref_portal/translate.h"

int ref_load(PGconn *pg, const struct fakegen_opts *o, struct ref_catalog *cat, char *err, size_t errlen);

#endif
