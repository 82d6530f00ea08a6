/*
 * sfu_server_free's guarantees under the ways a host can get shutdown wrong
 * (include/sfu.h: sfu_event_fn and sfu_server_free), each once a repro of a bug:
 *
 *  1. sfu_server_free called from inside the callback: it returns without waiting,
 *     no callback runs after it returned, userdata_free runs exactly once, after the
 *     freeing callback returned; the handle is dead afterwards.
 *  2. Threads sending requests (to an existing room and to an unknown room) while
 *     another calls sfu_server_free: every request whose call returned SFU_RESULT_OK
 *     got exactly one response by the time free returned, every refused one none.
 *     30 runs.
 *  3. Two threads calling sfu_server_free on the same handle at once: both return
 *     only after userdata_free ran, and it runs exactly once. 20 runs.
 *
 * `shutdown` runs 1-3; `shutdown NAME...` runs the named ones: in-callback,
 * racing-requests, double-free, and last-event: the in-callback free on the last
 * queued event (nothing queued behind it), run separately by tests/c_programs.rs.
 *
 * Build (tests/c_programs.rs does this):
 *   gcc -std=c11 -Wall -Wextra -Werror -fsanitize=address,undefined \
 *       -Iinclude tests/c/shutdown.c -Ltarget/release -lsfu \
 *       -Wl,-rpath,$PWD/target/release -lpthread
 *
 * The checks, waits and the callback bookkeeping of 2 and 3 are tests/c/test_host.h's;
 * the in-callback free of 1 has its own (the free runs inside the callback).
 *
 * Exits 1 with "FAIL ..." on the first failed check; the last line on success is
 * "N passed, 0 failed". Every wait is bounded.
 */

#define _POSIX_C_SOURCE 200809L

#include "test_host.h"

/* Every wait is bounded by this. */
#define WAIT_MS 10000

static const char QUERY_ROOM[] = "{\"method\":\"queryRoom\",\"target\":\"room\"}";

/* ------------------------------------------------------------------------- */
/* 1. sfu_server_free from inside the callback                                 */

typedef enum { FREE_ON_RESPONSE, FREE_ON_HOST_EVENT } free_trigger;

typedef struct {
    sfu_server *s;
    free_trigger trigger;
    atomic_int calls;
    atomic_int in_callback;
    atomic_int freed_in_cb;       /* sfu_server_free returned inside the callback */
    atomic_int freeing_cb_done;   /* ...and that callback returned */
    atomic_int late_calls;        /* callbacks that started after that free returned */
    atomic_int frees;             /* userdata_free runs */
    atomic_int free_during_cb;    /* userdata_free ran while a callback was running */
    atomic_int free_before_return;/* userdata_free ran before the freeing callback returned */
    atomic_int bad_result;        /* a call from the callback after free did not say SERVER_CLOSED */
    atomic_int all_queued;        /* the host has queued everything it queues */
} cbfree;

static void cbfree_on_event(void *userdata, sfu_event_kind kind, const char *room_id, const char *peer_name,
                            uint64_t request_id, const char *json, size_t json_len) {
    cbfree *c = userdata;
    (void)room_id;
    (void)peer_name;
    (void)request_id;
    (void)json;
    (void)json_len;
    atomic_fetch_add(&c->calls, 1);
    atomic_fetch_add(&c->in_callback, 1);
    if (atomic_load(&c->freed_in_cb)) {
        atomic_fetch_add(&c->late_calls, 1);
    } else if ((c->trigger == FREE_ON_RESPONSE && kind == SFU_EVENT_KIND_RESPONSE) ||
               (c->trigger == FREE_ON_HOST_EVENT && kind == SFU_EVENT_KIND_HOST)) {
        /* Free only once the host has queued everything: the events behind this one
         * are then really queued (the notifier's queue is one FIFO). */
        if (!th_wait_at_least(&c->all_queued, 1, WAIT_MS)) atomic_fetch_add(&c->bad_result, 1);
        sfu_server_free(c->s);
        atomic_store(&c->freed_in_cb, 1);
        /* Still inside the callback: the handle is already dead for every call. */
        if (sfu_server_request(c->s, "r", "p", 999999, QUERY_ROOM) != SFU_RESULT_SERVER_CLOSED)
            atomic_fetch_add(&c->bad_result, 1);
        if (sfu_server_create_room(c->s, "again", NULL) != SFU_RESULT_SERVER_CLOSED)
            atomic_fetch_add(&c->bad_result, 1);
        /* A second free from the callback is a no-op too. */
        sfu_server_free(c->s);
        if (atomic_load(&c->frees) != 0) atomic_fetch_add(&c->free_before_return, 1);
        atomic_fetch_sub(&c->in_callback, 1);
        atomic_store(&c->freeing_cb_done, 1);
        return;
    }
    atomic_fetch_sub(&c->in_callback, 1);
}

