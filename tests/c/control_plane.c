/*
 * The C ABI driven like a host drives it: misuse results, then two peers going
 * through the mediasoup v2 control plane (queryRoom, join, createTransport,
 * createProducer, enableConsumer, pause/resume/close, leave, room close), then
 * sfu_server_free's guarantees (userdata_free exactly once, no callback after).
 * The event recorder, checks and waits are tests/c/test_host.h's.
 *
 * Build (tests/c_programs.rs does this):
 *   gcc -std=c11 -Wall -Wextra -Werror -fsanitize=address,undefined \
 *       -Iinclude tests/c/control_plane.c -Ltarget/release -lsfu \
 *       -Wl,-rpath,$PWD/target/release -lpthread -lm
 *
 * Exits 1 with "FAIL ..." on the first failed check; the last line on success is
 * "N passed, 0 failed".
 */

#define _POSIX_C_SOURCE 200809L

#include "test_host.h"

#include <math.h>

/* Every wait is bounded by this. */
#define WAIT_MS 10000

/* ------------------------------------------------------------------------- */
/* A minimal JSON reader/writer (a test helper, not a general parser).         */

typedef enum { J_NULL, J_BOOL, J_NUM, J_STR, J_ARR, J_OBJ } jtype;

typedef struct jv {
    jtype t;
    bool b;
    double n;
    char *s;        /* J_STR */
    struct jv **v;  /* J_ARR items / J_OBJ values */
    char **k;       /* J_OBJ keys */
    size_t len, cap;
} jv;

typedef struct {
    const char *p;
    int depth;
} jparser;

static void jfree(jv *v) {
    if (!v) return;
    for (size_t i = 0; i < v->len; i++) {
        jfree(v->v[i]);
        if (v->k) free(v->k[i]);
    }
    free(v->v);
    free(v->k);
    free(v->s);
    free(v);
}

static jv *jnew(jtype t) {
    jv *v = calloc(1, sizeof *v);
    if (!v) abort();
    v->t = t;
    return v;
}

static void jpush(jv *a, char *key, jv *item) {
    if (a->len == a->cap) {
        a->cap = a->cap ? a->cap * 2 : 4;
        a->v = realloc(a->v, a->cap * sizeof *a->v);
        if (!a->v) abort();
        if (a->t == J_OBJ) {
            a->k = realloc(a->k, a->cap * sizeof *a->k);
            if (!a->k) abort();
        }
    }
    a->v[a->len] = item;
    if (a->t == J_OBJ) a->k[a->len] = key;
    a->len++;
}

static void jws(jparser *ps) {
    while (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r') ps->p++;
}

static void utf8_put(char **o, unsigned cp) {
    unsigned char *u = (unsigned char *)*o;
    if (cp < 0x80) {
        *u++ = (unsigned char)cp;
    } else if (cp < 0x800) {
        *u++ = (unsigned char)(0xC0 | (cp >> 6));
        *u++ = (unsigned char)(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        *u++ = (unsigned char)(0xE0 | (cp >> 12));
        *u++ = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        *u++ = (unsigned char)(0x80 | (cp & 0x3F));
    } else {
        *u++ = (unsigned char)(0xF0 | (cp >> 18));
        *u++ = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
        *u++ = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        *u++ = (unsigned char)(0x80 | (cp & 0x3F));
    }
    *o = (char *)u;
}

static int hex4(const char *p, unsigned *out) {
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f') v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') v |= (unsigned)(c - 'A' + 10);
        else return 0;
    }
    *out = v;
    return 1;
}

/* Parses a string literal at ps->p (which points at the opening quote). */
static char *jparse_str(jparser *ps) {
    const char *p = ps->p + 1;
    size_t n = 0;
    while (p[n] && p[n] != '"') n += (p[n] == '\\' && p[n + 1]) ? 2 : 1;
    if (p[n] != '"') return NULL;
    char *out = malloc(n * 2 + 1), *o = out; /* \uXXXX never grows beyond 4 bytes */
    if (!out) abort();
    const char *end = p + n;
    while (p < end) {
        if (*p != '\\') {
            *o++ = *p++;
            continue;
        }
        p++;
        switch (*p) {
        case '"': *o++ = '"'; p++; break;
        case '\\': *o++ = '\\'; p++; break;
        case '/': *o++ = '/'; p++; break;
        case 'b': *o++ = '\b'; p++; break;
        case 'f': *o++ = '\f'; p++; break;
        case 'n': *o++ = '\n'; p++; break;
        case 'r': *o++ = '\r'; p++; break;
        case 't': *o++ = '\t'; p++; break;
        case 'u': {
            unsigned cp, lo;
            if (end - p < 5 || !hex4(p + 1, &cp)) goto bad;
            p += 5;
            if (cp >= 0xD800 && cp < 0xDC00 && end - p >= 6 && p[0] == '\\' && p[1] == 'u' &&
                hex4(p + 2, &lo) && lo >= 0xDC00 && lo < 0xE000) {
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                p += 6;
            }
            utf8_put(&o, cp);
            break;
        }
        default: goto bad;
        }
    }
    *o = 0;
    ps->p = end + 1;
    return out;
bad:
    free(out);
    return NULL;
}

static jv *jparse_value(jparser *ps) {
    jws(ps);
    if (++ps->depth > 64) return NULL;
    jv *v = NULL;
    char c = *ps->p;
    if (c == '{' || c == '[') {
        bool obj = c == '{';
        v = jnew(obj ? J_OBJ : J_ARR);
        ps->p++;
        jws(ps);
        if (*ps->p == (obj ? '}' : ']')) {
            ps->p++;
        } else {
            for (;;) {
                char *key = NULL;
                jws(ps);
                if (obj) {
                    if (*ps->p != '"' || !(key = jparse_str(ps))) goto fail;
                    jws(ps);
                    if (*ps->p != ':') { free(key); goto fail; }
                    ps->p++;
                }
                jv *item = jparse_value(ps);
                if (!item) { free(key); goto fail; }
                jpush(v, key, item);
                jws(ps);
                if (*ps->p == ',') { ps->p++; continue; }
                if (*ps->p == (obj ? '}' : ']')) { ps->p++; break; }
                goto fail;
            }
        }
    } else if (c == '"') {
        v = jnew(J_STR);
        if (!(v->s = jparse_str(ps))) goto fail;
    } else if (!strncmp(ps->p, "true", 4) || !strncmp(ps->p, "false", 5)) {
        v = jnew(J_BOOL);
        v->b = c == 't';
        ps->p += v->b ? 4 : 5;
    } else if (!strncmp(ps->p, "null", 4)) {
        v = jnew(J_NULL);
        ps->p += 4;
    } else if (c == '-' || (c >= '0' && c <= '9')) {
        char *end;
        v = jnew(J_NUM);
        v->n = strtod(ps->p, &end);
        if (end == ps->p) goto fail;
        ps->p = end;
    } else {
        return NULL;
    }
    ps->depth--;
    return v;
fail:
    jfree(v);
    return NULL;
}

