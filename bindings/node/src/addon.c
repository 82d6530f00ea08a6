/*
 * N-API addon over the sfu C API (include/sfu.h). Plain node_api.h, no C++.
 *
 * Threads:
 * - Every exported function runs on the JS thread of the environment that loaded the
 *   addon. The handle (`server_handle`) is only touched there.
 * - The library calls `on_event` on its notifier thread. It copies the strings into one
 *   heap item and queues it on a napi_threadsafe_function; `call_js` (JS thread) turns
 *   the item into JS values, calls the JS dispatcher and frees the item.
 * - The library's log records (sfu_server_set_log_callback, set right after
 *   sfu_server_new) come on that same notifier thread: `on_log` queues them on the
 *   same tsfn as KIND_LOG items (target in the room slot, message in the json slot,
 *   level in request_id), so JS sees records and events in the library's order.
 *
 * Queue: unbounded (max_queue_size 0), so napi_call_threadsafe_function never blocks
 * and never returns napi_queue_full. A bounded queue cannot work here: close() runs
 * sfu_server_free on the JS thread, which waits for the notifier to deliver what is
 * queued; with a full bounded queue in blocking mode the notifier would wait for the
 * JS thread (deadlock), in non-blocking mode events would be dropped (a request
 * without its response). Memory is bounded by what the library produces.
 *
 * Lifetime of one server:
 *   serverNew:  tsfn created (ref'd: an open server keeps the event loop alive), then
 *               sfu_server_new with userdata = sink_ctx {tsfn}; env cleanup hook added.
 *               The sink_ctx is shared by the library (userdata, until sink_free) and
 *               the tsfn (finalize data): freed by whichever lets go last; the tsfn's
 *               finalizer checks that the library had stopped (tsfnFinalizedEarly).
 *   close:      sfu_server_free (blocks; afterwards no callback runs and the library has
 *               called sink_free(userdata)), then an END item is queued behind every
 *               library item and the tsfn is released: it drains its queue (call_js
 *               with env), finalizes and closes its uv handle, so a closed server no
 *               longer keeps the loop alive.
 *   env teardown (worker exit, process teardown) with the server still open: the
 *               cleanup hook does the same without JS. It runs before the tsfn's own
 *               cleanup hook (hooks run in reverse order of registration and ours is
 *               added after the tsfn is created), so the notifier never pushes into a
 *               deleted tsfn; items left in the queue reach call_js with env == NULL
 *               and are only freed.
 *   GC:         the external's finalizer frees the handle (closing first, as a
 *               safety net: an open server is reachable from the tsfn, so normally
 *               only closed servers are collected).
 */
#include <node_api.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sfu.h"

/* Item kinds beyond sfu_event_kind: "no callback follows" (queued by close()), and a
 * log record. Far from the library's kinds (3 is SFU_EVENT_KIND_HOST_RESPONSE), which
 * grow, so new kinds never clash. */
#define KIND_END 0x10000
#define KIND_LOG 0x10001

/* Counters for tests (leak checks); read with counters(). */
static atomic_uint_fast64_t g_servers_created;
static atomic_uint_fast64_t g_userdata_freed;
static atomic_uint_fast64_t g_tsfn_finalized;
static atomic_uint_fast64_t g_tsfn_finalized_early;
static atomic_uint_fast64_t g_handles_finalized;
static atomic_uint_fast64_t g_items_dropped;

/* The library's userdata (what the notifier thread needs) and the tsfn's finalize
 * data. Two owners: the library (until sink_free, after its last callback) and the
 * tsfn (until tsfn_finalize). */
typedef struct {
  napi_threadsafe_function tsfn;
  atomic_int owners;
  atomic_bool library_stopped;
} sink_ctx;

static void sink_unref(sink_ctx *ctx) {
  if (atomic_fetch_sub(&ctx->owners, 1) == 1) free(ctx);
}

/* One callback, copied: room\0peer\0json\0 in `data`. */
typedef struct {
  int32_t kind;
  uint64_t request_id;
  size_t room_len;
  size_t peer_len;
  size_t json_len;
  char data[];
} event_item;