static void cbfree_userdata_free(void *userdata) {
    cbfree *c = userdata;
    if (atomic_load(&c->in_callback) != 0) atomic_fetch_add(&c->free_during_cb, 1);
    if (!atomic_load(&c->freeing_cb_done)) atomic_fetch_add(&c->free_before_return, 1);
    atomic_fetch_add(&c->frees, 1);
}

/* `queued_behind`: how many requests (and notifications to an unknown room) are
 * queued after the triggering event; 0 = the trigger is the last event. */
static void free_in_callback_case(free_trigger trigger, int queued_behind) {
    cbfree *c = calloc(1, sizeof *c); /* heap, freed at the end: ASan reports a late callback's use */
    CHECK(c, "calloc");
    c->trigger = trigger;
    /* Published before the first event can arrive: nothing is queued yet. */
    CHECK_RESULT(sfu_server_new("{\"numWorkers\":1}", cbfree_on_event, c, cbfree_userdata_free, &c->s), SFU_RESULT_OK);
    sfu_server *s = c->s;
    CHECK_RESULT(sfu_server_create_room(s, "r", NULL), SFU_RESULT_OK);
    if (trigger == FREE_ON_RESPONSE) {
        CHECK_RESULT(sfu_server_request(s, "r", "p", 1, QUERY_ROOM), SFU_RESULT_OK);
    } else {
        CHECK_RESULT(sfu_server_notify(s, "nope", "p", "{\"method\":\"leave\",\"notification\":true}"), SFU_RESULT_OK);
    }
    /* Behind the trigger: responses (from the room's worker and, for the unknown
     * room, straight from the call) and notificationError host events. */
    for (int i = 0; i < queued_behind; i++) {
        CHECK_RESULT(sfu_server_request(s, i % 2 ? "r" : "nope", "p", (uint64_t)i + 2, QUERY_ROOM), SFU_RESULT_OK);
        CHECK_RESULT(sfu_server_notify(s, "nope", "p", "{\"method\":\"leave\",\"notification\":true}"),
                     SFU_RESULT_OK);
    }
    atomic_store(&c->all_queued, 1);

    CHECK(th_wait_at_least(&c->freeing_cb_done, 1, WAIT_MS), "the callback freed the server within %d ms",
          WAIT_MS);
    CHECK(th_wait_at_least(&c->frees, 1, WAIT_MS),
          "userdata_free ran within %d ms after sfu_server_free was called from the callback "
          "(%d events were queued behind the freeing one; %d callbacks so far)",
          WAIT_MS, queued_behind, atomic_load(&c->calls));
    int calls = atomic_load(&c->calls);
    th_sleep_ms(150);
    CHECK(atomic_load(&c->late_calls) == 0, "%d callbacks ran after sfu_server_free returned in the callback",
          atomic_load(&c->late_calls));
    CHECK(atomic_load(&c->calls) == calls, "a callback ran after userdata_free");
    CHECK(atomic_load(&c->frees) == 1, "userdata_free ran %d times", atomic_load(&c->frees));
    CHECK(atomic_load(&c->free_during_cb) == 0, "userdata_free ran while a callback was running");
    CHECK(atomic_load(&c->free_before_return) == 0, "userdata_free ran before the freeing callback returned");
    CHECK(atomic_load(&c->bad_result) == 0,
          "calls after the in-callback free did not return SERVER_CLOSED (or the host never finished queueing)");

    /* From the host's thread the handle is dead too; freeing it again is a no-op. */
    CHECK_RESULT(sfu_server_request(s, "r", "p", 5, QUERY_ROOM), SFU_RESULT_SERVER_CLOSED);
    CHECK_RESULT(sfu_server_notify(s, "r", "p", "{\"method\":\"leave\",\"notification\":true}"),
                 SFU_RESULT_SERVER_CLOSED);
    CHECK_RESULT(sfu_server_close_room(s, "r"), SFU_RESULT_SERVER_CLOSED);
    sfu_server_free(s);
    CHECK(atomic_load(&c->frees) == 1, "userdata_free ran again on a second sfu_server_free");
    free(c);
}

static void test_free_in_callback(void) {
    th_begin("sfu_server_free inside the callback");
    for (int run = 0; run < 5; run++) {
        free_in_callback_case(FREE_ON_RESPONSE, 20);
        free_in_callback_case(FREE_ON_HOST_EVENT, 20);
    }
    th_end();
}