static jv *jparse(const char *s) {
    jparser ps = {s, 0};
    jv *v = jparse_value(&ps);
    if (!v) return NULL;
    jws(&ps);
    if (*ps.p) {
        jfree(v);
        return NULL;
    }
    return v;
}

static jv *jget(const jv *o, const char *key) {
    if (!o || o->t != J_OBJ) return NULL;
    for (size_t i = 0; i < o->len; i++)
        if (!strcmp(o->k[i], key)) return o->v[i];
    return NULL;
}

static jv *jat(const jv *a, size_t i) {
    return (a && a->t == J_ARR && i < a->len) ? a->v[i] : NULL;
}

/* "a.b.0.c": object keys and array indexes. */
static jv *jpath(const jv *root, const char *path) {
    char seg[128];
    const jv *cur = root;
    while (cur && *path) {
        size_t n = strcspn(path, ".");
        if (n >= sizeof seg) return NULL;
        memcpy(seg, path, n);
        seg[n] = 0;
        path += n + (path[n] == '.');
        if (cur->t == J_ARR) {
            char *end;
            unsigned long i = strtoul(seg, &end, 10);
            cur = *end ? NULL : jat(cur, i);
        } else {
            cur = jget(cur, seg);
        }
    }
    return (jv *)cur;
}

static const char *jstr(const jv *root, const char *path) {
    const jv *v = jpath(root, path);
    return (v && v->t == J_STR) ? v->s : NULL;
}

static bool jstr_is(const jv *root, const char *path, const char *want) {
    const char *s = jstr(root, path);
    return s && !strcmp(s, want);
}

/* A non-negative integer, or -1. */
static int64_t jint(const jv *root, const char *path) {
    const jv *v = jpath(root, path);
    if (!v || v->t != J_NUM || v->n < 0 || v->n > 9007199254740991.0 || floor(v->n) != v->n) return -1;
    return (int64_t)v->n;
}

static int jbool(const jv *root, const char *path) { /* 1, 0, or -1 if not a bool */
    const jv *v = jpath(root, path);
    return (v && v->t == J_BOOL) ? v->b : -1;
}

static size_t jlen(const jv *root, const char *path) {
    const jv *v = jpath(root, path);
    return (v && (v->t == J_ARR || v->t == J_OBJ)) ? v->len : 0;
}

static void jdump(th_sb *b, const jv *v) {
    if (!v) {
        th_sb_puts(b, "null");
        return;
    }
    switch (v->t) {
    case J_NULL: th_sb_puts(b, "null"); break;
    case J_BOOL: th_sb_puts(b, v->b ? "true" : "false"); break;
    case J_NUM:
        if (floor(v->n) == v->n && fabs(v->n) < 9007199254740992.0) th_sb_printf(b, "%.0f", v->n);
        else th_sb_printf(b, "%.17g", v->n);
        break;
    case J_STR:
        th_sb_json_str(b, v->s);
        break;
    case J_ARR:
    case J_OBJ:
        th_sb_puts(b, v->t == J_ARR ? "[" : "{");
        for (size_t i = 0; i < v->len; i++) {
            if (i) th_sb_puts(b, ",");
            if (v->t == J_OBJ) {
                jv key = {.t = J_STR, .s = v->k[i]};
                jdump(b, &key);
                th_sb_puts(b, ":");
            }
            jdump(b, v->v[i]);
        }
        th_sb_puts(b, v->t == J_ARR ? "]" : "}");
        break;
    }
}


/* Parsed values live until the end of the current test (freed by gc_all). */
static jv **gc;
static size_t gc_len, gc_cap;

static jv *keep(jv *v) {
    if (gc_len == gc_cap) {
        gc_cap = gc_cap ? gc_cap * 2 : 64;
        gc = realloc(gc, gc_cap * sizeof *gc);
        if (!gc) abort();
    }
    gc[gc_len++] = v;
    return v;
}

static void gc_all(void) {
    for (size_t i = 0; i < gc_len; i++) jfree(gc[i]);
    free(gc);
    gc = NULL;
    gc_len = gc_cap = 0;
}

/* ------------------------------------------------------------------------- */
/* The host side: th_host (tests/c/test_host.h) records the events.            */

/* Request ids above 2^32 (TH_HIGH_IDS): they must come back intact. */
static th_ids request_ids;


/* Sends a request; returns the parsed response envelope. */
static jv *request_env(th_host *h, sfu_server *s, const char *room, const char *peer, const char *json) {
    uint64_t id = th_ids_take(&request_ids);
    CHECK_RESULT(sfu_server_request(s, room, peer, id, json), SFU_RESULT_OK);
    th_event *e = th_wait_response(&h->events, id, WAIT_MS);
    CHECK(e, "no response to request %" PRIu64 " (%s) within %d ms", id, json, WAIT_MS);
    CHECK(!strcmp(e->room, room) && !strcmp(e->peer, peer), "response to %s/%s came as %s/%s", room, peer,
          e->room, e->peer);
    jv *v = jparse(e->json);
    CHECK(v, "the response is not JSON: %s", e->json);
    CHECK(v->t == J_OBJ && jbool(v, "ok") != -1, "the response has no boolean `ok`: %s", e->json);
    th_event_free(e);
    return keep(v);
}

/* A request that must succeed; returns its `data`. */
static jv *request_ok(th_host *h, sfu_server *s, const char *room, const char *peer, const char *json) {
    jv *env = request_env(h, s, room, peer, json);
    if (jbool(env, "ok") != 1) {
        th_sb b = {0};
        jdump(&b, env);
        CHECK(false, "request %s from %s failed: %s", json, peer, b.p);
    }
    jv *data = jget(env, "data");
    CHECK(data && data->t == J_OBJ, "`data` is not an object");
    return data;
}

/* A request that must fail; returns the reason. */
static const char *request_err(th_host *h, sfu_server *s, const char *room, const char *peer, const char *json) {
    jv *env = request_env(h, s, room, peer, json);
    CHECK(jbool(env, "ok") == 0, "request %s from %s should have failed", json, peer);
    const char *reason = jstr(env, "error");
    CHECK(reason, "an error response has a string `error`");
    return reason;
}

/* The next notification for `peer`, in delivery order; parsed. */
static jv *next_notification(th_host *h, const char *peer, int timeout_ms) {
    th_event *e = th_next_notification(&h->events, peer, timeout_ms);
    if (!e) return NULL;
    jv *v = jparse(e->json);
    CHECK(v, "a notification is not JSON: %s", e->json);
    CHECK(jbool(v, "notification") == 1 && jstr(v, "method") && jstr_is(v, "target", "peer"),
          "a notification carries notification:true, method and target:\"peer\": %s", e->json);
    th_event_free(e);
    return keep(v);
}

static jv *expect_notification(th_host *h, const char *peer, const char *method) {
    jv *n = next_notification(h, peer, WAIT_MS);
    CHECK(n, "%s did not receive `%s` within %d ms", peer, method, WAIT_MS);
    CHECK(jstr_is(n, "method", method), "%s: expected `%s`, got `%s`", peer, method, jstr(n, "method"));
    return n;
}