/* The JS-side handle (a napi_external). JS thread only. */
typedef struct {
  napi_env env;
  sfu_server *server;            /* NULL once freed */
  napi_threadsafe_function tsfn; /* NULL once released */
  bool hook_registered;
} server_handle;

static const char *const RESULT_NAMES[] = {
    "SFU_RESULT_OK",
    "SFU_RESULT_NULL_ARGUMENT",
    "SFU_RESULT_INVALID_UTF8",
    "SFU_RESULT_INVALID_CONFIG",
    "SFU_RESULT_INVALID_ARGUMENT",
    "SFU_RESULT_ROOM_EXISTS",
    "SFU_RESULT_ROOM_NOT_FOUND",
    "SFU_RESULT_PEER_NOT_FOUND",
    "SFU_RESULT_SERVER_CLOSED",
    "SFU_RESULT_IO",
    "SFU_RESULT_INTERNAL",
};

static const char *result_name(sfu_result r) {
  if ((size_t)r < sizeof RESULT_NAMES / sizeof RESULT_NAMES[0]) return RESULT_NAMES[r];
  return "SFU_RESULT_UNKNOWN";
}

/* ---------------------------------------------------------------- errors */

/* Throw Error(message) with .code = code and, if result >= 0, .result = result. */
static void throw_coded(napi_env env, const char *code, const char *message, int result) {
  napi_value msg, code_v, err;
  if (napi_create_string_utf8(env, message, NAPI_AUTO_LENGTH, &msg) != napi_ok ||
      napi_create_string_utf8(env, code, NAPI_AUTO_LENGTH, &code_v) != napi_ok ||
      napi_create_error(env, code_v, msg, &err) != napi_ok) {
    napi_throw_error(env, code, message);
    return;
  }
  if (result >= 0) {
    napi_value r;
    if (napi_create_int32(env, result, &r) == napi_ok) napi_set_named_property(env, err, "result", r);
  }
  napi_throw(env, err);
}

/* A failed sfu_ call: must run right after it, on the same thread (sfu_last_error). */
static void throw_result(napi_env env, sfu_result r) {
  const char *m = sfu_last_error();
  throw_coded(env, result_name(r), (m && *m) ? m : result_name(r), (int)r);
}

static void throw_server_closed(napi_env env) {
  throw_coded(env, "SFU_RESULT_SERVER_CLOSED", "server closed", (int)SFU_RESULT_SERVER_CLOSED);
}

/* A N-API call that should not fail; throws (if nothing is pending yet) and returns
 * false when it did. */
static bool napi_ok_or_throw(napi_env env, napi_status st, const char *what) {
  if (st == napi_ok) return true;
  bool pending = false;
  napi_is_exception_pending(env, &pending);
  if (!pending) {
    const napi_extended_error_info *info = NULL;
    napi_get_last_error_info(env, &info);
    char buf[256];
    snprintf(buf, sizeof buf, "%s failed: %s", what, (info && info->error_message) ? info->error_message : "N-API error");
    napi_throw_error(env, "SFU_NAPI", buf);
  }
  return false;
}