static void test_free_in_last_callback(void) {
    th_begin("sfu_server_free inside the callback of the last queued event");
    free_in_callback_case(FREE_ON_RESPONSE, 0);
    free_in_callback_case(FREE_ON_HOST_EVENT, 0);
    th_end();
}

/* ------------------------------------------------------------------------- */
/* 2. Requests racing with sfu_server_free                                     */

/* Two sender threads: sender k uses ids k+1, k+3, k+5, ... The mix of requests
 * changes from run to run (race_mix), as each exposed one of the old bugs best: a
 * request to an unknown room is answered at once on the notifier queue, so a lost
 * answer there (accepted while the notifier was stopping) shows when the workers have
 * little queued and stop fast; a request to the existing room goes through its worker
 * queue. To "r": mostly a request the room answers at once (the peer has not joined),
 * every 16th a queryRoom (real work, answered ok). */
enum { MAXN = 1 << 20, SENDERS = 2, EXTRA_AFTER_REFUSED = 200 };

enum { R_NONE = 0, R_OK, R_ROOM_NOT_FOUND, R_NOT_JOINED, R_TOO_MANY, R_SERVER_CLOSED, R_OTHER };

static const char CREATE_TRANSPORT[] =
    "{\"method\":\"createTransport\",\"target\":\"peer\",\"id\":1,\"direction\":\"recv\",\"options\":{}}";

/* Of every 8 consecutive requests of a sender, how many go to the existing room:
 * 4 (alternating), 1 or 0. Set per run, before the senders start. */
static int race_mix;
static bool race_to_room(long i) { return ((i - 1) / SENDERS) % 8 < race_mix; }
static bool race_is_query(long i) { return ((i - 1) / SENDERS) % 128 == 0; }
static const char *race_request(long i) { return race_is_query(i) ? QUERY_ROOM : CREATE_TRANSPORT; }
static unsigned char race_expected(long i) {
    if (!race_to_room(i)) return R_ROOM_NOT_FOUND;
    return race_is_query(i) ? R_OK : R_NOT_JOINED;
}
/* A right answer to request `i`: the expected one, "server closed", or (to the room)
 * the per-peer limit on pending requests. */
static bool race_answer_ok(long i, unsigned char what) {
    return what == race_expected(i) || what == R_SERVER_CLOSED || (race_to_room(i) && what == R_TOO_MANY);
}

struct race;

typedef struct {
    struct race *r;
    int k;
    long last;            /* the highest id used */
    long refused;         /* calls that returned SERVER_CLOSED */
    int wrong_result;     /* a call returned neither OK nor SERVER_CLOSED */
    int ok_after_refused; /* a call returned OK after one returned SERVER_CLOSED */
} sender;

typedef struct race {
    sfu_server *s;
    unsigned char *got;  /* responses per request id */
    unsigned char *what; /* R_* of the last response per id */
    unsigned char *ok;   /* 1 if the call returned SFU_RESULT_OK (each sender its own ids) */
    sender senders[SENDERS];
    th_checks checks;
    atomic_int bad_ids; /* responses with an id we never used */
    atomic_int started; /* senders whose first call returned */
} race;

static void race_on_event(void *userdata, sfu_event_kind kind, const char *room_id, const char *peer_name,
                          uint64_t request_id, const char *json, size_t json_len) {
    race *r = userdata;
    if (!th_callback_enter(&r->checks, kind, room_id, peer_name, request_id, json, json_len) ||
        kind != SFU_EVENT_KIND_RESPONSE) {
        th_callback_leave(&r->checks);
        return;
    }
    if (request_id == 0 || request_id >= MAXN) {
        atomic_fetch_add(&r->bad_ids, 1);
        th_callback_leave(&r->checks);
        return;
    }
    if (r->got[request_id] < 255) r->got[request_id]++;
    r->what[request_id] = strstr(json, "\"ok\":true")               ? R_OK
                          : strstr(json, "\"room not found\"")    ? R_ROOM_NOT_FOUND
                          : strstr(json, "\"peer not joined\"")   ? R_NOT_JOINED
                          : strstr(json, "too many pending requests") ? R_TOO_MANY
                          : strstr(json, "\"server closed\"")     ? R_SERVER_CLOSED
                                                                  : R_OTHER;
    th_callback_leave(&r->checks);
}

static void race_userdata_free(void *userdata) {
    race *r = userdata;
    th_userdata_freed(&r->checks);
}

