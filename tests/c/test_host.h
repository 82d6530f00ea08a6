/*
 * test_host.h: what the C test programs of tests/c/ share. Header-only (static inline
 * functions, one copy per program), C11 with POSIX threads, warning-free under
 * -Wall -Wextra -Werror and clean under ASan/UBSan/LSan and TSan.
 *
 * Include it first, after the program's feature macro if it needs one
 * (_GNU_SOURCE); without one it selects POSIX.1-2008.
 *
 *   Reporting     CHECK(cond, fmt, ...), CHECK_RESULT(call, want): a failed check prints
 *                 "FAIL [test] file:line: cond: message" and ends the program (exit 1);
 *                 th_begin/th_end bracket a named test ("ok - name");
 *                 th_finish() prints the closing "N passed, 0 failed" line that
 *                 crates/sfu-testkit/src/cbuild.rs (assert_passed_line) parses.
 *   Time          monotonic deadlines (th_deadline_in, th_expired), th_sleep_ms, bounded
 *                 polling (th_poll, th_wait_at_least).
 *   Callback      th_checks: the callback's contract (include/sfu.h) watched from inside
 *                 it (one thread, never concurrent, well-formed arguments, no call after
 *                 sfu_server_free returned) and the userdata_free bookkeeping
 *                 (exactly once, during sfu_server_free).
 *   Events        th_recorder: a thread-safe queue of copied events, taken by request id,
 *                 by peer, by peer and method, with a bounded wait.
 *   th_host       th_checks + th_recorder + the callback pair (th_host_on_event,
 *                 th_host_userdata_free) for a program that just needs the events.
 *   Request ids   th_ids: an atomic generator.
 *   Strings       th_sb: a growable string with JSON string escaping.
 *   Process       threads and fds of this process (/proc), library threads left.
 */

#ifndef SFU_TEST_HOST_H
#define SFU_TEST_HOST_H

#if !defined(_POSIX_C_SOURCE) && !defined(_GNU_SOURCE)
#define _POSIX_C_SOURCE 200809L
#endif

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sfu.h"

#if defined(__GNUC__)
#define TH_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#else
#define TH_PRINTF(fmt, args)
#endif

/* ------------------------------------------------------------------------- */
/* Reporting                                                                  */

typedef struct {
    const char *_Atomic current; /* the running test's name, for FAIL lines */
    int passed;                  /* tests ended with th_end (main thread) */
    atomic_long checks;          /* CHECKs that held, any thread */
    atomic_flag failing;         /* set by the first failed CHECK */
} th_report_state;

static inline th_report_state *th_report(void) {
    static th_report_state state = {.current = "?", .failing = ATOMIC_FLAG_INIT};
    return &state;
}

static inline _Noreturn void th_fail(const char *file, int line, const char *cond, const char *fmt, ...)
    TH_PRINTF(4, 5);

/* One FAIL line, then exit(1). Only the first failing thread reports: another one
 * that fails meanwhile waits for the exit. */
static inline _Noreturn void th_fail(const char *file, int line, const char *cond, const char *fmt, ...) {
    if (atomic_flag_test_and_set(&th_report()->failing))
        for (;;) {
            struct timespec t = {1, 0};
            nanosleep(&t, NULL);
        }
    flockfile(stdout);
    fprintf(stdout, "FAIL [%s] %s:%d: %s: ", atomic_load(&th_report()->current), file, line, cond);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stdout, fmt, ap);
    va_end(ap);
    fprintf(stdout, "\n");
    fflush(stdout);
    funlockfile(stdout);
    exit(1);
}

