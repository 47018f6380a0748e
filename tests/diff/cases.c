/* cases.c — the hand-written cases (diff.h: dcases_get): one per known or
 * suspected difference between the agent and a PostgreSQL-backed portal,
 * each named so a report says which promise broke. Statements are JSON text;
 * $M0 $M1 $M2 (media ids: the lowest, a middle, the highest sampled) and $P0 (a
 * media parent_id) are replaced by values sampled from the portal, so the int64
 * cases use ids beyond 2^53 that exist. */
#include "tests/diff/diff.h"

#include <stdio.h>
#include <string.h>

struct dcase {
    const char *name;
    enum dorder ord;
    int raw;                  /* a whole request body (a batch) */
    const char *json;
};

#define SEL(d) "{\"jsonrpc\":\"2.0\",\"id\":" #d ",\"method\":\"select\",\"params\":"

static const struct dcase CASES[] = {
    /* booleans stay booleans through aggregates and functions */
    {"bool_max_min", ORD_FULL, 0,
     "{\"data\":[{\"function\":\"max\",\"args\":\"is_tv\",\"as\":\"mx\"},{\"function\":\"min\",\"args\":\"is_tv\",\"as\":\"mn\"}],"
     "\"from\":\"tv_channel\"}"},
    {"bool_max_group", ORD_FULL, 0,
     "{\"data\":[\"category_id\",{\"function\":\"max\",\"args\":\"is_radio\",\"as\":\"r\"},"
     "{\"function\":\"min\",\"args\":\"is_tv\",\"as\":\"t\"}],\"from\":\"tv_channel\",\"group_by\":\"category_id\","
     "\"order_by\":\"category_id\",\"limit\":100}"},
    {"bool_coalesce", ORD_FULL, 0,
     "{\"data\":[\"id\",{\"function\":\"coalesce\",\"args\":[\"paid\",false],\"as\":\"p\"}],\"from\":\"package\","
     "\"order_by\":\"id\"}"},
    {"bool_is_true", ORD_FULL, 0,
     "{\"data\":[\"id\",\"is_tv\",\"is_radio\"],\"from\":\"tv_channel\",\"where\":{\"is\":[\"is_radio\",true]},"
     "\"order_by\":\"id\",\"limit\":20}"},
    /* having */
    {"having", ORD_FULL, 0,
     "{\"data\":[\"age_rating\",{\"function\":\"count\",\"args\":[\"*\"],\"as\":\"n\"}],\"from\":\"tv_program\","
     "\"group_by\":\"age_rating\",\"having\":{\"gt\":[{\"function\":\"count\",\"args\":[\"*\"]},100]},"
     "\"order_by\":\"age_rating\"}"},
    /* not over a bare boolean column */
    {"not_bare_bool", ORD_FULL, 0,
     "{\"data\":[\"id\",\"enabled\"],\"from\":\"media\",\"where\":{\"not\":\"enabled\"},\"order_by\":\"id\",\"limit\":20}"},
    {"not_list_bool", ORD_FULL, 0,
     "{\"data\":[\"id\",\"active\"],\"from\":\"terminal\",\"where\":{\"not\":[\"active\"]},\"order_by\":\"id\",\"limit\":20}"},
    {"where_bare_bool", ORD_FULL, 0,
     "{\"data\":[\"id\",\"is_live\"],\"from\":\"tv_program\",\"where\":\"is_live\",\"order_by\":\"id\",\"limit\":20}"},
    /* the forms of in */
    {"in_flat", ORD_FULL, 0,
     "{\"data\":[\"id\",\"name\"],\"from\":\"tv_channel\",\"where\":{\"in\":[\"id\",11,47,50]},\"order_by\":\"id\"}"},
    {"in_list", ORD_FULL, 0,
     "{\"data\":[\"id\",\"name\"],\"from\":\"tv_channel\",\"where\":{\"in\":[\"id\",[11,47,50]]},\"order_by\":\"id\"}"},
    {"in_select", ORD_FULL, 0,
     "{\"data\":[\"id\",\"category_id\"],\"from\":\"tv_channel\",\"where\":{\"in\":[\"category_id\",{\"select\":"
     "{\"data\":[\"id\"],\"from\":\"tv_category\",\"where\":{\"lt\":[\"id\",4]}}}]},\"order_by\":\"id\",\"limit\":30}"},
    {"in_select_in_list", ORD_FULL, 0,
     "{\"data\":[\"id\",\"category_id\"],\"from\":\"tv_channel\",\"where\":{\"in\":[\"category_id\",[{\"select\":"
     "{\"data\":[\"id\"],\"from\":\"tv_category\",\"where\":{\"lt\":[\"id\",4]}}}]]},\"order_by\":\"id\",\"limit\":30}"},
    {"in_values", ORD_FULL, 0,
     "{\"data\":[\"id\",\"name\"],\"from\":\"tv_category\",\"where\":{\"in\":[\"id\",{\"values\":[[1],[2],[7]]}]},"
     "\"order_by\":\"id\"}"},
    /* no limit over a table bigger than the page cap: the portal's first page */
    {"no_limit_page_cap", ORD_FULL, 0, "{\"data\":[\"id\"],\"from\":\"tv_program\",\"order_by\":\"id\"}"},
    {"no_limit_page_cap_unordered", ORD_COUNT, 0, "{\"data\":[\"id\",\"title\"],\"from\":\"tv_program\"}"},
    {"no_limit_small", ORD_NONE, 0, "{\"data\":[\"id\",\"name\",\"paid\"],\"from\":\"package\"}"},
    /* NULLs: last ascending, first descending */
    {"nulls_asc", ORD_FULL, 0,
     "{\"data\":[\"id\",\"category_id\"],\"from\":\"tv_channel\",\"where\":{\"or\":[{\"is\":[\"category_id\",null]},"
     "{\"lt\":[\"category_id\",3]}]},\"order_by\":[\"category_id\",\"id\"],\"limit\":400}"},
    {"nulls_desc", ORD_FULL, 0,
     "{\"data\":[\"id\",\"category_id\"],\"from\":\"tv_channel\",\"where\":{\"or\":[{\"is\":[\"category_id\",null]},"
     "{\"lt\":[\"category_id\",3]}]},\"order_by\":[\"category_id desc\",\"id\"],\"limit\":400}"},
    {"nulls_group", ORD_FULL, 0,
     "{\"data\":[\"age_rating\",{\"function\":\"count\",\"args\":[\"*\"],\"as\":\"n\"}],\"from\":\"media\","
     "\"group_by\":\"age_rating\",\"order_by\":\"age_rating\"}"},
    /* PostgreSQL regular expressions */
    {"regexp_digit_g", ORD_FULL, 0,
     "{\"data\":[\"id\",{\"function\":\"regexp_replace\",\"args\":[\"title\",\"\\\\d+\",\"#\",\"g\"],\"as\":\"r\"}],"
     "\"from\":\"media\",\"order_by\":\"id\",\"limit\":40}"},
    {"regexp_word_g", ORD_FULL, 0,
     "{\"data\":[\"id\",{\"function\":\"regexp_replace\",\"args\":[\"name\",\"\\\\w+\",\"W\",\"g\"],\"as\":\"r\"}],"
     "\"from\":\"tv_channel\",\"order_by\":\"id\",\"limit\":40}"},
    {"regexp_space_g", ORD_FULL, 0,
     "{\"data\":[\"id\",{\"function\":\"regexp_replace\",\"args\":[\"description\",\"\\\\s+\",\"_\",\"g\"],\"as\":\"r\"}],"
     "\"from\":\"tv_program\",\"order_by\":\"id\",\"limit\":40}"},
    {"regexp_first_only", ORD_FULL, 0,
     "{\"data\":[\"id\",{\"function\":\"regexp_replace\",\"args\":[\"name\",\"[аеиоу]\",\"+\"],\"as\":\"r\"}],"
     "\"from\":\"tv_channel\",\"order_by\":\"id\",\"limit\":40}"},
    {"regexp_flag_i", ORD_FULL, 0,
     "{\"data\":[\"id\",{\"function\":\"regexp_replace\",\"args\":[\"name\",\"р\",\"R\",\"gi\"],\"as\":\"r\"}],"
     "\"from\":\"tv_channel\",\"order_by\":\"id\",\"limit\":40}"},
    {"regexp_backref", ORD_FULL, 0,
     "{\"data\":[\"id\",{\"function\":\"regexp_replace\",\"args\":[\"model\",\"^(\\\\S+) (\\\\S+)\",\"\\\\2 \\\\1\"],"
     "\"as\":\"r\"}],\"from\":\"terminal\",\"order_by\":\"id\",\"limit\":40}"},
    /* forms real portals accept */
    {"data_string", ORD_FULL, 0, "{\"data\":\"id\",\"from\":\"package\",\"order_by\":\"id\"}"},
    {"from_object", ORD_FULL, 0,
     "{\"data\":[\"p.id\",\"p.name\"],\"from\":{\"table\":\"package\",\"as\":\"p\"},\"order_by\":\"p.id\"}"},
    {"join_left", ORD_FULL, 0,
     "{\"data\":[{\"c\":\"id\"},{\"k\":\"name\"}],\"from\":[{\"table\":\"tv_channel\",\"as\":\"c\"},{\"join\":\"tv_category\","
     "\"as\":\"k\",\"join_type\":\"left\",\"on\":{\"eq\":[{\"c\":\"category_id\"},{\"k\":\"id\"}]}}],"
     "\"where\":{\"or\":[{\"is\":[{\"c\":\"category_id\"},null]},{\"lt\":[{\"c\":\"category_id\"},3]}]},"
     "\"order_by\":\"c.id\",\"limit\":400}"},
    {"join_type_key", ORD_FULL, 0,
     "{\"data\":[{\"c\":\"id\"},{\"k\":\"name\"}],\"from\":[{\"table\":\"tv_channel\",\"as\":\"c\"},{\"join\":\"tv_category\","
     "\"as\":\"k\",\"type\":\"left\",\"on\":{\"eq\":[{\"c\":\"category_id\"},{\"k\":\"id\"}]}}],"
     "\"where\":{\"is\":[{\"c\":\"category_id\"},null]},\"order_by\":\"c.id\",\"limit\":50}"},
    {"join_cross", ORD_FULL, 0,
     "{\"data\":[{\"p\":\"id\"},{\"k\":\"id\"}],\"from\":[{\"table\":\"package\",\"as\":\"p\"},{\"join\":\"tv_category\","
     "\"as\":\"k\",\"join_type\":\"cross\"}],\"where\":{\"lt\":[{\"k\":\"id\"},4]},\"order_by\":[\"p.id\",\"k.id\"],"
     "\"limit\":100}"},
    {"func_key_concat", ORD_FULL, 0,
     "{\"data\":[\"id\",{\"concat\":[\"name\",\" / \",\"id\"],\"as\":\"x\"}],\"from\":\"package\",\"order_by\":\"id\"}"},
    {"func_key_lower", ORD_FULL, 0,
     "{\"data\":[\"id\",{\"lower\":\"name\",\"as\":\"x\"}],\"from\":\"package\",\"order_by\":\"id\"}"},
    {"func_key_count_distinct", ORD_FULL, 0,
     "{\"data\":[{\"count\":\"model\",\"distinct\":true,\"as\":\"n\"}],\"from\":\"terminal\"}"},
    {"func_nullif", ORD_FULL, 0,
     "{\"data\":[\"id\",{\"function\":\"nullif\",\"args\":[\"sort_order\",1],\"as\":\"x\"}],"
     "\"from\":\"tv_category\",\"order_by\":\"id\"}"},
    {"func_concat", ORD_FULL, 0,
     "{\"data\":[\"id\",{\"function\":\"concat\",\"args\":[\"name\",\" #\",\"sort_order\"],\"as\":\"x\"}],"
     "\"from\":\"tv_category\",\"order_by\":\"id\"}"},
    {"alias_star", ORD_FULL, 0,
     "{\"data\":[\"p.*\"],\"from\":[{\"table\":\"package\",\"as\":\"p\"}],\"order_by\":\"p.id\"}"},
    {"batch", ORD_FULL, 1,
     "[" SEL(1) "{\"data\":[\"id\",\"name\"],\"from\":\"package\",\"order_by\":\"id\",\"limit\":3}},"
     SEL(2) "{\"data\":[{\"function\":\"count\",\"args\":[\"*\"]}],\"from\":\"tv_category\"}}]"},
    /* timestamps against date-only strings; their output form */
    {"ts_date_only_gt", ORD_FULL, 0,
     "{\"data\":[{\"function\":\"count\",\"args\":[\"*\"],\"as\":\"n\"}],\"from\":\"tv_program\","
     "\"where\":{\"gt\":[\"updated_at\",\"2025-06-01\"]}}"},
    {"ts_date_only_lte", ORD_FULL, 0,
     "{\"data\":[\"id\",\"created_at\"],\"from\":\"subscriber\",\"where\":{\"lte\":[\"created_at\",\"2019-01-20\"]},"
     "\"order_by\":\"id\",\"limit\":50}"},
    {"ts_eq_date_only", ORD_FULL, 0,
     "{\"data\":[{\"function\":\"count\",\"args\":[\"*\"],\"as\":\"n\"}],\"from\":\"tv_program\","
     "\"where\":{\"eq\":[\"updated_at\",\"2025-06-01\"]}}"},
    {"ts_micros_output", ORD_FULL, 0,
     "{\"data\":[\"id\",\"available_from\",\"available_to\"],\"from\":\"media\",\"order_by\":\"id\",\"limit\":60}"},
    {"ts_max", ORD_FULL, 0,
     "{\"data\":[{\"function\":\"max\",\"args\":\"updated_at\",\"as\":\"mx\"},{\"function\":\"min\",\"args\":\"start\","
     "\"as\":\"mn\"}],\"from\":\"tv_program\"}"},
    /* int64 beyond 2^53, in where and in results */
    {"int64_eq", ORD_FULL, 0,
     "{\"data\":[\"id\",\"parent_id\"],\"from\":\"media\",\"where\":{\"eq\":[\"id\",$M2]}}"},
    {"int64_in", ORD_FULL, 0,
     "{\"data\":[\"id\"],\"from\":\"media\",\"where\":{\"in\":[\"id\",[$M0,$M1,$M2]]},\"order_by\":\"id\"}"},
    {"int64_gt_parent", ORD_FULL, 0,
     "{\"data\":[\"id\",\"parent_id\"],\"from\":\"media\",\"where\":{\"gte\":[\"parent_id\",$P0]},\"order_by\":\"id\","
     "\"limit\":30}"},
    {"int64_results", ORD_FULL, 0,
     "{\"data\":[\"id\",\"parent_id\"],\"from\":\"media\",\"where\":{\"is_not\":[\"parent_id\",null]},"
     "\"order_by\":\"id\",\"offset\":100,\"limit\":30}"},
    {"int64_max", ORD_FULL, 0,
     "{\"data\":[{\"function\":\"max\",\"args\":\"id\",\"as\":\"mx\"},{\"function\":\"min\",\"args\":\"parent_id\","
     "\"as\":\"mn\"}],\"from\":\"media\"}"},
    /* Cyrillic text */
    {"cyrillic_lower_upper", ORD_FULL, 0,
     "{\"data\":[\"id\",{\"function\":\"lower\",\"args\":\"name\",\"as\":\"l\"},{\"function\":\"upper\",\"args\":\"name\","
     "\"as\":\"u\"}],\"from\":\"tv_channel\",\"order_by\":\"id\",\"limit\":40}"},
    {"cyrillic_ilike", ORD_FULL, 0,
     "{\"data\":[{\"function\":\"count\",\"args\":[\"*\"],\"as\":\"n\"}],\"from\":\"tv_program\","
     "\"where\":{\"ilike\":[\"title\",\"%НОВОСТИ%\"]}}"},
    {"cyrillic_yo_upper", ORD_FULL, 0,
     "{\"data\":[\"id\",{\"function\":\"upper\",\"args\":\"title\",\"as\":\"u\"}],\"from\":\"tv_program\","
     "\"where\":{\"like\":[\"title\",\"%ё%\"]},\"order_by\":\"id\",\"limit\":20}"},
    {"like_backslash", ORD_FULL, 0,
     "{\"data\":[\"id\",\"name\"],\"from\":\"tv_channel\",\"where\":{\"like\":[\"name\",\"Back\\\\%\"]},"
     "\"order_by\":\"id\",\"limit\":20}"},
    /* text order follows the portal's collation */
    {"text_order", ORD_FULL, 0, "{\"data\":[\"id\",\"name\"],\"from\":\"tv_category\",\"order_by\":[\"name\",\"id\"]}"},
    {"text_max_min", ORD_FULL, 0,
     "{\"data\":[{\"function\":\"max\",\"args\":\"name\",\"as\":\"mx\"},{\"function\":\"min\",\"args\":\"name\","
     "\"as\":\"mn\"}],\"from\":\"tv_channel\"}"},
    /* arithmetic and aggregates' types */
    {"avg_int", ORD_FULL, 0,
     "{\"data\":[{\"function\":\"avg\",\"args\":\"duration\",\"as\":\"a\"}],\"from\":\"tv_program\"}"},
    {"sum_real", ORD_FULL, 0,
     "{\"data\":[{\"function\":\"sum\",\"args\":\"balance\",\"as\":\"s\"}],\"from\":\"subscriber\"}"},
    {"count_distinct", ORD_FULL, 0,
     "{\"data\":[{\"function\":\"count\",\"args\":{\"function\":\"distinct\",\"args\":\"model\"},\"as\":\"n\"}],"
     "\"from\":\"terminal\"}"},
    {"div_int", ORD_FULL, 0,
     "{\"data\":[\"id\",{\"div\":[\"duration\",7],\"as\":\"d\"},{\"mod\":[\"duration\",7],\"as\":\"m\"}],"
     "\"from\":\"tv_program\",\"order_by\":\"id\",\"limit\":20}"},
    {"json_columns", ORD_FULL, 0,
     "{\"data\":[\"id\",\"languages\",\"params\"],\"from\":\"tv_channel\",\"order_by\":\"id\",\"limit\":20}"},
    {"offset", ORD_FULL, 0,
     "{\"data\":[\"id\",\"username\"],\"from\":\"subscriber\",\"order_by\":\"id\",\"limit\":5,\"offset\":10}"},
};