/* Sends until the server is closed, then a few more, which must all be refused. */
static void *race_sender(void *arg) {
    sender *me = arg;
    race *r = me->r;
    long extra = -1;
    for (long i = 1 + me->k; i < MAXN; i += SENDERS) {
        sfu_result res = sfu_server_request(r->s, race_to_room(i) ? "r" : "nope", "p", (uint64_t)i, race_request(i));
        me->last = i;
        if (i == 1 + me->k) atomic_fetch_add(&r->started, 1);
        if (res == SFU_RESULT_OK) {
            r->ok[i] = 1;
            if (me->refused) me->ok_after_refused++;
        } else if (res == SFU_RESULT_SERVER_CLOSED) {
            me->refused++;
        } else {
            me->wrong_result++;
        }
        if (me->refused && extra < 0) extra = EXTRA_AFTER_REFUSED;
        if (extra >= 0 && extra-- == 0) break;
    }
    return NULL;
}

static void test_requests_racing_free(void) {
    th_begin("requests racing with sfu_server_free (30 runs)");
    long total_ok = 0, raced_runs = 0;
    for (int run = 0; run < 30; run++) {
        race *r = calloc(1, sizeof *r);
        CHECK(r, "calloc");
        r->got = calloc(MAXN, 1);
        r->what = calloc(MAXN, 1);
        r->ok = calloc(MAXN, 1);
        CHECK(r->got && r->what && r->ok, "calloc");
        th_checks_init(&r->checks);
        CHECK_RESULT(sfu_server_new(run % 2 ? "{\"numWorkers\":2}" : "{\"numWorkers\":1}", race_on_event, r,
                                    race_userdata_free, &r->s),
                     SFU_RESULT_OK);
        CHECK_RESULT(sfu_server_create_room(r->s, "r", NULL), SFU_RESULT_OK);
        race_mix = (int[]){4, 1, 0}[run % 3];
        pthread_t t[SENDERS];
        for (int k = 0; k < SENDERS; k++) {
            r->senders[k] = (sender){.r = r, .k = k};
            CHECK(pthread_create(&t[k], NULL, race_sender, &r->senders[k]) == 0, "pthread_create");
        }
        CHECK(th_wait_at_least(&r->started, SENDERS, WAIT_MS), "run %d: the senders started", run);
        th_sleep_ms(run % 5); /* free at different phases of the burst */
        int frees = th_server_free(&r->checks, r->s);
        CHECK(frees == 1, "run %d: userdata_free ran %d times when sfu_server_free returned", run, frees);
        long last = 0;
        for (int k = 0; k < SENDERS; k++) {
            pthread_join(t[k], NULL);
            sender *me = &r->senders[k];
            CHECK(me->wrong_result == 0, "run %d: %d calls returned neither OK nor SERVER_CLOSED", run,
                  me->wrong_result);
            CHECK(me->ok_after_refused == 0, "run %d: %d calls returned OK after one returned SERVER_CLOSED", run,
                  me->ok_after_refused);
            CHECK(me->refused == EXTRA_AFTER_REFUSED + 1, "run %d: sender %d never saw SERVER_CLOSED (%ld refused)",
                  run, k, me->refused);
            if (me->last > last) last = me->last;
        }
        char what[32];
        snprintf(what, sizeof what, "run %d", run);
        th_check_freed(&r->checks, what, 20);
        CHECK(atomic_load(&r->bad_ids) == 0, "run %d: responses with ids never sent", run);
        /* The callback has stopped (free returned): count now. */
        long n_ok = 0, lost = 0, dup = 0, unexpected = 0, wrong = 0, first_lost = -1;
        for (long i = 1; i <= last; i++) {
            if (r->ok[i]) {
                n_ok++;
                if (r->got[i] == 0) {
                    lost++;
                    if (first_lost < 0) first_lost = i;
                }
                if (r->got[i] > 1) dup++;
                if (r->got[i] == 1 && !race_answer_ok(i, r->what[i])) wrong++;
            } else if (r->got[i]) {
                unexpected++;
            }
        }
        CHECK(lost == 0 && dup == 0 && unexpected == 0 && wrong == 0,
              "run %d: %ld requests accepted: %ld never answered (first id %ld, to %s), %ld answered more than "
              "once, %ld refused ones answered, %ld wrong answers",
              run, n_ok, lost, first_lost, first_lost > 0 && race_to_room(first_lost) ? "the room" : "no room", dup,
              unexpected, wrong);
        total_ok += n_ok;
        if (n_ok > 0) raced_runs++;
        free(r->got);
        free(r->what);
        free(r->ok);
        th_checks_destroy(&r->checks);
        free(r);
    }
    CHECK(raced_runs == 30, "requests were accepted before the free in only %ld of 30 runs", raced_runs);
    printf("# %ld runs raced; %ld requests accepted, each answered exactly once\n", raced_runs, total_ok);
    th_end();
}