/* A round trip through the room's worker: everything queued before it has been
 * processed and handed to the notifier, and the notifier delivers in order. */
static void sync_room(th_host *h, sfu_server *s, const char *room) {
    request_ok(h, s, room, "__sync__", "{\"method\":\"queryRoom\",\"target\":\"room\"}");
}

static void expect_no_notification(th_host *h, const char *peer) {
    jv *n = next_notification(h, peer, 0);
    if (n) {
        th_sb b = {0};
        jdump(&b, n);
        CHECK(false, "%s received an unexpected notification: %s", peer, b.p);
    }
}

static void expect_no_host_event(th_host *h) {
    th_event *e = th_take(&h->events, th_match_host_event, NULL, 0);
    CHECK(!e, "unexpected host event: %s", e->json);
}

/* ------------------------------------------------------------------------- */
/* Messages a mediasoup-client 2.4.12 in Chrome sends (cf. crates/sfu-testkit/src/builders.rs) */

/* What the client computes from the room caps for a browser supporting every room
 * codec: room PTs and ids, rtcpFeedback dropped for RTX (builders.rs: client_caps). */
static char *client_caps(const jv *room_caps) {
    static const char *codec_keys[] = {"name", "mimeType", "kind", "clockRate", "preferredPayloadType", "parameters"};
    th_sb b = {0};
    th_sb_puts(&b, "{\"codecs\":[");
    const jv *codecs = jget(room_caps, "codecs");
    CHECK(codecs && codecs->t == J_ARR && codecs->len > 0, "room caps have codecs");
    for (size_t i = 0; i < codecs->len; i++) {
        const jv *c = codecs->v[i];
        th_sb_puts(&b, i ? ",{" : "{");
        for (size_t k = 0; k < sizeof codec_keys / sizeof *codec_keys; k++) {
            th_sb_printf(&b, "%s\"%s\":", k ? "," : "", codec_keys[k]);
            jdump(&b, jget(c, codec_keys[k]));
        }
        if (!jstr_is(c, "name", "rtx")) {
            th_sb_puts(&b, ",\"rtcpFeedback\":");
            jdump(&b, jget(c, "rtcpFeedback"));
        }
        const jv *ch = jget(c, "channels");
        if (ch && ch->t != J_NULL) {
            th_sb_puts(&b, ",\"channels\":");
            jdump(&b, ch);
        }
        th_sb_puts(&b, "}");
    }
    th_sb_puts(&b, "],\"headerExtensions\":[");
    const jv *exts = jget(room_caps, "headerExtensions");
    CHECK(exts && exts->t == J_ARR, "room caps have headerExtensions");
    for (size_t i = 0; i < exts->len; i++) {
        const jv *e = exts->v[i];
        th_sb_puts(&b, i ? ",{\"kind\":" : "{\"kind\":");
        jdump(&b, jget(e, "kind"));
        th_sb_puts(&b, ",\"uri\":");
        jdump(&b, jget(e, "uri"));
        th_sb_puts(&b, ",\"preferredId\":");
        jdump(&b, jget(e, "preferredId"));
        th_sb_puts(&b, "}");
    }
    th_sb_puts(&b, "],\"fecMechanisms\":[]}");
    return b.p;
}

/* queryRoom, then join with client caps. Returns the join data. */
static jv *join(th_host *h, sfu_server *s, const char *room, const char *peer) {
    jv *q = request_ok(h, s, room, peer, "{\"method\":\"queryRoom\",\"target\":\"room\"}");
    CHECK(jlen(q, "rtpCapabilities.codecs") > 0, "queryRoom answers rtpCapabilities");
    char *caps = client_caps(jget(q, "rtpCapabilities"));
    th_sb b = {0};
    th_sb_printf(&b, "{\"method\":\"join\",\"target\":\"room\",\"peerName\":\"%s\",\"rtpCapabilities\":", peer);
    th_sb_puts(&b, caps);
    th_sb_printf(&b, ",\"spy\":false,\"appData\":{\"n\":\"%s\"}}", peer);
    jv *j = request_ok(h, s, room, peer, b.p);
    free(caps);
    free(b.p);
    return j;
}

static const char FAKE_FINGERPRINT[] =
    "00:07:0E:15:1C:23:2A:31:38:3F:46:4D:54:5B:62:69:70:77:7E:85:8C:93:9A:A1:A8:AF:B6:BD:C4:CB:D2:D9";

static jv *create_transport(th_host *h, sfu_server *s, const char *room, const char *peer, unsigned id, bool send) {
    char msg[1024];
    if (send)
        snprintf(msg, sizeof msg,
                 "{\"method\":\"createTransport\",\"target\":\"peer\",\"id\":%u,\"direction\":\"send\","
                 "\"options\":{},\"dtlsParameters\":{\"role\":\"server\",\"fingerprints\":[{\"algorithm\":"
                 "\"sha-256\",\"value\":\"%s\"}]},\"appData\":{}}",
                 id, FAKE_FINGERPRINT);
    else
        snprintf(msg, sizeof msg,
                 "{\"method\":\"createTransport\",\"target\":\"peer\",\"id\":%u,\"direction\":\"recv\","
                 "\"options\":{},\"appData\":{}}",
                 id);
    return request_ok(h, s, room, peer, msg);
}