#define NCASES ((int)(sizeof CASES / sizeof CASES[0]))

int dcases_count(void) { return NCASES; }

/* The sampled literal for a placeholder; "0" when the portal gave none. */
static const char *placeholder(const struct dsamples *s, char kind, char which)
{
    int t = diff_table_index("media");
    const struct dtab *tab = &diff_tables()[t];
    const char *col = kind == 'M' ? "id" : "parent_id";
    for (int k = 0; k < tab->ncols; k++) {
        int n = s->n[t][k];
        if (strcmp(tab->cols[k].name, col) != 0 || n == 0) continue;
        int i = which == '0' ? 0 : which == '1' ? n / 4 : n - 1;
        return s->v[t][k][i].lit;
    }
    return "0";
}

void dcases_get(int i, const struct dsamples *s, struct dstmt *st)
{
    const struct dcase *c = &CASES[i];
    snprintf(st->name, sizeof st->name, "case/%s", c->name);
    st->raw = c->raw;
    st->ord = c->ord;
    buf_reset(&st->params);
    for (const char *p = c->json; *p; p++) {
        if (p[0] == '$' && (p[1] == 'M' || p[1] == 'P') && p[2] >= '0' && p[2] <= '2') {
            buf_puts(&st->params, placeholder(s, p[1], p[2]));
            p += 2;
        } else {
            buf_putc(&st->params, *p);
        }
    }
}
