/*
 * Logs and metrics through the C ABI, under ASan/UBSan/LSan:
 * - sfu_server_set_log_callback: records reach the callback on the notifier thread
 *   (the thread of on_event), never concurrently with it, a request's debug record
 *   before its response; each server at its own logLevel; replacing the callback runs
 *   the old userdata_free once, after its last record; sfu_server_free runs the log
 *   userdata_free once, before the event userdata_free, and no log callback after;
 *   refused calls leave userdata_free uncalled; NULL log_fn goes back to stderr.
 * - sfu_server_metrics / sfu_string_free: ownership, lengths, NULL arguments, a call
 *   from inside the callback, a freed server.
 *
 * Build (tests/c_programs.rs does this):
 *   gcc -std=c11 -Wall -Wextra -Werror -fsanitize=address,undefined \
 *       -Iinclude tests/c/observability.c -Ltarget/release -lsfu \
 *       -Wl,-rpath,$PWD/target/release -lpthread
 *
 * Exits 1 with "FAIL ..." on the first failed check; the last line on success is
 * "N passed, 0 failed".
 */

#define _POSIX_C_SOURCE 200809L

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sfu.h"

static int passed;

#define CHECK(cond, ...)                                                       \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stdout, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);    \
            fprintf(stdout, __VA_ARGS__);                                      \
            fprintf(stdout, "\n");                                             \
            fflush(stdout);                                                    \
            exit(1);                                                           \
        }                                                                      \
    } while (0)

#define CHECK_RESULT(call, want)                                                         \
    do {                                                                                 \
        sfu_result r_ = (call);                                                          \
        CHECK(r_ == (want), "%s returned %d, want %d; sfu_last_error: \"%s\"", #call,    \
              (int)r_, (int)(want), sfu_last_error());                                   \
    } while (0)

#define WAIT_MS 10000

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* What one server's callbacks saw, in order: a journal of short lines. */
#define JOURNAL 4096
typedef struct {
    pthread_mutex_t mu;
    char *lines[JOURNAL];
    int n;
    pthread_t notifier;
    bool notifier_known;
    atomic_int inside;      /* callbacks running right now (must stay <= 1) */
    atomic_int overlap;     /* times a callback found another one running */
    atomic_int wrong_thread;
    atomic_int event_frees;
    atomic_int responses;
    sfu_server *server;     /* for the metrics call from inside the callback */
    atomic_int metrics_in_callback; /* 1: ok, -1: failed */
} journal;

static void jinit(journal *j) {
    memset(j, 0, sizeof *j);
    pthread_mutex_init(&j->mu, NULL);
}

static void jadd(journal *j, const char *fmt, const char *a, const char *b) {
    char buf[512];
    snprintf(buf, sizeof buf, fmt, a, b);
    pthread_mutex_lock(&j->mu);
    if (j->n < JOURNAL) j->lines[j->n++] = strdup(buf);
    pthread_mutex_unlock(&j->mu);
}

/* Index of the first line containing `needle` at or after `from`, or -1. */
static int jfind(journal *j, const char *needle, int from) {
    int at = -1;
    pthread_mutex_lock(&j->mu);
    for (int i = from; i < j->n; i++) {
        if (strstr(j->lines[i], needle)) {
            at = i;
            break;
        }
    }
    pthread_mutex_unlock(&j->mu);
    return at;
}

static int jcount(journal *j, const char *needle) {
    int c = 0;
    pthread_mutex_lock(&j->mu);
    for (int i = 0; i < j->n; i++) c += strstr(j->lines[i], needle) != NULL;
    pthread_mutex_unlock(&j->mu);
    return c;
}

static void jdone(journal *j) {
    for (int i = 0; i < j->n; i++) free(j->lines[i]);
    pthread_mutex_destroy(&j->mu);
}

static void enter(journal *j) {
    if (atomic_fetch_add(&j->inside, 1) != 0) atomic_fetch_add(&j->overlap, 1);
    pthread_mutex_lock(&j->mu);
    if (!j->notifier_known) {
        j->notifier = pthread_self();
        j->notifier_known = true;
    } else if (!pthread_equal(j->notifier, pthread_self())) {
        atomic_fetch_add(&j->wrong_thread, 1);
    }
    pthread_mutex_unlock(&j->mu);
}

static void leave(journal *j) { atomic_fetch_sub(&j->inside, 1); }