/* A failed check ends the program: what follows a CHECK may rely on it. */
#define CHECK(cond, ...)                                            \
    do {                                                            \
        if (cond) atomic_fetch_add(&th_report()->checks, 1);        \
        else th_fail(__FILE__, __LINE__, #cond, __VA_ARGS__);       \
    } while (0)

#define CHECK_RESULT(call, want)                                                              \
    do {                                                                                      \
        sfu_result th_r_ = (call);                                                            \
        CHECK(th_r_ == (want), "%s returned %d, want %d (%s); sfu_last_error: \"%s\"", #call, \
              (int)th_r_, (int)(want), #want, sfu_last_error());                              \
    } while (0)

static inline void th_begin(const char *name) { atomic_store(&th_report()->current, name); }

static inline void th_end(void) {
    th_report_state *r = th_report();
    r->passed++;
    printf("ok - %s\n", atomic_load(&r->current));
    fflush(stdout);
}

/* The closing lines; returns main's exit status. */
static inline int th_finish(void) {
    th_report_state *r = th_report();
    printf("# %ld checks held\n", (long)atomic_load(&r->checks));
    printf("%d passed, 0 failed\n", r->passed);
    fflush(stdout);
    return 0;
}

/* ------------------------------------------------------------------------- */
/* Time: CLOCK_MONOTONIC only                                                 */

static inline struct timespec th_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t;
}

static inline double th_now_s(void) {
    struct timespec t = th_now();
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static inline void th_sleep_ms(long ms) {
    struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&t, &t) != 0 && errno == EINTR) {
    }
}

/* A point in time on CLOCK_MONOTONIC; `at` suits pthread_cond_timedwait on a
 * condition variable from th_cond_init. */
typedef struct {
    struct timespec at;
} th_deadline;

static inline th_deadline th_deadline_in(long ms) {
    th_deadline d = {th_now()};
    d.at.tv_sec += ms / 1000;
    d.at.tv_nsec += (ms % 1000) * 1000000L;
    if (d.at.tv_nsec >= 1000000000L) {
        d.at.tv_sec++;
        d.at.tv_nsec -= 1000000000L;
    }
    return d;
}

static inline bool th_expired(th_deadline d) {
    struct timespec t = th_now();
    return t.tv_sec > d.at.tv_sec || (t.tv_sec == d.at.tv_sec && t.tv_nsec >= d.at.tv_nsec);
}

/* A condition variable whose timed waits use CLOCK_MONOTONIC. */
static inline void th_cond_init(pthread_cond_t *cv) {
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(cv, &ca);
    pthread_condattr_destroy(&ca);
}

/* Polls `done(arg)` every `step_ms` until it holds or `ms` have passed; returns
 * its last value. */
static inline bool th_poll(bool (*done)(void *arg), void *arg, long ms, long step_ms) {
    th_deadline d = th_deadline_in(ms);
    for (;;) {
        if (done(arg)) return true;
        if (th_expired(d)) return done(arg);
        th_sleep_ms(step_ms);
    }
}

typedef struct {
    atomic_int *v;
    int want;
} th_at_least_arg;

static inline bool th_at_least_done(void *p) {
    th_at_least_arg *a = p;
    return atomic_load(a->v) >= a->want;
}

/* Waits (polling every 5 ms) until `*v` is at least `want`, for at most `ms`. */
static inline bool th_wait_at_least(atomic_int *v, int want, long ms) {
    th_at_least_arg a = {v, want};
    return th_poll(th_at_least_done, &a, ms, 5);
}

/* ------------------------------------------------------------------------- */
/* Strings                                                                    */

static inline char *th_strdup(const char *s) {
    char *d = strdup(s);
    if (!d) abort();
    return d;
}

/* A growable NUL-terminated string; {0} is empty, free(b.p) releases it. */
typedef struct {
    char *p;
    size_t len, cap;
} th_sb;

static inline void th_sb_putn(th_sb *b, const char *s, size_t n) {
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 128;
        while (b->len + n + 1 > cap) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) abort();
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
}

static inline void th_sb_puts(th_sb *b, const char *s) { th_sb_putn(b, s, strlen(s)); }

static inline void th_sb_printf(th_sb *b, const char *fmt, ...) TH_PRINTF(2, 3);

