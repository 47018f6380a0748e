/* serve_batch.c — see serve_batch.h. One batch: its elements' answers and the merged headers. */
#include "agent/serve/serve_batch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/base/json.h"
#include "agent/base/mem.h"

struct elem {
    struct serve_batch *b;
    int i;
};

struct serve_batch {
    serve_batch_done_fn done;
    void *arg;
    struct serve_batch **owner;        /* cleared before done */
    int n, remaining, starting;
    struct buf *answers;               /* n, in order */
    struct elem *elems;
    int64_t age;                       /* -1: no element had one */
    int stale;                         /* -1: no element said */
    const char *cache;                 /* X-Cache: "pass" when an element's was, else "hit" when one's was */
    char cache_error[256];
};

static void batch_release(struct serve_batch *b)
{
    for (int i = 0; i < b->n; i++) buf_free(&b->answers[i]);
    free(b->answers);
    free(b->elems);
    free(b);
}

static void complete(struct serve_batch *b)
{
    struct serve_reply rep = {.status = 200, .content_type = "application/json; charset=utf-8", .file_fd = -1,
                              .cache_age = b->age, .cache_stale = b->stale, .cache = b->cache};
    snprintf(rep.cache_error, sizeof rep.cache_error, "%s", b->cache_error);
    buf_putc(&rep.body, '[');
    for (int i = 0; i < b->n; i++) {
        if (i) buf_putc(&rep.body, ',');
        buf_append(&rep.body, b->answers[i].p, b->answers[i].len);
    }
    buf_putc(&rep.body, ']');
    if (b->owner) *b->owner = NULL;
    b->done(b->arg, &rep);
    buf_free(&rep.body);
    batch_release(b);
}

/* An element's own error object (it is not a request, so it has no id). */
static void elem_error(struct buf *out, const char *msg)
{
    buf_puts(out, "{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-32600,\"message\":");
    json_write_string(out, msg, strlen(msg));
    buf_puts(out, "}}");
}

static void on_elem(void *arg, const struct serve_reply *rep)
{
    struct elem *e = arg;
    struct serve_batch *b = e->b;
    struct buf *out = &b->answers[e->i];
    if (rep->body.len && rep->body.p[0] == '{') buf_append(out, rep->body.p, rep->body.len);
    else elem_error(out, "Invalid Request: no answer");       /* every JSON-RPC route answers an object */
    if (rep->cache_stale >= 0) b->stale = b->stale == 1 || rep->cache_stale ? 1 : 0;
    if (rep->cache_age > b->age) b->age = rep->cache_age;
    if (rep->cache && (!b->cache || !strcmp(rep->cache, "pass"))) b->cache = rep->cache;   /* static strings */
    if (rep->cache_error[0] && !b->cache_error[0])
        snprintf(b->cache_error, sizeof b->cache_error, "%s", rep->cache_error);
    if (--b->remaining == 0 && !b->starting) complete(b);
}

void serve_batch_start(serve *s, const struct serve_request *rq, const cJSON *doc, serve_batch_done_fn done,
                       void *arg, struct serve_batch **out)
{
    struct serve_batch *b = xcalloc(1, sizeof *b);
    b->done = done;
    b->arg = arg;
    b->owner = out;
    b->n = cJSON_GetArraySize(doc);
    b->remaining = b->n;
    b->starting = 1;
    b->age = -1;
    b->stale = -1;
    b->answers = xcalloc((size_t)b->n + 1, sizeof *b->answers);
    b->elems = xcalloc((size_t)b->n + 1, sizeof *b->elems);
    if (out) *out = b;
    int i = 0;
    for (const cJSON *it = doc->child; it; it = it->next, i++) {
        b->elems[i] = (struct elem){b, i};
        if (!cJSON_IsObject(it)) {
            elem_error(&b->answers[i], "Invalid Request: a batch element must be a JSON-RPC object");
            b->remaining--;
            continue;
        }
        struct buf text = {0};
        json_write_tree(&text, it);
        struct serve_request one = *rq;
        one.body = text.p;
        one.len = text.len;
        serve_handle(s, &one, on_elem, &b->elems[i]);
        buf_free(&text);
    }
    b->starting = 0;
    if (b->remaining == 0) complete(b);
}

void serve_batch_free(struct serve_batch *b)
{
    if (b) batch_release(b);
}