#define CHECK(env, call, ret)                                     \
  do {                                                            \
    if (!napi_ok_or_throw((env), (call), #call)) return (ret);    \
  } while (0)

/* ---------------------------------------------------------------- arguments */

/* A JS string as a malloc'd NUL-terminated UTF-8 string; NULL (and a pending
 * exception) when it is not a string or contains NUL (a C string cannot carry it). */
static char *get_string(napi_env env, napi_value v, const char *name) {
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_string) {
    char buf[128];
    snprintf(buf, sizeof buf, "%s must be a string", name);
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", buf);
    return NULL;
  }
  size_t len = 0;
  if (!napi_ok_or_throw(env, napi_get_value_string_utf8(env, v, NULL, 0, &len), "napi_get_value_string_utf8")) return NULL;
  char *s = malloc(len + 1);
  if (!s) {
    napi_throw_error(env, "ERR_MEMORY", "out of memory");
    return NULL;
  }
  size_t got = 0;
  if (!napi_ok_or_throw(env, napi_get_value_string_utf8(env, v, s, len + 1, &got), "napi_get_value_string_utf8")) {
    free(s);
    return NULL;
  }
  if (memchr(s, '\0', got) != NULL) {
    free(s);
    char buf[128];
    snprintf(buf, sizeof buf, "%s must not contain NUL characters", name);
    napi_throw_type_error(env, "ERR_INVALID_ARG_VALUE", buf);
    return NULL;
  }
  return s;
}

/* Like get_string, but null/undefined -> NULL without an exception (*ok = true). */
static char *get_opt_string(napi_env env, napi_value v, const char *name, bool *ok) {
  napi_valuetype t;
  *ok = false;
  if (napi_typeof(env, v, &t) != napi_ok) return NULL;
  if (t == napi_null || t == napi_undefined) {
    *ok = true;
    return NULL;
  }
  char *s = get_string(env, v, name);
  *ok = s != NULL;
  return s;
}

/* argv[0] as the handle; NULL with an exception if it is not one. */
static server_handle *get_handle(napi_env env, napi_value v) {
  napi_valuetype t;
  void *p = NULL;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_external || napi_get_value_external(env, v, &p) != napi_ok || !p) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "not a server handle");
    return NULL;
  }
  return p;
}

/* An open server of a handle; NULL with SERVER_CLOSED thrown once it was closed. */
static sfu_server *open_server(napi_env env, server_handle *h) {
  if (!h->server) {
    throw_server_closed(env);
    return NULL;
  }
  return h->server;
}

static napi_value get_args(napi_env env, napi_callback_info info, size_t want, napi_value *argv) {
  size_t argc = want;
  for (size_t i = 0; i < want; i++) argv[i] = NULL;
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL), NULL);
  if (argc < want) {
    char buf[64];
    snprintf(buf, sizeof buf, "expected %zu arguments", want);
    napi_throw_type_error(env, "ERR_MISSING_ARGS", buf);
    return NULL;
  }
  napi_value u;
  napi_get_undefined(env, &u);
  return u;
}

/* ---------------------------------------------------------------- callback path */

/* Notifier thread. Must not touch JS; must not block on the JS thread. */
static void queue_item(sink_ctx *ctx, int32_t kind, const char *room_id, const char *peer_name,
                       uint64_t request_id, const char *json, size_t json_len);

static void on_event(void *userdata, sfu_event_kind kind, const char *room_id, const char *peer_name,
                     uint64_t request_id, const char *json, size_t json_len) {
  queue_item(userdata, (int32_t)kind, room_id, peer_name, request_id, json, json_len);
}

/* Notifier thread, like on_event; `userdata` is the same sink_ctx. The library calls
 * it only while the notifier runs, before sink_free: the ctx is alive. */
static void on_log(void *userdata, sfu_log_level level, const char *target, const char *message) {
  queue_item(userdata, KIND_LOG, target, "", (uint64_t)level, message, message ? strlen(message) : 0);
}

static void queue_item(sink_ctx *ctx, int32_t kind, const char *room_id, const char *peer_name,
                       uint64_t request_id, const char *json, size_t json_len) {
  size_t rl = room_id ? strlen(room_id) : 0;
  size_t pl = peer_name ? strlen(peer_name) : 0;
  if (!json) json_len = 0;
  event_item *it = NULL;
  if (rl < SIZE_MAX / 4 && pl < SIZE_MAX / 4 && json_len < SIZE_MAX / 4) {
    it = malloc(sizeof *it + rl + pl + json_len + 3);
  }
  if (!it) {
    atomic_fetch_add(&g_items_dropped, 1);
    fprintf(stderr, "sfu (node): out of memory, dropping a callback (kind %d, request %llu)\n", (int)kind,
            (unsigned long long)request_id);
    return;
  }
  it->kind = kind;
  it->request_id = request_id;
  it->room_len = rl;
  it->peer_len = pl;
  it->json_len = json_len;
  char *p = it->data;
  if (rl) memcpy(p, room_id, rl);
  p[rl] = '\0';
  p += rl + 1;
  if (pl) memcpy(p, peer_name, pl);
  p[pl] = '\0';
  p += pl + 1;
  if (json_len) memcpy(p, json, json_len);
  p[json_len] = '\0';
  /* Unbounded queue: never blocks. napi_closing only if the environment is being torn
   * down (the cleanup hook is then freeing this server): the item is ours to free. */
  if (napi_call_threadsafe_function(ctx->tsfn, it, napi_tsfn_nonblocking) != napi_ok) {
    atomic_fetch_add(&g_items_dropped, 1);
    free(it);
  }
}

