/* serve_batch.h — internal to serve*.c: a JSON-RPC 2.0 batch (an array body)
 * on /api/jsonsql/ or /api/jsonrpc/.
 *
 * Each element is answered as it would be alone: an object goes through
 * serve_handle() with the batch's path and headers (so a write parks on the
 * write hook like any other), anything else gets its own -32600 error object.
 * The answer is the array of the elements' answers in their order, sent once
 * every element is answered. Its headers merge the elements': X-Cache-Stale
 * true when any element's is, X-Cache-Age the largest, X-Cache-Error the first,
 * X-Cache "pass" when an element went to the portal, else "hit" when one was cached;
 * X-Write-Queued is not sent (the answers are the portal's shape either way).
 * The caller refuses an empty batch and one over SERVE_MAX_BATCH elements.
 * Ownership: serve_batch_start keeps no pointer into rq or doc after it returns;
 * the batch frees itself after calling done, or in serve_batch_free. */
#ifndef IA_SERVE_BATCH_H
#define IA_SERVE_BATCH_H
#include <cjson/cJSON.h>

#include "agent/serve/serve.h"

#define SERVE_MAX_BATCH 100

struct serve_batch;

/* rep: the merged answer, valid during the call only (body: the JSON array). */
typedef void (*serve_batch_done_fn)(void *arg, const struct serve_reply *rep);

/* Start answering the elements of array doc. done is called exactly once, maybe
 * before this returns; *out is the batch while it waits (NULL once done). */
void serve_batch_start(serve *s, const struct serve_request *rq, const cJSON *doc, serve_batch_done_fn done,
                       void *arg, struct serve_batch **out);
/* serve_free: forget a batch still waiting (its elements are orphaned: they never answer it). */
void serve_batch_free(struct serve_batch *b);

#endif
