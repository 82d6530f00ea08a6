/*
 * A real C host of the library, driven over stdin/stdout by a test (tests/c_media.rs)
 * that plays the browsers: the library runs in this process, the test only moves
 * JSON text and UDP datagrams.
 *
 * Usage: stdio_host [CONFIG_JSON]    (CONFIG_JSON is given to sfu_server_new)
 *
 * Input, one command per line, five tab-separated fields (JSON text never contains a
 * raw tab or newline, so no escaping is needed):
 *
 *   op <TAB> room <TAB> peer <TAB> id <TAB> json
 *
 *   request      sfu_server_request(room, peer, id, json)
 *   notify       sfu_server_notify(room, peer, json)
 *   create_room  sfu_server_create_room(room, json or NULL if empty)
 *   close_peer   sfu_server_close_peer(room, peer)
 *   close_room   sfu_server_close_room(room)
 *   quit         sfu_server_free, report, exit
 *
 * `id` is a decimal u64 on every line (the request id for `request`; for the other
 * ops only echoed back). Unused fields may be empty.
 *
 * Output, one line per event, same five fields, written and flushed under a mutex:
 *
 *   ready         <TAB><TAB><TAB>0<TAB>{"version":"..."}         once, after sfu_server_new
 *   response|notification|host <TAB> room <TAB> peer <TAB> request_id <TAB> json
 *                                                                every callback, verbatim
 *   ret           <TAB> room <TAB> peer <TAB> id <TAB> {"op":...,"result":N,"error":"..."}
 *                                                                the result of each command
 *   error         <TAB><TAB><TAB>0<TAB>{"error":"..."}           a malformed command
 *   bye           <TAB><TAB><TAB>0<TAB>{"userdata_frees":N,...}  after sfu_server_free
 *
 * Exit status: 0 after `quit` when every check held (userdata_free ran exactly once
 * during sfu_server_free, no callback after it, every callback well-formed, all on one
 * thread and never overlapping, no malformed command: tests/c/test_host.h's th_checks); 1 if a check failed; 2 if sfu_server_new failed; 3 on EOF
 * without `quit` (the server is still freed).
 */

#define _POSIX_C_SOURCE 200809L

#include "test_host.h"

#include <sys/types.h>

typedef struct {
    pthread_mutex_t out_mu; /* one writer at a time on stdout */
    /* The callback's contract and userdata_free (test_host.h); a tab or newline in a
     * field counts as a bad callback too. */
    th_checks checks;
    int malformed; /* main thread only */
} host;

/* ------------------------------------------------------------------------- */
/* Output                                                                      */

static void write_line_locked(const char *kind, const char *room, const char *peer, uint64_t id, const char *json,
                              size_t json_len) {
    fputs(kind, stdout);
    fputc('\t', stdout);
    fputs(room, stdout);
    fputc('\t', stdout);
    fputs(peer, stdout);
    fprintf(stdout, "\t%" PRIu64 "\t", id);
    fwrite(json, 1, json_len, stdout);
    fputc('\n', stdout);
    fflush(stdout);
}

static void write_line(host *h, const char *kind, const char *room, const char *peer, uint64_t id, const char *json) {
    pthread_mutex_lock(&h->out_mu);
    write_line_locked(kind, room, peer, id, json, strlen(json));
    pthread_mutex_unlock(&h->out_mu);
}

static bool has_line_breakers(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (s[i] == '\t' || s[i] == '\n' || s[i] == '\r') return true;
    return false;
}

/* ------------------------------------------------------------------------- */
/* The callback                                                                */

static void on_event(void *userdata, sfu_event_kind kind, const char *room_id, const char *peer_name,
                     uint64_t request_id, const char *json, size_t json_len) {
    host *h = userdata;
    if (th_callback_enter(&h->checks, kind, room_id, peer_name, request_id, json, json_len)) {
        const char *name = kind == SFU_EVENT_KIND_RESPONSE       ? "response"
                           : kind == SFU_EVENT_KIND_NOTIFICATION ? "notification"
                                                                 : "host";
        if (has_line_breakers(room_id, strlen(room_id)) || has_line_breakers(peer_name, strlen(peer_name)) ||
            has_line_breakers(json, json_len)) {
            atomic_fetch_add(&h->checks.bad_args, 1);
        } else {
            pthread_mutex_lock(&h->out_mu);
            write_line_locked(name, room_id, peer_name, request_id, json, json_len);
            pthread_mutex_unlock(&h->out_mu);
        }
    }
    th_callback_leave(&h->checks);
}

static void on_userdata_free(void *userdata) {
    host *h = userdata;
    th_userdata_freed(&h->checks);
}

/* ------------------------------------------------------------------------- */
/* Commands                                                                    */

static const char *result_name(sfu_result r) {
    switch (r) {
    case SFU_RESULT_OK: return "OK";
    case SFU_RESULT_NULL_ARGUMENT: return "NULL_ARGUMENT";
    case SFU_RESULT_INVALID_UTF8: return "INVALID_UTF8";
    case SFU_RESULT_INVALID_CONFIG: return "INVALID_CONFIG";
    case SFU_RESULT_INVALID_ARGUMENT: return "INVALID_ARGUMENT";
    case SFU_RESULT_ROOM_EXISTS: return "ROOM_EXISTS";
    case SFU_RESULT_ROOM_NOT_FOUND: return "ROOM_NOT_FOUND";
    case SFU_RESULT_PEER_NOT_FOUND: return "PEER_NOT_FOUND";
    case SFU_RESULT_SERVER_CLOSED: return "SERVER_CLOSED";
    case SFU_RESULT_IO: return "IO";
    case SFU_RESULT_INTERNAL: return "INTERNAL";
    }
    return "?";
}