/* createProducer as Chrome 70's handler sends it: browser PTs opus 111, VP8 96 + RTX 97. */
static jv *create_producer(th_host *h, sfu_server *s, const char *room, const char *peer, unsigned id,
                           unsigned transport_id, bool video, uint32_t ssrc) {
    char msg[4096];
    if (!video)
        snprintf(msg, sizeof msg,
                 "{\"method\":\"createProducer\",\"target\":\"peer\",\"id\":%u,\"kind\":\"audio\","
                 "\"transportId\":%u,\"rtpParameters\":{\"muxId\":\"%u\",\"codecs\":[{\"name\":\"opus\","
                 "\"mimeType\":\"audio/opus\",\"clockRate\":48000,\"payloadType\":111,\"channels\":2,"
                 "\"rtcpFeedback\":[{\"type\":\"transport-cc\"}],\"parameters\":{\"useinbandfec\":1}}],"
                 "\"headerExtensions\":["
                 "{\"uri\":\"urn:ietf:params:rtp-hdrext:ssrc-audio-level\",\"id\":1},"
                 "{\"uri\":\"http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time\",\"id\":2},"
                 "{\"uri\":\"http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01\",\"id\":3},"
                 "{\"uri\":\"urn:ietf:params:rtp-hdrext:sdes:mid\",\"id\":4}],"
                 "\"encodings\":[{\"ssrc\":%" PRIu32 "}],"
                 "\"rtcp\":{\"cname\":\"cname-%" PRIu32 "\",\"reducedSize\":true,\"mux\":true}},"
                 "\"paused\":false,\"appData\":{\"p\":%u}}",
                 id, transport_id, id, ssrc, ssrc, id);
    else
        snprintf(msg, sizeof msg,
                 "{\"method\":\"createProducer\",\"target\":\"peer\",\"id\":%u,\"kind\":\"video\","
                 "\"transportId\":%u,\"rtpParameters\":{\"muxId\":\"%u\",\"codecs\":["
                 "{\"name\":\"VP8\",\"mimeType\":\"video/VP8\",\"clockRate\":90000,\"payloadType\":96,"
                 "\"rtcpFeedback\":[{\"type\":\"nack\"},{\"type\":\"nack\",\"parameter\":\"pli\"},"
                 "{\"type\":\"ccm\",\"parameter\":\"fir\"},{\"type\":\"goog-remb\"},{\"type\":\"transport-cc\"}],"
                 "\"parameters\":{}},"
                 "{\"name\":\"rtx\",\"mimeType\":\"video/rtx\",\"clockRate\":90000,\"payloadType\":97,"
                 "\"parameters\":{\"apt\":96}}],"
                 "\"headerExtensions\":["
                 "{\"uri\":\"urn:ietf:params:rtp-hdrext:toffset\",\"id\":14},"
                 "{\"uri\":\"http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time\",\"id\":2},"
                 "{\"uri\":\"urn:3gpp:video-orientation\",\"id\":13},"
                 "{\"uri\":\"http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01\",\"id\":3},"
                 "{\"uri\":\"urn:ietf:params:rtp-hdrext:sdes:mid\",\"id\":4},"
                 "{\"uri\":\"urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id\",\"id\":10}],"
                 "\"encodings\":[{\"ssrc\":%" PRIu32 ",\"rtx\":{\"ssrc\":%" PRIu32 "}}],"
                 "\"rtcp\":{\"cname\":\"cname-%" PRIu32 "\",\"reducedSize\":true,\"mux\":true}},"
                 "\"paused\":false,\"appData\":{\"p\":%u}}",
                 id, transport_id, id, ssrc, ssrc + 1, ssrc, id);
    return request_ok(h, s, room, peer, msg);
}

/* ------------------------------------------------------------------------- */
/* Tests                                                                      */

/* A test's end: its parsed JSON values are released. */
static void end(void) {
    gc_all();
    th_end();
}

/* Frees and checks the documented guarantees (test_host.h: th_check_freed), watching
 * 200 ms for a late callback. */
static void free_server(th_host *h, sfu_server *s) {
    th_server_free(&h->checks, s);
    th_check_freed(&h->checks, "sfu_server_free", 200);
}

static void test_version(void) {
    th_begin("version");
    const char *v = sfu_version();
    CHECK(v != NULL, "sfu_version() is not NULL");
    CHECK(!strcmp(v, SFU_VERSION), "sfu_version() \"%s\" == SFU_VERSION \"%s\"", v, SFU_VERSION);
    char want[64];
    snprintf(want, sizeof want, "%d.%d.%d", SFU_VERSION_MAJOR, SFU_VERSION_MINOR, SFU_VERSION_PATCH);
    CHECK(!strncmp(v, want, strlen(want)), "SFU_VERSION_MAJOR/MINOR/PATCH (%s) match \"%s\"", want, v);
    CHECK(sfu_version() == v, "a static string");
    end();
}

static void test_new_misuse(void) {
    th_begin("sfu_server_new misuse");
    th_host h;
    th_host_init(&h);
    sfu_server *sentinel = (sfu_server *)&h; /* never used as a handle */
    sfu_server *out = sentinel;

    CHECK_RESULT(sfu_server_new(NULL, NULL, &h, th_host_userdata_free, &out), SFU_RESULT_NULL_ARGUMENT);
    CHECK(strstr(sfu_last_error(), "on_event"), "last error names `on_event`: \"%s\"", sfu_last_error());
    CHECK(out == sentinel, "`out` untouched on failure");
    CHECK_RESULT(sfu_server_new(NULL, th_host_on_event, &h, th_host_userdata_free, NULL), SFU_RESULT_NULL_ARGUMENT);
    CHECK(strstr(sfu_last_error(), "out"), "last error names `out`: \"%s\"", sfu_last_error());

    CHECK_RESULT(sfu_server_new("{\"numWorkerz\":1}", th_host_on_event, &h, th_host_userdata_free, &out),
                 SFU_RESULT_INVALID_CONFIG);
    CHECK(strstr(sfu_last_error(), "numWorkerz"), "last error names the key: \"%s\"", sfu_last_error());
    CHECK(out == sentinel, "`out` untouched on failure");

    CHECK_RESULT(sfu_server_new("{\"numWorkers\":0}", th_host_on_event, &h, th_host_userdata_free, &out),
                 SFU_RESULT_INVALID_CONFIG);
    CHECK(strstr(sfu_last_error(), "numWorkers"), "last error names the key: \"%s\"", sfu_last_error());
    CHECK_RESULT(sfu_server_new("{\"rtcIPv4\":\"nope\"}", th_host_on_event, &h, th_host_userdata_free, &out),
                 SFU_RESULT_INVALID_CONFIG);
    CHECK(strstr(sfu_last_error(), "rtcIPv4"), "last error names the key: \"%s\"", sfu_last_error());
    CHECK_RESULT(sfu_server_new("not json", th_host_on_event, &h, th_host_userdata_free, &out), SFU_RESULT_INVALID_CONFIG);
    CHECK_RESULT(sfu_server_new("{\"logLevel\":\"\xff\"}", th_host_on_event, &h, th_host_userdata_free, &out),
                 SFU_RESULT_INVALID_UTF8);
    CHECK(out == sentinel, "`out` untouched on failure");

    /* A failure after the callback was wrapped (no such local address: IO). */
    sfu_result r = sfu_server_new("{\"numWorkers\":1,\"rtcIPv4\":\"192.0.2.1\"}", th_host_on_event, &h, th_host_userdata_free, &out);
    if (r == SFU_RESULT_OK) { /* the host allows non-local binds (ip_nonlocal_bind): not a failure here */
        CHECK(th_server_free(&h.checks, out) == 1, "userdata_free ran once");
        atomic_store(&h.checks.userdata_frees, 0);
        out = sentinel;
    } else {
        CHECK(r == SFU_RESULT_IO, "binding 192.0.2.1 fails with SFU_RESULT_IO, got %d (%s)", (int)r, sfu_last_error());
        CHECK(strstr(sfu_last_error(), "192.0.2.1"), "last error names the address: \"%s\"", sfu_last_error());
        CHECK(out == sentinel, "`out` untouched on failure");
        CHECK(atomic_load(&h.checks.calls) == 0, "no callback from a server that was never created");
    }

    CHECK(atomic_load(&h.checks.userdata_frees) == 0, "userdata_free is not called when sfu_server_new fails");
    CHECK(atomic_load(&h.checks.calls) == 0, "no callback from a server that was never created");
    th_host_destroy(&h);
    end();
}