/* Library thread (the notifier, at its end): the last callback has returned. */
static void sink_free(void *userdata) {
  sink_ctx *ctx = userdata;
  atomic_store(&ctx->library_stopped, true);
  atomic_fetch_add(&g_userdata_freed, 1);
  sink_unref(ctx);
}

/* JS thread; env == NULL when the tsfn is being torn down: then only free. */
static void call_js(napi_env env, napi_value js_cb, void *context, void *data) {
  event_item *it = data;
  if (env != NULL && js_cb != NULL) {
    const char *room = it->data;
    const char *peer = room + it->room_len + 1;
    const char *json = peer + it->peer_len + 1;
    napi_value argv[5], undef;
    if (napi_get_undefined(env, &undef) == napi_ok &&
        napi_create_int32(env, it->kind, &argv[0]) == napi_ok &&
        napi_create_string_utf8(env, room, it->room_len, &argv[1]) == napi_ok &&
        napi_create_string_utf8(env, peer, it->peer_len, &argv[2]) == napi_ok &&
        /* Request ids come from a JS counter: exact as doubles up to 2^53. */
        napi_create_double(env, (double)it->request_id, &argv[3]) == napi_ok &&
        napi_create_string_utf8(env, json, it->json_len, &argv[4]) == napi_ok) {
      /* An exception thrown by a listener stays pending: Node reports it as an
       * uncaught exception once call_js returns, like any throwing event handler. */
      napi_call_function(env, undef, js_cb, 5, argv, NULL);
    } else {
      atomic_fetch_add(&g_items_dropped, 1);
      bool pending = false;
      napi_is_exception_pending(env, &pending);
      if (!pending) napi_throw_error(env, "SFU_NAPI", "could not convert a library callback to JS values");
    }
  }
  free(it);
}

/* JS thread: the tsfn is gone (drained after release, or environment teardown). */
static void tsfn_finalize(napi_env env, void *data, void *hint) {
  sink_ctx *ctx = data;
  atomic_fetch_add(&g_tsfn_finalized, 1);
  /* The library must have stopped first, or its notifier could still push into this
   * (about to be deleted) tsfn. Counted for the tests; close() and the env cleanup
   * hook guarantee the order. */
  if (!atomic_load(&ctx->library_stopped)) atomic_fetch_add(&g_tsfn_finalized_early, 1);
  sink_unref(ctx);
}

/* ---------------------------------------------------------------- teardown */

static void env_cleanup(void *arg);

/* JS thread. Free the server (blocks until the library stopped), then release the
 * tsfn; with `end`, first queue an END item so JS learns that nothing follows.
 * Idempotent. */
static void handle_close(server_handle *h, bool end) {
  if (h->server) {
    sfu_server *s = h->server;
    h->server = NULL;
    sfu_server_free(s);
  }
  if (h->tsfn) {
    napi_threadsafe_function tsfn = h->tsfn;
    h->tsfn = NULL;
    if (end) {
      event_item *it = calloc(1, sizeof *it + 3);
      if (it) {
        it->kind = KIND_END;
        if (napi_call_threadsafe_function(tsfn, it, napi_tsfn_nonblocking) != napi_ok) free(it);
      }
    }
    /* thread_count 1 -> 0: the tsfn dispatches what is queued, then finalizes and
     * closes its uv handle (so it no longer keeps the loop alive). */
    napi_release_threadsafe_function(tsfn, napi_tsfn_release);
  }
  if (h->hook_registered) {
    h->hook_registered = false;
    napi_remove_env_cleanup_hook(h->env, env_cleanup, h);
  }
}