static void on_event(void *ud, sfu_event_kind kind, const char *room, const char *peer, uint64_t request_id,
                     const char *json, size_t len) {
    journal *j = ud;
    (void)room;
    (void)len;
    enter(j);
    char id[32];
    snprintf(id, sizeof id, "%llu", (unsigned long long)request_id);
    if (kind == SFU_EVENT_KIND_RESPONSE) {
        jadd(j, "response %s %s", id, json);
        if (request_id == 77) {
            /* Metrics from inside the callback: allowed. */
            char *text = NULL;
            size_t n = 0;
            sfu_result r = sfu_server_metrics(j->server, &text, &n);
            bool ok = r == SFU_RESULT_OK && text && strlen(text) == n && strstr(text, "sfu_rooms ");
            atomic_store(&j->metrics_in_callback, ok ? 1 : -1);
            sfu_string_free(text);
        }
        atomic_fetch_add(&j->responses, 1);
    } else {
        jadd(j, "event %s %s", peer, json);
    }
    leave(j);
}

static void on_event_free(void *ud) {
    journal *j = ud;
    jadd(j, "%sevent userdata_free%s", "", "");
    atomic_fetch_add(&j->event_frees, 1);
}

/* The log callback's userdata: its journal and a name; counts its finalizer. */
typedef struct {
    journal *j;
    const char *name;
    atomic_int frees;
    atomic_int records;
} log_ud;

static const char *level_name(sfu_log_level l) {
    switch (l) {
    case SFU_LOG_LEVEL_ERROR: return "error";
    case SFU_LOG_LEVEL_WARN: return "warn";
    case SFU_LOG_LEVEL_DEBUG: return "debug";
    }
    return "?";
}

static void on_log(void *ud, sfu_log_level level, const char *target, const char *message) {
    log_ud *l = ud;
    enter(l->j);
    char head[64];
    snprintf(head, sizeof head, "log %s %s", l->name, level_name(level));
    char body[400];
    snprintf(body, sizeof body, "%s: %s", target, message);
    jadd(l->j, "%s %s", head, body);
    CHECK(atomic_load(&l->frees) == 0, "a record after %s's userdata_free", l->name);
    atomic_fetch_add(&l->records, 1);
    leave(l->j);
}

static void on_log_free(void *ud) {
    log_ud *l = ud;
    jadd(l->j, "log %s userdata_free%s", l->name, "");
    atomic_fetch_add(&l->frees, 1);
}

static bool wait_responses(journal *j, int n) {
    for (int i = 0; i < WAIT_MS; i += 2) {
        if (atomic_load(&j->responses) >= n) return true;
        sleep_ms(2);
    }
    return false;
}

static sfu_server *start(journal *j, const char *level) {
    char cfg[128];
    snprintf(cfg, sizeof cfg, "{\"numWorkers\":1,\"rtcIPv4\":\"127.0.0.1\",\"logLevel\":\"%s\"}", level);
    sfu_server *s = NULL;
    CHECK_RESULT(sfu_server_new(cfg, on_event, j, on_event_free, &s), SFU_RESULT_OK);
    j->server = s;
    CHECK_RESULT(sfu_server_create_room(s, "r", NULL), SFU_RESULT_OK);
    return s;
}

static const char *QUERY = "{\"method\":\"queryRoom\",\"target\":\"room\"}";