static void test_freed_handle(void) {
    th_begin("freed handle and NULL server");
    th_host h;
    th_host_init(&h);
    sfu_server *s = th_host_new_server(&h, "{\"numWorkers\":1}");
    CHECK_RESULT(sfu_server_create_room(s, "r", NULL), SFU_RESULT_OK);
    free_server(&h, s);

    /* The handle is stale now: every call reports SERVER_CLOSED, nothing is touched. */
    CHECK_RESULT(sfu_server_create_room(s, "r2", NULL), SFU_RESULT_SERVER_CLOSED);
    CHECK_RESULT(sfu_server_close_room(s, "r"), SFU_RESULT_SERVER_CLOSED);
    CHECK_RESULT(sfu_server_close_peer(s, "r", "p"), SFU_RESULT_SERVER_CLOSED);
    CHECK_RESULT(sfu_server_request(s, "r", "p", 1, "{\"method\":\"queryRoom\"}"), SFU_RESULT_SERVER_CLOSED);
    CHECK_RESULT(sfu_server_notify(s, "r", "p", "{\"method\":\"leave\",\"notification\":true}"),
                 SFU_RESULT_SERVER_CLOSED);
    CHECK(strlen(sfu_last_error()) > 0, "SERVER_CLOSED sets a message");
    sfu_server_free(s); /* double free: a no-op */
    sfu_server_free(NULL);
    CHECK(atomic_load(&h.checks.userdata_frees) == 1, "userdata_free still ran exactly once");
    CHECK(atomic_load(&h.checks.calls_after_free) == 0, "no callback after free");

    /* NULL server handle. */
    CHECK_RESULT(sfu_server_create_room(NULL, "r", NULL), SFU_RESULT_NULL_ARGUMENT);
    CHECK_RESULT(sfu_server_close_room(NULL, "r"), SFU_RESULT_NULL_ARGUMENT);
    CHECK_RESULT(sfu_server_close_peer(NULL, "r", "p"), SFU_RESULT_NULL_ARGUMENT);
    CHECK_RESULT(sfu_server_request(NULL, "r", "p", 1, "{}"), SFU_RESULT_NULL_ARGUMENT);
    CHECK_RESULT(sfu_server_notify(NULL, "r", "p", "{}"), SFU_RESULT_NULL_ARGUMENT);
    CHECK(strstr(sfu_last_error(), "server"), "last error names `server`: \"%s\"", sfu_last_error());
    th_host_destroy(&h);
    end();
}

static void test_argument_misuse(void) {
    th_begin("argument misuse on a live server");
    th_host h;
    th_host_init(&h);
    sfu_server *s = th_host_new_server(&h, "{\"numWorkers\":1}");

    CHECK_RESULT(sfu_server_create_room(s, NULL, NULL), SFU_RESULT_NULL_ARGUMENT);
    CHECK(strstr(sfu_last_error(), "room_id"), "last error names `room_id`: \"%s\"", sfu_last_error());
    CHECK_RESULT(sfu_server_create_room(s, "", NULL), SFU_RESULT_INVALID_ARGUMENT);
    CHECK_RESULT(sfu_server_create_room(s, "\xc3\x28", NULL), SFU_RESULT_INVALID_UTF8);
    CHECK_RESULT(sfu_server_create_room(s, "bad", "{\"mediaCodecs\":[]}"), SFU_RESULT_INVALID_ARGUMENT);
    CHECK_RESULT(sfu_server_create_room(s, "bad", "{\"mediaCodecs\":[{\"kind\":\"audio\",\"name\":\"nope\","
                                                 "\"clockRate\":48000}]}"),
                 SFU_RESULT_INVALID_ARGUMENT);
    CHECK(strstr(sfu_last_error(), "nope"), "last error names the codec: \"%s\"", sfu_last_error());
    CHECK_RESULT(sfu_server_create_room(s, "r", NULL), SFU_RESULT_OK);
    CHECK_RESULT(sfu_server_create_room(s, "r", NULL), SFU_RESULT_ROOM_EXISTS);

    CHECK_RESULT(sfu_server_close_room(s, NULL), SFU_RESULT_NULL_ARGUMENT);
    CHECK_RESULT(sfu_server_close_room(s, "nope"), SFU_RESULT_ROOM_NOT_FOUND);
    CHECK_RESULT(sfu_server_close_peer(s, "r", NULL), SFU_RESULT_NULL_ARGUMENT);
    CHECK_RESULT(sfu_server_close_peer(s, NULL, "p"), SFU_RESULT_NULL_ARGUMENT);
    CHECK_RESULT(sfu_server_close_peer(s, "nope", "p"), SFU_RESULT_ROOM_NOT_FOUND);
    CHECK_RESULT(sfu_server_close_peer(s, "r", "p"), SFU_RESULT_PEER_NOT_FOUND);

    CHECK_RESULT(sfu_server_request(s, NULL, "p", 1, "{}"), SFU_RESULT_NULL_ARGUMENT);
    CHECK_RESULT(sfu_server_request(s, "r", NULL, 1, "{}"), SFU_RESULT_NULL_ARGUMENT);
    CHECK_RESULT(sfu_server_request(s, "r", "p", 1, NULL), SFU_RESULT_NULL_ARGUMENT);
    CHECK(strstr(sfu_last_error(), "request_json"), "last error names `request_json`: \"%s\"", sfu_last_error());
    CHECK_RESULT(sfu_server_notify(s, NULL, "p", "{}"), SFU_RESULT_NULL_ARGUMENT);
    CHECK_RESULT(sfu_server_notify(s, "r", NULL, "{}"), SFU_RESULT_NULL_ARGUMENT);
    CHECK_RESULT(sfu_server_notify(s, "r", "p", NULL), SFU_RESULT_NULL_ARGUMENT);
    CHECK(atomic_load(&h.checks.calls) == 0, "a rejected call produces no callback");

    /* Protocol-level failures are JSON error responses, not call failures. */
    CHECK(strstr(request_err(&h, s, "r", "p", "{not json"), "invalid JSON"), "bad JSON -> error response");
    CHECK(strstr(request_err(&h, s, "r", "p", "\xff\xfe"), "invalid JSON"), "bad UTF-8 in JSON -> error response");
    CHECK(!strcmp(request_err(&h, s, "nope", "p", "{\"method\":\"queryRoom\"}"), "room not found"),
          "unknown room -> error response");
    CHECK(strstr(request_err(&h, s, "r", "p", "{\"method\":\"fly\"}"), "unknown method"),
          "unknown method -> error response");

    /* The request id is the host's opaque u64: every bit comes back. */
    CHECK_RESULT(sfu_server_request(s, "r", "p", UINT64_MAX, "{\"method\":\"queryRoom\",\"target\":\"room\"}"),
                 SFU_RESULT_OK);
    uint64_t max = UINT64_MAX;
    th_event *e = th_wait_response(&h.events, max, WAIT_MS);
    CHECK(e, "a response with request_id UINT64_MAX");
    th_event_free(e);

    /* A notification that cannot be applied is a host event. */
    CHECK_RESULT(sfu_server_notify(s, "r", "nobody", "{\"method\":\"leave\",\"notification\":true}"), SFU_RESULT_OK);
    e = th_take(&h.events, th_match_host_event, NULL, WAIT_MS);
    CHECK(e, "a notificationError host event");
    CHECK(strstr(e->json, "notificationError"), "notificationError: %s", e->json);
    th_event_free(e);

    free_server(&h, s);
    th_host_destroy(&h);
    end();
}