/* Environment teardown with the server still open. No JS may run here. */
static void env_cleanup(void *arg) {
  server_handle *h = arg;
  h->hook_registered = false; /* Node already removed it before calling us */
  handle_close(h, false);
}

/* GC of the handle (napi finalizers run on the JS thread, outside GC). */
static void handle_finalize(napi_env env, void *data, void *hint) {
  server_handle *h = data;
  handle_close(h, false);
  free(h);
  atomic_fetch_add(&g_handles_finalized, 1);
}

/* ---------------------------------------------------------------- exports */

/* serverNew(configJson: string|null, dispatch: (kind, room, peer, requestId, json) => void) */
static napi_value js_server_new(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (!get_args(env, info, 2, argv)) return NULL;
  napi_valuetype t;
  CHECK(env, napi_typeof(env, argv[1], &t), NULL);
  if (t != napi_function) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "dispatch must be a function");
    return NULL;
  }
  bool ok;
  char *config = get_opt_string(env, argv[0], "config", &ok);
  if (!ok) return NULL;

  server_handle *h = calloc(1, sizeof *h);
  sink_ctx *ctx = calloc(1, sizeof *ctx);
  if (!h || !ctx) {
    free(h);
    free(ctx);
    free(config);
    napi_throw_error(env, "ERR_MEMORY", "out of memory");
    return NULL;
  }
  h->env = env;
  atomic_init(&ctx->owners, 2);
  atomic_init(&ctx->library_stopped, false);

  napi_value name;
  napi_threadsafe_function tsfn = NULL;
  napi_status st = napi_create_string_utf8(env, "sfu.server", NAPI_AUTO_LENGTH, &name);
  if (st == napi_ok) {
    st = napi_create_threadsafe_function(env, argv[1], NULL, name,
                                         0 /* unbounded queue */, 1 /* initial thread count */,
                                         ctx, tsfn_finalize, NULL, call_js, &tsfn);
  }
  if (!napi_ok_or_throw(env, st, "napi_create_threadsafe_function")) {
    free(h);
    free(ctx);
    free(config);
    return NULL;
  }
  ctx->tsfn = tsfn;

  sfu_server *server = NULL;
  sfu_result r = sfu_server_new(config, on_event, ctx, sink_free, &server);
  free(config);
  if (r != SFU_RESULT_OK) {
    throw_result(env, r); /* reads sfu_last_error before any other sfu_ call */
    /* On failure the userdata stays ours and no callback ever ran. */
    /* The library never owned it; the tsfn's finalizer frees it. */
    atomic_store(&ctx->library_stopped, true);
    sink_unref(ctx);
    napi_release_threadsafe_function(tsfn, napi_tsfn_abort);
    free(h);
    return NULL;
  }
  atomic_fetch_add(&g_servers_created, 1);
  h->server = server;
  h->tsfn = tsfn;
  /* Log records through the same queue (no finalizer: the ctx is the event sink's).
   * Fails only for a closed server, which this one is not. */
  sfu_server_set_log_callback(server, on_log, ctx, NULL);

  napi_value ext;
  st = napi_create_external(env, h, handle_finalize, NULL, &ext);
  if (st != napi_ok) {
    handle_close(h, false);
    free(h);
    napi_ok_or_throw(env, st, "napi_create_external");
    return NULL;
  }
  if (napi_add_env_cleanup_hook(env, env_cleanup, h) == napi_ok) h->hook_registered = true;
  return ext;
}

/* createRoom(h, roomId, optionsJson|null) */
static napi_value js_create_room(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  if (!get_args(env, info, 3, argv)) return NULL;
  server_handle *h = get_handle(env, argv[0]);
  if (!h) return NULL;
  char *room = get_string(env, argv[1], "roomId");
  if (!room) return NULL;
  bool ok;
  char *opts = get_opt_string(env, argv[2], "options", &ok);
  if (!ok) {
    free(room);
    return NULL;
  }
  sfu_server *s = open_server(env, h);
  if (s) {
    sfu_result r = sfu_server_create_room(s, room, opts);
    if (r != SFU_RESULT_OK) throw_result(env, r);
  }
  free(room);
  free(opts);
  return NULL;
}