static void report_error(host *h, const char *what) {
    th_sb b = {0};
    th_sb_puts(&b, "{\"error\":");
    th_sb_json_str(&b, what);
    th_sb_puts(&b, "}");
    write_line(h, "error", "", "", 0, b.p);
    free(b.p);
    h->malformed++;
}

static void report_result(host *h, const char *op, const char *room, const char *peer, uint64_t id, sfu_result r) {
    th_sb b = {0};
    char num[32];
    th_sb_puts(&b, "{\"op\":");
    th_sb_json_str(&b, op);
    snprintf(num, sizeof num, ",\"result\":%d,\"name\":", (int)r);
    th_sb_puts(&b, num);
    th_sb_json_str(&b, result_name(r));
    th_sb_puts(&b, ",\"error\":");
    th_sb_json_str(&b, r == SFU_RESULT_OK ? "" : sfu_last_error());
    th_sb_puts(&b, "}");
    write_line(h, "ret", room, peer, id, b.p);
    free(b.p);
}

/* Splits `line` in place into at most `n` tab-separated fields; the last field takes
 * the rest of the line. Returns the number of fields found. */
static int split_fields(char *line, char **fields, int n) {
    int k = 0;
    char *p = line;
    while (k < n - 1) {
        fields[k++] = p;
        char *tab = strchr(p, '\t');
        if (!tab) return k;
        *tab = 0;
        p = tab + 1;
    }
    fields[k++] = p;
    return k;
}

static bool parse_u64(const char *s, uint64_t *out) {
    if (!*s) return false;
    for (const char *c = s; *c; c++)
        if (*c < '0' || *c > '9') return false;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end) return false;
    *out = (uint64_t)v;
    return true;
}

/* Runs one command line; returns false on `quit`. */
static bool handle_line(host *h, sfu_server *s, char *line) {
    char *f[5];
    int n = split_fields(line, f, 5);
    if (n == 1 && !strcmp(f[0], "quit")) return false;
    uint64_t id;
    if (n != 5 || !parse_u64(f[3], &id)) {
        report_error(h, "a command is: op<TAB>room<TAB>peer<TAB>id<TAB>json, id a decimal u64");
        return true;
    }
    const char *op = f[0], *room = f[1], *peer = f[2], *json = f[4];
    sfu_result r;
    if (!strcmp(op, "request")) {
        r = sfu_server_request(s, room, peer, id, json);
    } else if (!strcmp(op, "notify")) {
        r = sfu_server_notify(s, room, peer, json);
    } else if (!strcmp(op, "create_room")) {
        r = sfu_server_create_room(s, room, *json ? json : NULL);
    } else if (!strcmp(op, "close_peer")) {
        r = sfu_server_close_peer(s, room, peer);
    } else if (!strcmp(op, "close_room")) {
        r = sfu_server_close_room(s, room);
    } else if (!strcmp(op, "quit")) {
        return false;
    } else {
        report_error(h, "unknown op");
        return true;
    }
    report_result(h, op, room, peer, id, r);
    return true;
}

int main(int argc, char **argv) {
    if (argc > 2) {
        fprintf(stderr, "usage: %s [CONFIG_JSON]\n", argv[0]);
        return 2;
    }
    host *h = calloc(1, sizeof *h);
    if (!h) abort();
    pthread_mutex_init(&h->out_mu, NULL);
    th_checks_init(&h->checks);

    sfu_server *s = NULL;
    sfu_result r = sfu_server_new(argc > 1 ? argv[1] : NULL, on_event, h, on_userdata_free, &s);
    if (r != SFU_RESULT_OK) {
        fprintf(stderr, "sfu_server_new: %s (%d): %s\n", result_name(r), (int)r, sfu_last_error());
        th_checks_destroy(&h->checks);
        pthread_mutex_destroy(&h->out_mu);
        free(h);
        return 2;
    }
    {
        th_sb b = {0};
        th_sb_puts(&b, "{\"version\":");
        th_sb_json_str(&b, sfu_version());
        th_sb_puts(&b, "}");
        write_line(h, "ready", "", "", 0, b.p);
        free(b.p);
    }

    char *line = NULL;
    size_t cap = 0;
    bool quit = false;
    for (;;) {
        ssize_t len = getline(&line, &cap, stdin);
        if (len < 0) break; /* EOF: the test went away */
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = 0;
        if (len == 0) continue;
        if (!handle_line(h, s, line)) {
            quit = true;
            break;
        }
    }
    free(line);

    th_checks *c = &h->checks;
    int frees_at_return = th_server_free(c, s);

    bool ok = frees_at_return == 1 && atomic_load(&c->userdata_free_outside) == 0 &&
              atomic_load(&c->calls_after_free) == 0 && atomic_load(&c->bad_args) == 0 &&
              atomic_load(&c->overlapping) == 0 && atomic_load(&c->other_thread) == 0 && h->malformed == 0;
    char bye[512];
    snprintf(bye, sizeof bye,
             "{\"userdata_frees\":%d,\"userdata_free_outside_free\":%d,\"callbacks\":%d,"
             "\"callbacks_after_free\":%d,\"bad_callbacks\":%d,\"overlapping\":%d,\"other_thread\":%d,"
             "\"malformed\":%d,\"ok\":%s}",
             frees_at_return, atomic_load(&c->userdata_free_outside), atomic_load(&c->calls),
             atomic_load(&c->calls_after_free), atomic_load(&c->bad_args), atomic_load(&c->overlapping),
             atomic_load(&c->other_thread), h->malformed, ok ? "true" : "false");
    write_line(h, "bye", "", "", 0, bye);

    th_checks_destroy(c);
    pthread_mutex_destroy(&h->out_mu);
    free(h);
    if (!quit) return 3;
    return ok ? 0 : 1;
}