static void test_control_plane(void) {
    th_begin("two peers through the control plane");
    const char *R = "room1";
    th_host h;
    th_host_init(&h);
    sfu_server *s = th_host_new_server(&h, "{\"numWorkers\":1}");
    CHECK_RESULT(sfu_server_create_room(s, R, NULL), SFU_RESULT_OK);

    /* queryRoom: mediasoup's PT sequence starts at 100 (opus), VP8 101 + RTX 102. */
    jv *q = request_ok(&h, s, R, "alice", "{\"method\":\"queryRoom\",\"target\":\"room\"}");
    CHECK(jstr_is(q, "rtpCapabilities.codecs.0.name", "opus") && jint(q, "rtpCapabilities.codecs.0.preferredPayloadType") == 100,
          "opus is PT 100");
    CHECK(jstr_is(q, "rtpCapabilities.codecs.1.name", "VP8") && jint(q, "rtpCapabilities.codecs.1.preferredPayloadType") == 101,
          "VP8 is PT 101");
    CHECK(jstr_is(q, "rtpCapabilities.codecs.2.name", "rtx") && jint(q, "rtpCapabilities.codecs.2.preferredPayloadType") == 102 &&
              jint(q, "rtpCapabilities.codecs.2.parameters.apt") == 101,
          "VP8's RTX is PT 102 (apt 101)");
    CHECK(jlen(q, "mandatoryCodecPayloadTypes") == 0 && jpath(q, "mandatoryCodecPayloadTypes"),
          "mandatoryCodecPayloadTypes: []");

    /* join: alice first, then bob. */
    jv *ja = join(&h, s, R, "alice");
    CHECK(jpath(ja, "peers") && jlen(ja, "peers") == 0, "alice is alone");
    jv *jb = join(&h, s, R, "bob");
    CHECK(jlen(jb, "peers") == 1 && jstr_is(jb, "peers.0.name", "alice"), "bob's join lists alice");
    CHECK(jstr_is(jb, "peers.0.appData.n", "alice"), "with her appData");
    CHECK(jpath(jb, "peers.0.consumers") && jlen(jb, "peers.0.consumers") == 0, "alice has no producers yet");
    jv *np = expect_notification(&h, "alice", "newPeer");
    CHECK(jstr_is(np, "name", "bob") && jlen(np, "consumers") == 0 && jpath(np, "consumers"),
          "newPeer names bob with consumers: []");

    /* bob sends (DTLS role "server" from the browser -> we are "client"); alice receives. */
    const unsigned T_BOB_SEND = 31000001, T_ALICE_RECV = 31000002;
    jv *ts = create_transport(&h, s, R, "bob", T_BOB_SEND, true);
    CHECK(jstr_is(ts, "dtlsParameters.role", "client"), "send transport: server DTLS role client");
    CHECK(jbool(ts, "iceParameters.iceLite") == 1, "ICE lite");
    CHECK(jstr(ts, "iceParameters.usernameFragment") && jstr(ts, "iceParameters.password"), "ICE credentials");
    CHECK(jstr_is(ts, "iceCandidates.0.ip", "127.0.0.1") && jstr_is(ts, "iceCandidates.0.protocol", "udp") &&
              jint(ts, "iceCandidates.0.port") > 0,
          "a loopback UDP host candidate");
    CHECK(jstr_is(ts, "dtlsParameters.fingerprints.0.algorithm", "sha-256") ||
              jlen(ts, "dtlsParameters.fingerprints") > 1,
          "a sha-256 fingerprint");
    jv *tr = create_transport(&h, s, R, "alice", T_ALICE_RECV, false);
    CHECK(jstr_is(tr, "dtlsParameters.role", "auto"), "recv transport: DTLS role auto");
    {
        char msg[512];
        snprintf(msg, sizeof msg,
                 "{\"method\":\"updateTransport\",\"target\":\"peer\",\"notification\":true,\"id\":%u,"
                 "\"dtlsParameters\":{\"role\":\"client\",\"fingerprints\":[{\"algorithm\":\"sha-256\","
                 "\"value\":\"%s\"}]}}",
                 T_ALICE_RECV, FAKE_FINGERPRINT);
        CHECK_RESULT(sfu_server_notify(s, R, "alice", msg), SFU_RESULT_OK);
    }

    /* bob produces audio and video with Chrome's PTs and SSRCs. */
    const unsigned P_AUDIO = 41000001, P_VIDEO = 41000002;
    const uint32_t SSRC_A = 11110000, SSRC_V = 22220000;
    jv *pa = create_producer(&h, s, R, "bob", P_AUDIO, T_BOB_SEND, false, SSRC_A);
    CHECK(pa->t == J_OBJ && pa->len == 0, "createProducer answers {}");
    create_producer(&h, s, R, "bob", P_VIDEO, T_BOB_SEND, true, SSRC_V);

    /* alice: newConsumer (audio), newConsumer (video), after newPeer (already taken above). */
    jv *ca = expect_notification(&h, "alice", "newConsumer");
    CHECK(jstr_is(ca, "kind", "audio") && jstr_is(ca, "peerName", "bob"), "audio consumer of bob");
    CHECK(jbool(ca, "paused") == 0, "not paused");
    CHECK(jint(ca, "appData.p") == P_AUDIO, "appData = the producer's");
    CHECK(jlen(ca, "rtpParameters.codecs") == 1 && jint(ca, "rtpParameters.codecs.0.payloadType") == 100,
          "opus at the room PT 100, not the browser's 111 (got %" PRId64 ")", jint(ca, "rtpParameters.codecs.0.payloadType"));
    int64_t a_ssrc = jint(ca, "rtpParameters.encodings.0.ssrc");
    CHECK(a_ssrc > 0 && a_ssrc != SSRC_A, "a server-chosen SSRC (%" PRId64 ")", a_ssrc);
    CHECK(jstr(ca, "rtpParameters.rtcp.cname") && !strcmp(jstr(ca, "rtpParameters.rtcp.cname"), "cname-11110000"),
          "the producer's CNAME");

    jv *cv = expect_notification(&h, "alice", "newConsumer");
    CHECK(jstr_is(cv, "kind", "video") && jstr_is(cv, "peerName", "bob"), "video consumer of bob");
    int64_t cid = jint(cv, "id");
    CHECK(cid >= 10000000 && cid <= 99999999, "a server consumer id in mediasoup's range (%" PRId64 ")", cid);
    CHECK(cid != jint(ca, "id"), "consumer ids are distinct");
    CHECK(jstr_is(cv, "preferredProfile", "default"), "preferredProfile default");
    CHECK(jlen(cv, "rtpParameters.codecs") == 2, "VP8 and its RTX");
    CHECK(jstr_is(cv, "rtpParameters.codecs.0.name", "VP8") && jint(cv, "rtpParameters.codecs.0.payloadType") == 101,
          "VP8 at the room PT 101, not 96 (got %" PRId64 ")", jint(cv, "rtpParameters.codecs.0.payloadType"));
    CHECK(jint(cv, "rtpParameters.codecs.1.payloadType") == 102 && jint(cv, "rtpParameters.codecs.1.parameters.apt") == 101,
          "RTX at the room PT 102 with apt 101");
    int64_t v_ssrc = jint(cv, "rtpParameters.encodings.0.ssrc");
    int64_t v_rtx = jint(cv, "rtpParameters.encodings.0.rtx.ssrc");
    CHECK(v_ssrc > 0 && v_rtx > 0 && v_ssrc != v_rtx, "media and RTX SSRCs (%" PRId64 ", %" PRId64 ")", v_ssrc, v_rtx);
    CHECK(v_ssrc != SSRC_V && v_ssrc != SSRC_V + 1 && v_rtx != SSRC_V && v_rtx != SSRC_V + 1,
          "server-chosen SSRCs, not the producer's");
    for (size_t i = 0; i < jlen(cv, "rtpParameters.headerExtensions"); i++) {
        char path[64];
        snprintf(path, sizeof path, "rtpParameters.headerExtensions.%zu.uri", i);
        const char *uri = jstr(cv, path);
        CHECK(uri && !strstr(uri, "sdes:mid"), "the MID extension is not forwarded");
    }
    sync_room(&h, s, R);
    expect_no_notification(&h, "bob"); /* the producer's owner gets nothing */
    expect_no_notification(&h, "alice");
    expect_no_host_event(&h); /* updateTransport applied */

    /* alice enables the video consumer on her recv transport. */
    {
        char msg[256];
        snprintf(msg, sizeof msg,
                 "{\"method\":\"enableConsumer\",\"target\":\"peer\",\"id\":%" PRId64 ",\"transportId\":%u,"
                 "\"paused\":false,\"preferredProfile\":\"default\"}",
                 cid, T_ALICE_RECV);
        jv *en = request_ok(&h, s, R, "alice", msg);
        CHECK(jbool(en, "paused") == 0, "enabled, not paused");
        CHECK(jstr_is(en, "preferredProfile", "default"), "preferredProfile echoed");
        CHECK(strstr(request_err(&h, s, R, "alice", msg), "already enabled"), "enabling twice is an error");
    }

    /* bob pauses and resumes his video producer: alice is told. */
    char note[256];
    snprintf(note, sizeof note, "{\"method\":\"pauseProducer\",\"target\":\"peer\",\"notification\":true,\"id\":%u}", P_VIDEO);
    CHECK_RESULT(sfu_server_notify(s, R, "bob", note), SFU_RESULT_OK);
    jv *cp = expect_notification(&h, "alice", "consumerPaused");
    CHECK(jint(cp, "id") == cid && jstr_is(cp, "peerName", "bob"), "consumerPaused names the consumer and bob");
    snprintf(note, sizeof note, "{\"method\":\"resumeProducer\",\"target\":\"peer\",\"notification\":true,\"id\":%u}", P_VIDEO);
    CHECK_RESULT(sfu_server_notify(s, R, "bob", note), SFU_RESULT_OK);
    jv *cr = expect_notification(&h, "alice", "consumerResumed");
    CHECK(jint(cr, "id") == cid && jstr_is(cr, "peerName", "bob"), "consumerResumed names the consumer and bob");
    sync_room(&h, s, R);
    expect_no_notification(&h, "bob");
    expect_no_notification(&h, "alice");

    /* bob closes the video producer: alice's consumer closes. */
    snprintf(note, sizeof note, "{\"method\":\"closeProducer\",\"target\":\"peer\",\"notification\":true,\"id\":%u}", P_VIDEO);
    CHECK_RESULT(sfu_server_notify(s, R, "bob", note), SFU_RESULT_OK);
    jv *cc = expect_notification(&h, "alice", "consumerClosed");
    CHECK(jint(cc, "id") == cid && jstr_is(cc, "peerName", "bob"), "consumerClosed names the consumer and bob");
    {
        char msg[256];
        snprintf(msg, sizeof msg,
                 "{\"method\":\"enableConsumer\",\"id\":%" PRId64 ",\"transportId\":%u,\"paused\":false}", cid,
                 T_ALICE_RECV);
        CHECK(!strcmp(request_err(&h, s, R, "alice", msg), "consumer not found"), "the closed consumer is gone");
    }

    /* bob leaves: alice gets peerClosed, without redundant consumerClosed for the audio. */
    CHECK_RESULT(sfu_server_notify(s, R, "bob", "{\"method\":\"leave\",\"target\":\"peer\",\"notification\":true,\"appData\":{}}"),
                 SFU_RESULT_OK);
    jv *pc = expect_notification(&h, "alice", "peerClosed");
    CHECK(jstr_is(pc, "name", "bob"), "peerClosed names bob");
    sync_room(&h, s, R);
    expect_no_notification(&h, "alice");
    expect_no_notification(&h, "bob");
    expect_no_host_event(&h);

    /* The host closes the room: alice gets closed; the room is gone. */
    CHECK_RESULT(sfu_server_close_room(s, R), SFU_RESULT_OK);
    expect_notification(&h, "alice", "closed");
    CHECK_RESULT(sfu_server_close_room(s, R), SFU_RESULT_ROOM_NOT_FOUND);
    CHECK(!strcmp(request_err(&h, s, R, "alice", "{\"method\":\"queryRoom\",\"target\":\"room\"}"), "room not found"),
          "requests to a closed room are answered \"room not found\"");

    /* Every response was claimed exactly once; nothing else is pending. */
    th_event *e = th_take(&h.events, th_match_any_response, NULL, 200);
    CHECK(!e, "an unclaimed (duplicate?) response: %s", e->json);
    expect_no_notification(&h, "alice");
    expect_no_notification(&h, "bob");
    expect_no_host_event(&h);

    free_server(&h, s);
    th_host_destroy(&h);
    end();
}