int main(void) {
    /* 1. Records reach the callback, ordered with the events, on the notifier thread;
     *    a second server at "error" level gets no debug record. */
    journal ja, jb;
    jinit(&ja);
    jinit(&jb);
    sfu_server *a = start(&ja, "debug");
    sfu_server *b = start(&jb, "error");
    log_ud la1 = {&ja, "a1", 0, 0}, la2 = {&ja, "a2", 0, 0}, lb = {&jb, "b", 0, 0};
    CHECK_RESULT(sfu_server_set_log_callback(a, on_log, &la1, on_log_free), SFU_RESULT_OK);
    CHECK_RESULT(sfu_server_set_log_callback(b, on_log, &lb, on_log_free), SFU_RESULT_OK);
    CHECK_RESULT(sfu_server_request(a, "r", "alice", 1, QUERY), SFU_RESULT_OK);
    CHECK_RESULT(sfu_server_request(b, "r", "alice", 1, QUERY), SFU_RESULT_OK);
    CHECK(wait_responses(&ja, 1) && wait_responses(&jb, 1), "responses");
    int rec = jfind(&ja, "log a1 debug sfu::room: room r: request 1 from alice", 0);
    int resp = jfind(&ja, "response 1 ", 0);
    CHECK(rec >= 0 && resp > rec, "record %d before response %d", rec, resp);
    CHECK(jcount(&jb, "log b") == 0, "server b is at error level");
    passed++;

    /* 2. Replacing the callback: a1's userdata_free runs once, after its last record,
     *    before anything produced after the call. */
    CHECK_RESULT(sfu_server_set_log_callback(a, on_log, &la2, on_log_free), SFU_RESULT_OK);
    CHECK_RESULT(sfu_server_request(a, "r", "bob", 2, QUERY), SFU_RESULT_OK);
    CHECK(wait_responses(&ja, 2), "response 2");
    int freed = jfind(&ja, "log a1 userdata_free", 0);
    CHECK(freed >= 0 && atomic_load(&la1.frees) == 1, "a1 freed once");
    CHECK(jfind(&ja, "log a1 debug", freed) < 0, "no a1 record after its free");
    CHECK(jfind(&ja, "log a2 debug sfu::room: room r: request 2 from bob", freed) > freed, "a2 got request 2");
    passed++;

    /* 3. Misuse and refusals. */
    CHECK_RESULT(sfu_server_set_log_callback(NULL, on_log, &la2, on_log_free), SFU_RESULT_NULL_ARGUMENT);
    char *text = (char *)1;
    size_t n = 12345;
    CHECK_RESULT(sfu_server_metrics(NULL, &text, &n), SFU_RESULT_NULL_ARGUMENT);
    CHECK_RESULT(sfu_server_metrics(a, NULL, &n), SFU_RESULT_NULL_ARGUMENT);
    CHECK(text == (char *)1 && n == 12345, "out-parameters untouched on failure");
    sfu_string_free(NULL);
    passed++;

    /* 4. Metrics: owned text of the stated length; the figures of this server. */
    text = NULL;
    CHECK_RESULT(sfu_server_metrics(a, &text, &n), SFU_RESULT_OK);
    CHECK(text && strlen(text) == n, "length %zu", n);
    CHECK(strstr(text, "\nsfu_rooms 1\n"), "one room:\n%s", text);
    CHECK(strstr(text, "# TYPE sfu_worker_batch_latency_seconds histogram\n"), "histogram declared");
    CHECK(strstr(text, "sfu_datagrams_dropped_total{protocol=\"udp\",reason=\"unknown_source\"} "), "drop counter");
    CHECK(text[n - 1] == '\n', "ends with a newline");
    sfu_string_free(text);
    text = NULL;
    CHECK_RESULT(sfu_server_metrics(b, &text, NULL), SFU_RESULT_OK);
    CHECK(text && strstr(text, "sfu_workers 1\n"), "out_len may be NULL");
    sfu_string_free(text);
    CHECK_RESULT(sfu_server_request(a, "r", "carol", 77, QUERY), SFU_RESULT_OK);
    CHECK(wait_responses(&ja, 3), "response 77");
    CHECK(atomic_load(&ja.metrics_in_callback) == 1, "sfu_server_metrics from the callback");
    passed++;

    /* 5. NULL log_fn: stderr again; the userdata_free given with it still runs once. */
    log_ud lnull = {&jb, "null", 0, 0};
    CHECK_RESULT(sfu_server_set_log_callback(b, NULL, &lnull, on_log_free), SFU_RESULT_OK);
    CHECK_RESULT(sfu_server_request(b, "r", "x", 2, QUERY), SFU_RESULT_OK);
    CHECK(wait_responses(&jb, 2), "b response 2");
    CHECK(atomic_load(&lb.frees) == 1 && atomic_load(&lnull.frees) == 1, "b: %d, null: %d", atomic_load(&lb.frees),
          atomic_load(&lnull.frees));
    passed++;

    /* 6. sfu_server_free: the shutdown's records, then the log userdata_free, then the
     *    event userdata_free; nothing after; a freed server refuses both calls without
     *    taking the userdata. */
    CHECK_RESULT(sfu_server_request(a, "r", "dave", 3, "{\"method\":\"join\"}"), SFU_RESULT_OK);
    sfu_server_free(a);
    CHECK(atomic_load(&la2.frees) == 1 && atomic_load(&ja.event_frees) == 1, "both finalizers ran once");
    int lf = jfind(&ja, "log a2 userdata_free", 0), ef = jfind(&ja, "event userdata_free", 0);
    CHECK(lf >= 0 && ef > lf, "log finalizer %d before event finalizer %d", lf, ef);
    CHECK(jfind(&ja, "log a2", lf + 1) < 0, "no record after the log finalizer");
    int records = atomic_load(&la2.records);
    log_ud late = {&ja, "late", 0, 0};
    CHECK_RESULT(sfu_server_set_log_callback(a, on_log, &late, on_log_free), SFU_RESULT_SERVER_CLOSED);
    CHECK_RESULT(sfu_server_metrics(a, &text, &n), SFU_RESULT_SERVER_CLOSED);
    sleep_ms(50);
    CHECK(atomic_load(&late.frees) == 0 && atomic_load(&la2.records) == records, "nothing after free");
    sfu_server_free(b);
    CHECK(atomic_load(&jb.event_frees) == 1, "b freed");
    CHECK(atomic_load(&ja.overlap) == 0 && atomic_load(&jb.overlap) == 0, "callbacks never overlapped");
    CHECK(atomic_load(&ja.wrong_thread) == 0 && atomic_load(&jb.wrong_thread) == 0,
          "log and event callbacks on one thread per server");
    passed++;

    jdone(&ja);
    jdone(&jb);
    printf("%d passed, 0 failed\n", passed);
    return 0;
}