/* closeRoom(h, roomId) */
static napi_value js_close_room(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (!get_args(env, info, 2, argv)) return NULL;
  server_handle *h = get_handle(env, argv[0]);
  if (!h) return NULL;
  char *room = get_string(env, argv[1], "roomId");
  if (!room) return NULL;
  sfu_server *s = open_server(env, h);
  if (s) {
    sfu_result r = sfu_server_close_room(s, room);
    if (r != SFU_RESULT_OK) throw_result(env, r);
  }
  free(room);
  return NULL;
}

/* closePeer(h, roomId, peerName) */
static napi_value js_close_peer(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  if (!get_args(env, info, 3, argv)) return NULL;
  server_handle *h = get_handle(env, argv[0]);
  if (!h) return NULL;
  char *room = get_string(env, argv[1], "roomId");
  char *peer = room ? get_string(env, argv[2], "peerName") : NULL;
  if (room && peer) {
    sfu_server *s = open_server(env, h);
    if (s) {
      sfu_result r = sfu_server_close_peer(s, room, peer);
      if (r != SFU_RESULT_OK) throw_result(env, r);
    }
  }
  free(room);
  free(peer);
  return NULL;
}

/* request(h, roomId, peerName, requestId, json) */
static napi_value js_request(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  if (!get_args(env, info, 5, argv)) return NULL;
  server_handle *h = get_handle(env, argv[0]);
  if (!h) return NULL;
  double idd = 0;
  napi_valuetype t;
  CHECK(env, napi_typeof(env, argv[3], &t), NULL);
  if (t != napi_number || napi_get_value_double(env, argv[3], &idd) != napi_ok || !(idd >= 1) ||
      idd > 9007199254740991.0 || idd != (double)(uint64_t)idd) {
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "requestId must be a positive safe integer");
    return NULL;
  }
  char *room = get_string(env, argv[1], "roomId");
  char *peer = room ? get_string(env, argv[2], "peerName") : NULL;
  char *json = peer ? get_string(env, argv[4], "request") : NULL;
  if (json) {
    sfu_server *s = open_server(env, h);
    if (s) {
      sfu_result r = sfu_server_request(s, room, peer, (uint64_t)idd, json);
      if (r != SFU_RESULT_OK) throw_result(env, r);
    }
  }
  free(room);
  free(peer);
  free(json);
  return NULL;
}

/* notify(h, roomId, peerName, json) */
static napi_value js_notify(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  if (!get_args(env, info, 4, argv)) return NULL;
  server_handle *h = get_handle(env, argv[0]);
  if (!h) return NULL;
  char *room = get_string(env, argv[1], "roomId");
  char *peer = room ? get_string(env, argv[2], "peerName") : NULL;
  char *json = peer ? get_string(env, argv[3], "notification") : NULL;
  if (json) {
    sfu_server *s = open_server(env, h);
    if (s) {
      sfu_result r = sfu_server_notify(s, room, peer, json);
      if (r != SFU_RESULT_OK) throw_result(env, r);
    }
  }
  free(room);
  free(peer);
  free(json);
  return NULL;
}

/* metrics(h) -> string (Prometheus text exposition format). */
static napi_value js_metrics(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (!get_args(env, info, 1, argv)) return NULL;
  server_handle *h = get_handle(env, argv[0]);
  if (!h) return NULL;
  sfu_server *s = open_server(env, h);
  if (!s) return NULL;
  char *text = NULL;
  size_t len = 0;
  sfu_result r = sfu_server_metrics(s, &text, &len);
  if (r != SFU_RESULT_OK) {
    throw_result(env, r);
    return NULL;
  }
  napi_value v;
  napi_status st = napi_create_string_utf8(env, text, len, &v);
  sfu_string_free(text);
  CHECK(env, st, NULL);
  return v;
}

/* ---------------------------------------------------------------- host requests */

/* hostRequest(h, roomId, requestId, json): sfu_server_host_request; the answer comes
 * back through the callback as SFU_EVENT_KIND_HOST_RESPONSE with this request id. */