/* sfu_server_free with requests still queued: each gets exactly one response
 * (a real one or "server closed") before free returns. */
static void test_free_answers_pending(void) {
    th_begin("free answers queued requests");
    th_host h;
    th_host_init(&h);
    /* A high pending-request limit: this test floods one peer on purpose. */
    sfu_server *s = th_host_new_server(&h, "{\"numWorkers\":1,\"maxPendingRequestsPerPeer\":100000}");
    CHECK_RESULT(sfu_server_create_room(s, "r", NULL), SFU_RESULT_OK);
    enum { N = 200 };
    for (uint64_t i = 1; i <= N; i++)
        CHECK_RESULT(sfu_server_request(s, "r", "p", i, "{\"method\":\"queryRoom\",\"target\":\"room\"}"),
                     SFU_RESULT_OK);
    /* Every response is queued (the recorder) by the time sfu_server_free returns. */
    CHECK(th_server_free(&h.checks, s) == 1, "userdata_free ran once");
    int seen[N + 1] = {0};
    th_event *e;
    while ((e = th_take(&h.events, th_match_any_response, NULL, 0))) {
        CHECK(e->request_id >= 1 && e->request_id <= N, "a response to a request we sent");
        seen[e->request_id]++;
        CHECK(strstr(e->json, "\"ok\":true") || strstr(e->json, "server closed"), "ok or \"server closed\": %s",
              e->json);
        th_event_free(e);
    }
    for (int i = 1; i <= N; i++) CHECK(seen[i] == 1, "request %d got %d responses (want exactly 1)", i, seen[i]);
    th_check_freed(&h.checks, "free with queued requests", 100);
    th_host_destroy(&h);
    end();
}