static inline void th_sb_printf(th_sb *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) abort();
    char *tmp = malloc((size_t)n + 1);
    if (!tmp) abort();
    va_start(ap, fmt);
    vsnprintf(tmp, (size_t)n + 1, fmt, ap);
    va_end(ap);
    th_sb_putn(b, tmp, (size_t)n);
    free(tmp);
}

/* A JSON string literal, quotes included: `"` and `\` escaped, control characters
 * as \u00XX, everything else (UTF-8 included) verbatim. */
static inline void th_sb_json_str(th_sb *b, const char *s) {
    th_sb_puts(b, "\"");
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        char tmp[8];
        if (*c == '"' || *c == '\\') {
            tmp[0] = '\\';
            tmp[1] = (char)*c;
            th_sb_putn(b, tmp, 2);
        } else if (*c < 0x20) {
            snprintf(tmp, sizeof tmp, "\\u%04x", *c);
            th_sb_puts(b, tmp);
        } else {
            th_sb_putn(b, (const char *)c, 1);
        }
    }
    th_sb_puts(b, "\"");
}

/* Whether compact JSON text (as the library writes it) has "method":"<method>". */
static inline bool th_json_method_is(const char *json, const char *method) {
    char want[128];
    int n = snprintf(want, sizeof want, "\"method\":\"%s\"", method);
    return n > 0 && (size_t)n < sizeof want && strstr(json, want) != NULL;
}

/* ------------------------------------------------------------------------- */
/* Request ids                                                                */

/* Request ids above 2^32: the id is the host's opaque u64 and must come back intact. */
#define TH_HIGH_IDS ((UINT64_C(7) << 32) + 1)

typedef struct {
    atomic_uint_fast64_t next;
} th_ids;

static inline void th_ids_init(th_ids *ids, uint64_t first) { atomic_init(&ids->next, first); }

/* A fresh id (any thread). */
static inline uint64_t th_ids_take(th_ids *ids) { return (uint64_t)atomic_fetch_add(&ids->next, 1); }

/* The id the next th_ids_take returns. */
static inline uint64_t th_ids_peek(th_ids *ids) { return (uint64_t)atomic_load(&ids->next); }

/* ------------------------------------------------------------------------- */
/* The callback's contract and the userdata_free bookkeeping                  */

typedef struct {
    atomic_int calls;
    atomic_int in_callback;
    atomic_int overlapping;  /* a callback started while another was running */
    atomic_int bad_args;     /* NULL strings, wrong json_len, not an object, bad kind/request_id */
    atomic_int other_thread; /* a callback on a thread other than the first one's */
    pthread_mutex_t thread_mu;
    pthread_t cb_thread;
    bool have_cb_thread;
    /* sfu_server_free and userdata_free */
    atomic_bool free_started;
    atomic_bool free_returned;
    atomic_int calls_after_free;      /* callbacks that started after a free returned */
    atomic_int userdata_frees;        /* userdata_free runs */
    atomic_int userdata_free_outside; /* ...outside sfu_server_free (before it, or after it returned) */
    atomic_int frees_at_return;       /* userdata_free runs when sfu_server_free returned */
} th_checks;

static inline void th_checks_init(th_checks *c) {
    memset(c, 0, sizeof *c);
    pthread_mutex_init(&c->thread_mu, NULL);
}

static inline void th_checks_destroy(th_checks *c) { pthread_mutex_destroy(&c->thread_mu); }

/* First thing in the callback. Returns whether the arguments are well-formed (bad ones
 * are counted); every th_callback_enter is paired with a th_callback_leave. */