static napi_value js_host_request(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  if (!get_args(env, info, 4, argv)) return NULL;
  server_handle *h = get_handle(env, argv[0]);
  if (!h) return NULL;
  double idd = 0;
  napi_valuetype t;
  CHECK(env, napi_typeof(env, argv[2], &t), NULL);
  if (t != napi_number || napi_get_value_double(env, argv[2], &idd) != napi_ok || !(idd >= 1) ||
      idd > 9007199254740991.0 || idd != (double)(uint64_t)idd) {
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "requestId must be a positive safe integer");
    return NULL;
  }
  char *room = get_string(env, argv[1], "roomId");
  char *json = room ? get_string(env, argv[3], "request") : NULL;
  if (json) {
    sfu_server *s = open_server(env, h);
    if (s) {
      sfu_result r = sfu_server_host_request(s, room, (uint64_t)idd, json);
      if (r != SFU_RESULT_OK) throw_result(env, r);
    }
  }
  free(room);
  free(json);
  return NULL;
}

/* close(h) -> true if this call closed it. Blocks until the library has stopped. */
static napi_value js_close(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (!get_args(env, info, 1, argv)) return NULL;
  server_handle *h = get_handle(env, argv[0]);
  if (!h) return NULL;
  bool was_open = h->server != NULL;
  handle_close(h, true);
  napi_value r;
  CHECK(env, napi_get_boolean(env, was_open, &r), NULL);
  return r;
}

static bool set_counter(napi_env env, napi_value obj, const char *name, atomic_uint_fast64_t *c) {
  napi_value v;
  return napi_create_double(env, (double)atomic_load(c), &v) == napi_ok &&
         napi_set_named_property(env, obj, name, v) == napi_ok;
}

/* counters() -> { serversCreated, userdataFreed, tsfnFinalized, tsfnFinalizedEarly,
 *                 handlesFinalized, itemsDropped } */
static napi_value js_counters(napi_env env, napi_callback_info info) {
  napi_value obj;
  CHECK(env, napi_create_object(env, &obj), NULL);
  if (!set_counter(env, obj, "serversCreated", &g_servers_created) ||
      !set_counter(env, obj, "userdataFreed", &g_userdata_freed) ||
      !set_counter(env, obj, "tsfnFinalized", &g_tsfn_finalized) ||
      !set_counter(env, obj, "tsfnFinalizedEarly", &g_tsfn_finalized_early) ||
      !set_counter(env, obj, "handlesFinalized", &g_handles_finalized) ||
      !set_counter(env, obj, "itemsDropped", &g_items_dropped)) {
    napi_ok_or_throw(env, napi_generic_failure, "counters");
    return NULL;
  }
  return obj;
}

static napi_value js_version(napi_env env, napi_callback_info info) {
  napi_value v;
  CHECK(env, napi_create_string_utf8(env, sfu_version(), NAPI_AUTO_LENGTH, &v), NULL);
  return v;
}

NAPI_MODULE_INIT() {
  napi_property_descriptor props[] = {
      {"serverNew", NULL, js_server_new, NULL, NULL, NULL, napi_enumerable, NULL},
      {"createRoom", NULL, js_create_room, NULL, NULL, NULL, napi_enumerable, NULL},
      {"closeRoom", NULL, js_close_room, NULL, NULL, NULL, napi_enumerable, NULL},
      {"closePeer", NULL, js_close_peer, NULL, NULL, NULL, napi_enumerable, NULL},
      {"request", NULL, js_request, NULL, NULL, NULL, napi_enumerable, NULL},
      {"notify", NULL, js_notify, NULL, NULL, NULL, napi_enumerable, NULL},
      {"hostRequest", NULL, js_host_request, NULL, NULL, NULL, napi_enumerable, NULL},
      {"close", NULL, js_close, NULL, NULL, NULL, napi_enumerable, NULL},
      {"metrics", NULL, js_metrics, NULL, NULL, NULL, napi_enumerable, NULL},
      {"counters", NULL, js_counters, NULL, NULL, NULL, napi_enumerable, NULL},
      {"version", NULL, js_version, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  if (napi_define_properties(env, exports, sizeof props / sizeof props[0], props) != napi_ok) return NULL;
  return exports;
}