/* The callback may call back into the library (header: sfu_event_fn). */
typedef struct {
    sfu_server *s;
    atomic_int issued;
    atomic_int result_errors;
} reentry;

static void reentrant_hook(void *arg, const th_event *ev) {
    reentry *r = arg;
    if (ev->kind != SFU_EVENT_KIND_RESPONSE || ev->request_id >= 10) return;
    /* Chain: the response to request n sends request n+1 from inside the callback,
     * plus a create/close room round trip (synchronous calls from the notifier). */
    if (sfu_server_request(r->s, "r", "p", ev->request_id + 1, "{\"method\":\"queryRoom\",\"target\":\"room\"}") !=
        SFU_RESULT_OK)
        atomic_fetch_add(&r->result_errors, 1);
    char room[32];
    snprintf(room, sizeof room, "tmp%" PRIu64, ev->request_id);
    if (sfu_server_create_room(r->s, room, NULL) != SFU_RESULT_OK) atomic_fetch_add(&r->result_errors, 1);
    if (sfu_server_close_peer(r->s, room, "nobody") != SFU_RESULT_PEER_NOT_FOUND) atomic_fetch_add(&r->result_errors, 1);
    if (sfu_server_close_room(r->s, room) != SFU_RESULT_OK) atomic_fetch_add(&r->result_errors, 1);
    if (sfu_server_notify(r->s, "r", "p", "{\"method\":\"leave\",\"notification\":true}") != SFU_RESULT_OK)
        atomic_fetch_add(&r->result_errors, 1);
    atomic_fetch_add(&r->issued, 1);
}

static void test_reentrant_callback(void) {
    th_begin("calls from inside the callback");
    th_host h;
    th_host_init(&h);
    reentry r = {0};
    h.hook = reentrant_hook;
    h.hook_arg = &r;
    sfu_server *s = th_host_new_server(&h, "{\"numWorkers\":1}");
    r.s = s;
    CHECK_RESULT(sfu_server_create_room(s, "r", NULL), SFU_RESULT_OK);
    CHECK_RESULT(sfu_server_request(s, "r", "p", 1, "{\"method\":\"queryRoom\",\"target\":\"room\"}"), SFU_RESULT_OK);
    for (uint64_t i = 1; i <= 10; i++) {
        th_event *e = th_wait_response(&h.events, i, WAIT_MS);
        CHECK(e, "response %" PRIu64 " of the chain within %d ms", i, WAIT_MS);
        th_event_free(e);
    }
    CHECK(atomic_load(&r.issued) == 9 && atomic_load(&r.result_errors) == 0,
          "every call from the callback succeeded (%d issued, %d wrong results)", atomic_load(&r.issued),
          atomic_load(&r.result_errors));
    free_server(&h, s);
    th_host_destroy(&h);
    end();
}

/* Every function may be called from any thread, concurrently. */
typedef struct {
    sfu_server *s;
    int idx;
    int failures;
} worker_arg;

enum { THREADS = 4, PER_THREAD = 50 };

static void *hammer(void *p) {
    worker_arg *a = p;
    char peer[16], room[16];
    snprintf(peer, sizeof peer, "t%d", a->idx);
    snprintf(room, sizeof room, "own%d", a->idx);
    if (sfu_server_create_room(a->s, room, NULL) != SFU_RESULT_OK) a->failures++;
    for (int i = 0; i < PER_THREAD; i++) {
        uint64_t id = (uint64_t)a->idx * 1000 + (uint64_t)i + 1;
        if (sfu_server_request(a->s, i % 2 ? "r" : room, peer, id, "{\"method\":\"queryRoom\",\"target\":\"room\"}") !=
            SFU_RESULT_OK)
            a->failures++;
    }
    if (sfu_server_close_room(a->s, room) != SFU_RESULT_OK) a->failures++;
    return NULL;
}

static void test_concurrent_calls(void) {
    th_begin("concurrent calls from several threads");
    th_host h;
    th_host_init(&h);
    sfu_server *s = th_host_new_server(&h, "{\"numWorkers\":2}");
    CHECK_RESULT(sfu_server_create_room(s, "r", NULL), SFU_RESULT_OK);
    pthread_t th[THREADS];
    worker_arg args[THREADS];
    for (int i = 0; i < THREADS; i++) {
        args[i] = (worker_arg){s, i + 1, 0};
        CHECK(pthread_create(&th[i], NULL, hammer, &args[i]) == 0, "pthread_create");
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(th[i], NULL);
        CHECK(args[i].failures == 0, "thread %d: %d calls failed", i + 1, args[i].failures);
    }
    /* Each request: exactly one response (ok for the shared room, ok or "room not
     * found" for a thread's own room, which it closes right after sending). */
    for (int t = 1; t <= THREADS; t++) {
        for (int i = 0; i < PER_THREAD; i++) {
            uint64_t id = (uint64_t)t * 1000 + (uint64_t)i + 1;
            th_event *e = th_wait_response(&h.events, id, WAIT_MS);
            CHECK(e, "a response to request %" PRIu64, id);
            if (i % 2)
                CHECK(strstr(e->json, "\"ok\":true"), "queryRoom on the shared room: %s", e->json);
            else
                CHECK(strstr(e->json, "\"ok\":true") || strstr(e->json, "room not found"), "%s", e->json);
            th_event_free(e);
        }
    }
    th_event *e = th_take(&h.events, th_match_any_response, NULL, 200);
    CHECK(!e, "an extra response: %" PRIu64 " %s", e->request_id, e->json);
    free_server(&h, s);
    th_host_destroy(&h);
    end();
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    th_ids_init(&request_ids, TH_HIGH_IDS);
    test_version();
    test_new_misuse();
    test_freed_handle();
    test_argument_misuse();
    test_control_plane();
    test_free_answers_pending();
    test_reentrant_callback();
    test_concurrent_calls();
    return th_finish();
}