/* ------------------------------------------------------------------------- */
/* 3. Two concurrent sfu_server_free calls on one handle                       */

typedef struct {
    sfu_server *s;
    pthread_barrier_t start;
    th_checks checks;
    atomic_int returned_early; /* a free returned before userdata_free ran */
    atomic_int responses;
} twofree;

static void twofree_on_event(void *userdata, sfu_event_kind kind, const char *room_id, const char *peer_name,
                             uint64_t request_id, const char *json, size_t json_len) {
    twofree *t = userdata;
    if (th_callback_enter(&t->checks, kind, room_id, peer_name, request_id, json, json_len) &&
        kind == SFU_EVENT_KIND_RESPONSE)
        atomic_fetch_add(&t->responses, 1);
    th_callback_leave(&t->checks);
}

static void twofree_userdata_free(void *userdata) {
    twofree *t = userdata;
    th_userdata_freed(&t->checks);
}

static void *twofree_freer(void *arg) {
    twofree *t = arg;
    pthread_barrier_wait(&t->start);
    if (th_server_free(&t->checks, t->s) != 1) atomic_fetch_add(&t->returned_early, 1);
    return NULL;
}

static void test_concurrent_double_free(void) {
    th_begin("two threads free the same server (20 runs)");
    enum { QUEUED = 50 };
    for (int run = 0; run < 20; run++) {
        twofree *t = calloc(1, sizeof *t);
        CHECK(t, "calloc");
        th_checks_init(&t->checks);
        CHECK(pthread_barrier_init(&t->start, NULL, 2) == 0, "pthread_barrier_init");
        CHECK_RESULT(sfu_server_new("{\"numWorkers\":2}", twofree_on_event, t, twofree_userdata_free, &t->s),
                     SFU_RESULT_OK);
        CHECK_RESULT(sfu_server_create_room(t->s, "r", NULL), SFU_RESULT_OK);
        /* Work for the shutdown: queued requests it must answer. */
        for (int i = 1; i <= QUEUED; i++)
            CHECK_RESULT(sfu_server_request(t->s, "r", "p", (uint64_t)i, QUERY_ROOM), SFU_RESULT_OK);
        pthread_t a, b;
        CHECK(pthread_create(&a, NULL, twofree_freer, t) == 0, "pthread_create");
        CHECK(pthread_create(&b, NULL, twofree_freer, t) == 0, "pthread_create");
        pthread_join(a, NULL);
        pthread_join(b, NULL);
        CHECK(atomic_load(&t->returned_early) == 0,
              "run %d: %d of the two sfu_server_free calls returned before userdata_free had run", run,
              atomic_load(&t->returned_early));
        CHECK(atomic_load(&t->responses) == QUEUED, "run %d: %d responses to %d queued requests", run,
              atomic_load(&t->responses), QUEUED);
        char what[32];
        snprintf(what, sizeof what, "run %d", run);
        th_check_freed(&t->checks, what, 20);
        /* A third free, after both, is still a no-op. */
        sfu_server_free(t->s);
        CHECK(atomic_load(&t->checks.userdata_frees) == 1, "run %d: a third sfu_server_free ran userdata_free again",
              run);
        pthread_barrier_destroy(&t->start);
        th_checks_destroy(&t->checks);
        free(t);
    }
    th_end();
}

int main(int argc, char **argv) {
    static const struct {
        const char *name;
        void (*run)(void);
    } tests[] = {
        {"in-callback", test_free_in_callback},
        {"racing-requests", test_requests_racing_free},
        {"double-free", test_concurrent_double_free},
        {"last-event", test_free_in_last_callback},
    };
    enum { N_DEFAULT = 3 }; /* the first three run without arguments */
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc == 1) {
        for (int i = 0; i < N_DEFAULT; i++) tests[i].run();
    }
    for (int a = 1; a < argc; a++) {
        bool found = false;
        for (size_t i = 0; i < sizeof tests / sizeof *tests; i++) {
            if (!strcmp(argv[a], tests[i].name)) {
                tests[i].run();
                found = true;
            }
        }
        CHECK(found, "unknown test \"%s\" (in-callback, racing-requests, double-free, last-event)", argv[a]);
    }
    return th_finish();
}
