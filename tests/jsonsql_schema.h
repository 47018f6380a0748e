/* jsonsql_schema.h — the JSONSQL compiler's test tables, one copy for the unit
 * tests (jsonsql_fixture.h) and the fuzz target (fuzz_jsonsql.c): every column
 * type, int64 limits, Cyrillic, a quoted name, a hidden table (_ia_meta). */
#ifndef IA_TEST_JSONSQL_SCHEMA_H
#define IA_TEST_JSONSQL_SCHEMA_H

#define JSONSQL_TEST_SCHEMA \
    "CREATE TABLE subscriber (id INTEGER PRIMARY KEY, username TEXT NOT NULL, disabled BOOLEAN," \
    " balance REAL, created_at TIMESTAMP, info JSON);" \
    "CREATE TABLE terminal (id INTEGER PRIMARY KEY, subscriber_id BIGINT, mac_addr VARCHAR(17)," \
    " model TEXT, active BOOL);" \
    "CREATE TABLE package (id INTEGER PRIMARY KEY, name TEXT, paid BOOLEAN, big INTEGER," \
    " data BLOB, price NUMERIC);" \
    "CREATE TABLE _ia_meta (k TEXT);" \
    "CREATE TABLE \"odd \"\"name\" (v TEXT);" \
    "INSERT INTO subscriber VALUES" \
    " (1, 'alice', 0, 10.5, '2024-01-01 10:00:00', '{\"tv\":true}')," \
    " (2, 'bob', 1, 0.25, '2024-01-02 11:00:00', '[1,2]')," \
    " (3, 'Иван', 0, -3.75, '2024-01-03 12:00:00', NULL)," \
    " (4, 'carol', NULL, 99.5, '2024-01-04 13:00:00', 'not json');" \
    "INSERT INTO terminal VALUES" \
    " (10, 1, 'AA:BB:CC:00:00:01', 'mag250', 1)," \
    " (11, 1, 'AA:BB:CC:00:00:02', 'mag250', 0)," \
    " (12, 2, 'AA:BB:CC:00:00:01', 'tvip', 1)," \
    " (13, NULL, 'DD:EE:FF:00:00:03', 'Тест', 1);" \
    "INSERT INTO package VALUES" \
    " (1, 'sport_100%', 1, 9223372036854775807, x'00ff41', 1.5)," \
    " (2, 'sportX100', 0, -9223372036854775808, NULL, 2);" \
    "INSERT INTO \"odd \"\"name\" VALUES ('v1');"

#endif