static inline bool th_callback_enter(th_checks *c, sfu_event_kind kind, const char *room, const char *peer,
                                     uint64_t request_id, const char *json, size_t json_len) {
    atomic_fetch_add(&c->calls, 1);
    if (atomic_load(&c->free_returned)) atomic_fetch_add(&c->calls_after_free, 1);
    if (atomic_fetch_add(&c->in_callback, 1) != 0) atomic_fetch_add(&c->overlapping, 1);
    pthread_mutex_lock(&c->thread_mu);
    if (!c->have_cb_thread) {
        c->cb_thread = pthread_self();
        c->have_cb_thread = true;
    } else if (!pthread_equal(c->cb_thread, pthread_self())) {
        atomic_fetch_add(&c->other_thread, 1);
    }
    pthread_mutex_unlock(&c->thread_mu);
    bool ok = room && peer && json && strlen(json) == json_len && json[0] == '{' &&
              (kind == SFU_EVENT_KIND_RESPONSE || kind == SFU_EVENT_KIND_NOTIFICATION ||
               kind == SFU_EVENT_KIND_HOST) &&
              (kind == SFU_EVENT_KIND_RESPONSE || request_id == 0);
    if (!ok) atomic_fetch_add(&c->bad_args, 1);
    return ok;
}

/* Last thing in the callback. */
static inline void th_callback_leave(th_checks *c) { atomic_fetch_sub(&c->in_callback, 1); }

/* The body of a userdata_free. */
static inline void th_userdata_freed(th_checks *c) {
    atomic_fetch_add(&c->userdata_frees, 1);
    if (!atomic_load(&c->free_started) || atomic_load(&c->free_returned))
        atomic_fetch_add(&c->userdata_free_outside, 1);
}

/* sfu_server_free with the bookkeeping (any thread; several at once is fine).
 * Returns how many times userdata_free had run when it returned. */
static inline int th_server_free(th_checks *c, sfu_server *s) {
    atomic_store(&c->free_started, true);
    sfu_server_free(s);
    int frees = atomic_load(&c->userdata_frees);
    atomic_store(&c->frees_at_return, frees);
    atomic_store(&c->free_returned, true);
    return frees;
}

/* The callback's invariants so far. */
static inline void th_check_callbacks(th_checks *c, const char *what) {
    CHECK(atomic_load(&c->overlapping) == 0, "%s: the callback ran concurrently with itself", what);
    CHECK(atomic_load(&c->bad_args) == 0,
          "%s: the callback got NULL strings, a wrong json_len, a non-object or a bad kind/request_id", what);
    CHECK(atomic_load(&c->other_thread) == 0, "%s: the callback ran on more than one thread", what);
}

/* After th_server_free: userdata_free had run exactly once when it returned, and ran
 * within it; no callback starts after it returned (watched for `settle_ms`); and the
 * callback's invariants held throughout. */
static inline void th_check_freed(th_checks *c, const char *what, long settle_ms) {
    CHECK(atomic_load(&c->free_returned), "%s: th_check_freed before th_server_free", what);
    CHECK(atomic_load(&c->frees_at_return) == 1, "%s: userdata_free ran %d times by the time sfu_server_free returned",
          what, atomic_load(&c->frees_at_return));
    int calls = atomic_load(&c->calls);
    if (settle_ms > 0) th_sleep_ms(settle_ms);
    CHECK(atomic_load(&c->calls_after_free) == 0 && atomic_load(&c->calls) == calls,
          "%s: %d callbacks ran after sfu_server_free returned", what, atomic_load(&c->calls_after_free));
    CHECK(atomic_load(&c->userdata_frees) == 1, "%s: userdata_free ran %d times", what,
          atomic_load(&c->userdata_frees));
    CHECK(atomic_load(&c->userdata_free_outside) == 0, "%s: userdata_free ran outside sfu_server_free", what);
    th_check_callbacks(c, what);
}

/* ------------------------------------------------------------------------- */
/* The event recorder                                                         */

typedef struct th_event {
    struct th_event *next;
    sfu_event_kind kind;
    char *room, *peer, *json; /* copies */
    uint64_t request_id;
} th_event;

static inline th_event *th_event_new(sfu_event_kind kind, const char *room, const char *peer, uint64_t request_id,
                                     const char *json) {
    th_event *e = calloc(1, sizeof *e);
    if (!e) abort();
    e->kind = kind;
    e->room = th_strdup(room);
    e->peer = th_strdup(peer);
    e->json = th_strdup(json);
    e->request_id = request_id;
    return e;
}

static inline void th_event_free(th_event *e) {
    if (!e) return;
    free(e->room);
    free(e->peer);
    free(e->json);
    free(e);
}

/* Events in delivery order; any thread may add or take. */
typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    th_event *head, *tail;
} th_recorder;

static inline void th_recorder_init(th_recorder *r) {
    memset(r, 0, sizeof *r);
    pthread_mutex_init(&r->mu, NULL);
    th_cond_init(&r->cv);
}

static inline void th_recorder_destroy(th_recorder *r) {
    for (th_event *e = r->head; e;) {
        th_event *n = e->next;
        th_event_free(e);
        e = n;
    }
    r->head = r->tail = NULL;
    pthread_cond_destroy(&r->cv);
    pthread_mutex_destroy(&r->mu);
}

/* Appends `e` (the recorder owns it now) and wakes the waiters. */
static inline void th_recorder_push(th_recorder *r, th_event *e) {
    e->next = NULL;
    pthread_mutex_lock(&r->mu);
    if (r->tail) r->tail->next = e;
    else r->head = e;
    r->tail = e;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

typedef bool (*th_matcher)(const th_event *e, const void *arg);

/* The first queued event matching `m`, removed (the caller frees it); waits at most
 * `timeout_ms` for one (0: only what is queued now); NULL if none came. */
static inline th_event *th_take(th_recorder *r, th_matcher m, const void *arg, long timeout_ms) {
    th_deadline d = th_deadline_in(timeout_ms);
    th_event *found = NULL;
    pthread_mutex_lock(&r->mu);
    for (;;) {
        th_event *prev = NULL;
        for (th_event *e = r->head; e; prev = e, e = e->next) {
            if (m(e, arg)) {
                if (prev) prev->next = e->next;
                else r->head = e->next;
                if (r->tail == e) r->tail = prev;
                e->next = NULL;
                found = e;
                break;
            }
        }
        if (found || pthread_cond_timedwait(&r->cv, &r->mu, &d.at) == ETIMEDOUT) break;
    }
    pthread_mutex_unlock(&r->mu);
    return found;
}

static inline bool th_match_response(const th_event *e, const void *arg) {
    return e->kind == SFU_EVENT_KIND_RESPONSE && e->request_id == *(const uint64_t *)arg;
}

static inline bool th_match_any_response(const th_event *e, const void *arg) {
    (void)arg;
    return e->kind == SFU_EVENT_KIND_RESPONSE;
}

static inline bool th_match_notification_for(const th_event *e, const void *arg) {
    return e->kind == SFU_EVENT_KIND_NOTIFICATION && !strcmp(e->peer, (const char *)arg);
}

typedef struct {
    const char *peer; /* NULL: any peer */
    const char *method;
} th_method_match;

static inline bool th_match_notification_method(const th_event *e, const void *arg) {
    const th_method_match *m = arg;
    return e->kind == SFU_EVENT_KIND_NOTIFICATION && (!m->peer || !strcmp(e->peer, m->peer)) &&
           th_json_method_is(e->json, m->method);
}

static inline bool th_match_host_event(const th_event *e, const void *arg) {
    (void)arg;
    return e->kind == SFU_EVENT_KIND_HOST;
}

/* The response to request `id`, or NULL after `timeout_ms`. */
static inline th_event *th_wait_response(th_recorder *r, uint64_t id, long timeout_ms) {
    return th_take(r, th_match_response, &id, timeout_ms);
}

/* The next notification for `peer` in delivery order, whatever its method. */
static inline th_event *th_next_notification(th_recorder *r, const char *peer, long timeout_ms) {
    return th_take(r, th_match_notification_for, peer, timeout_ms);
}

/* The first notification with `method` for `peer` (NULL: any peer), skipping others. */
static inline th_event *th_wait_notification(th_recorder *r, const char *peer, const char *method, long timeout_ms) {
    th_method_match m = {peer, method};
    return th_take(r, th_match_notification_method, &m, timeout_ms);
}

/* ------------------------------------------------------------------------- */
/* th_host: checks + recorder, with a ready-made callback pair                 */

typedef struct {
    th_checks checks;
    th_recorder events;
    /* Optional: runs inside the callback on every well-formed event, before it is
     * recorded (re-entrancy tests). */
    void (*hook)(void *hook_arg, const th_event *e);
    void *hook_arg;
} th_host;

static inline void th_host_init(th_host *h) {
    memset(h, 0, sizeof *h);
    th_checks_init(&h->checks);
    th_recorder_init(&h->events);
}

static inline void th_host_destroy(th_host *h) {
    th_recorder_destroy(&h->events);
    th_checks_destroy(&h->checks);
}

/* An sfu_event_fn; userdata is the th_host. Records every well-formed event. */
static inline void th_host_on_event(void *userdata, sfu_event_kind kind, const char *room_id, const char *peer_name,
                                    uint64_t request_id, const char *json, size_t json_len) {
    th_host *h = userdata;
    if (th_callback_enter(&h->checks, kind, room_id, peer_name, request_id, json, json_len)) {
        th_event *e = th_event_new(kind, room_id, peer_name, request_id, json);
        if (h->hook) h->hook(h->hook_arg, e);
        th_recorder_push(&h->events, e);
    }
    th_callback_leave(&h->checks);
}

/* An sfu_userdata_free_fn; userdata is the th_host. */
static inline void th_host_userdata_free(void *userdata) {
    th_host *h = userdata;
    th_userdata_freed(&h->checks);
}

/* sfu_server_new with th_host's callback pair; must succeed. */
static inline sfu_server *th_host_new_server(th_host *h, const char *config) {
    sfu_server *s = NULL;
    CHECK_RESULT(sfu_server_new(config, th_host_on_event, h, th_host_userdata_free, &s), SFU_RESULT_OK);
    CHECK(s != NULL, "sfu_server_new wrote the handle");
    return s;
}

/* ------------------------------------------------------------------------- */
/* This process: threads and file descriptors (Linux /proc)                    */

/* Entries of a /proc directory (not . and ..); -1 if it cannot be read. */
static inline int th_count_dir(const char *path) {
    DIR *d = opendir(path);
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.') n++;
    closedir(d);
    return n;
}

static inline int th_count_threads(void) { return th_count_dir("/proc/self/task"); }
static inline int th_count_fds(void) { return th_count_dir("/proc/self/fd"); }

/* Threads of this process named sfu-* (the library's workers and notifier). */
static inline int th_count_library_threads(void) {
    DIR *d = opendir("/proc/self/task");
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char path[300], comm[64] = "";
        snprintf(path, sizeof path, "/proc/self/task/%s/comm", e->d_name);
        FILE *f = fopen(path, "r");
        if (f) {
            if (!fgets(comm, sizeof comm, f)) comm[0] = 0;
            fclose(f);
        }
        if (!strncmp(comm, "sfu-", 4)) n++;
    }
    if (d) closedir(d);
    return n;
}

/* No library thread left: none named sfu-*, and (without ThreadSanitizer, which starts
 * a background thread of its own) as many threads as `before`. */
static inline void th_check_no_library_threads(int before, const char *what) {
    CHECK(th_count_library_threads() == 0, "%s: %d library threads left", what, th_count_library_threads());
#if !defined(__SANITIZE_THREAD__)
    CHECK(th_count_threads() == before, "%s: %d threads left, want %d", what, th_count_threads(), before);
#else
    (void)before;
#endif
}

#endif /* SFU_TEST_HOST_H */
