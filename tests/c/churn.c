/*
 * Churn through the C API: join -> produce -> consume -> leave cycles, with the
 * room closed and re-created every RECYCLE cycles, looking for anything that grows.
 *
 *   churn [cycles=600] [lanes=2]
 *
 * Each lane is a host thread with its own room (rooms spread over the workers) and
 * one long-lived "anchor" peer that produces audio + video and consumes everything.
 * One cycle of a lane, peer p<i>:
 *   join (every other one with rtpCapabilities, the others with the seed's shape)
 *   createTransport send (DTLS parameters) + recv, updateTransport,
 *   createProducer audio + video (RTX), enableConsumer of the anchor's two producers,
 *   the anchor enables its two new consumers of p<i>,
 *   pause/resume producer and consumer, preferred profile, transport stats on/off,
 *   then one of: `leave`; sfu_server_close_peer; closeProducer + closeTransport x2 + leave.
 *
 * Figures printed (README.md, "Reliability"): cycles, wall time, heap bytes in use
 * (mallinfo2: glibc malloc, which the Rust library uses too) and RSS after the warm-up
 * and at the end, open fds, threads. Without ASan it checks that the heap in use at the
 * end is within 2% + 256 KiB of the heap after warm-up and the RSS within 5% + 1 MiB.
 * Under ASan/LSan (tests/c_programs.rs), LeakSanitizer checks for unreachable blocks
 * while the server still runs (after the cycles) and again at exit: any leak fails.
 *
 * The last line on success is "N passed, 0 failed".
 */

#define _GNU_SOURCE

#include "test_host.h"

#include <malloc.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#include <sanitizer/lsan_interface.h>
#else
#define UNDER_ASAN 0
#endif

#define WAIT_MS 20000
#define RECYCLE 50
#define MAX_LANES 8

/* ------------------------------------------------------------------------- */

/* One recorder per lane: its responses and the anchor's newConsumer notifications. */
static th_recorder lanes_q[MAX_LANES];
static th_checks checks; /* the callback's contract and userdata_free */
static atomic_long n_notifications, n_unexpected_host;
static char first_unexpected[512];
static pthread_mutex_t unexpected_mu = PTHREAD_MUTEX_INITIALIZER;

/* Rooms are "churn-<lane>"; the anchor of every room is "anchor". */
static int lane_of(const char *room) {
    if (strncmp(room, "churn-", 6) != 0) return -1;
    int l = atoi(room + 6);
    return l >= 0 && l < MAX_LANES ? l : -1;
}

static void on_event(void *ud, sfu_event_kind kind, const char *room, const char *peer, uint64_t request_id,
                     const char *json, size_t json_len) {
    th_checks *c = ud;
    if (!th_callback_enter(c, kind, room, peer, request_id, json, json_len)) {
        th_callback_leave(c);
        return;
    }
    int l = lane_of(room);
    if (kind == SFU_EVENT_KIND_RESPONSE) {
        CHECK(l >= 0, "a response for room %s", room);
        th_recorder_push(&lanes_q[l], th_event_new(kind, room, peer, request_id, json));
    } else if (kind == SFU_EVENT_KIND_NOTIFICATION) {
        atomic_fetch_add(&n_notifications, 1);
        if (l >= 0 && !strcmp(peer, "anchor") && th_json_method_is(json, "newConsumer"))
            th_recorder_push(&lanes_q[l], th_event_new(kind, room, peer, request_id, json));
    } else {
        /* No host event is expected: no notification fails, no transport times out. */
        if (atomic_fetch_add(&n_unexpected_host, 1) == 0) {
            pthread_mutex_lock(&unexpected_mu);
            snprintf(first_unexpected, sizeof first_unexpected, "%s/%s: %s", room, peer, json);
            pthread_mutex_unlock(&unexpected_mu);
        }
    }
    th_callback_leave(c);
}

static void on_free(void *ud) { th_userdata_freed(ud); }

/* ------------------------------------------------------------------------- */

static sfu_server *srv;
static char *room_caps; /* the room's rtpCapabilities, as a JSON text */
static th_ids request_ids;

typedef struct {
    uint64_t ids[16];
    int n;
    th_recorder *q;
    const char *room;
} batch;

static void send_req(batch *b, const char *peer, const char *json) {
    uint64_t id = th_ids_take(&request_ids);
    sfu_result r = sfu_server_request(srv, b->room, peer, id, json);
    CHECK(r == SFU_RESULT_OK, "sfu_server_request: %d %s", (int)r, sfu_last_error());
    CHECK(b->n < 16, "batch full");
    b->ids[b->n++] = id;
}

static void send_note(const char *room, const char *peer, const char *json) {
    sfu_result r = sfu_server_notify(srv, room, peer, json);
    CHECK(r == SFU_RESULT_OK, "sfu_server_notify: %d %s", (int)r, sfu_last_error());
}

/* Wait for every response of the batch; all must be ok. Returns the first one's JSON
 * (caller frees) if `keep_first`. */
static char *wait_batch(batch *b, bool keep_first) {
    char *first = NULL;
    for (int i = 0; i < b->n; i++) {
        th_event *e = th_wait_response(b->q, b->ids[i], WAIT_MS);
        CHECK(e, "no response to request %" PRIu64 " in room %s within %d ms", b->ids[i], b->room, WAIT_MS);
        CHECK(strncmp(e->json, "{\"data\":", 8) == 0 && strstr(e->json, "\"ok\":true"), "request failed: %s",
              e->json);
        if (i == 0 && keep_first) {
            first = e->json;
            e->json = NULL;
        }
        th_event_free(e);
    }
    b->n = 0;
    return first;
}

/* Consumer ids in a join response or a newConsumer: the "id" after each
 * "effectiveProfile" (keys are sorted; appData never has an "id" here). */
static int consumer_ids(const char *json, uint64_t *out, int max) {
    int n = 0;
    const char *p = json;
    while (n < max && (p = strstr(p, "\"effectiveProfile\":"))) {
        const char *id = strstr(p, "\"id\":");
        CHECK(id, "no id after effectiveProfile in %s", json);
        out[n++] = strtoull(id + 5, NULL, 10);
        p = id;
    }
    return n;
}

static const char FP[] =
    "\"fingerprints\":[{\"algorithm\":\"sha-256\",\"value\":"
    "\"00:07:0E:15:1C:23:2A:31:38:3F:46:4D:54:5B:62:69:70:77:7E:85:8C:93:9A:A1:A8:AF:B6:BD:C4:CB:D2:D9\"}]";

static void produce(batch *b, const char *peer, unsigned id, const char *kind, unsigned ssrc) {
    char buf[2048];
    if (!strcmp(kind, "audio")) {
        snprintf(buf, sizeof buf,
                 "{\"method\":\"createProducer\",\"target\":\"peer\",\"id\":%u,\"kind\":\"audio\",\"transportId\":1,"
                 "\"paused\":false,\"appData\":{\"k\":\"a\"},\"rtpParameters\":{\"muxId\":\"0\",\"codecs\":[{\"name\":"
                 "\"opus\",\"mimeType\":\"audio/opus\",\"clockRate\":48000,\"payloadType\":111,\"channels\":2,"
                 "\"parameters\":{\"useinbandfec\":1}}],\"headerExtensions\":[{\"uri\":\"urn:ietf:params:rtp-hdrext:"
                 "ssrc-audio-level\",\"id\":1},{\"uri\":\"urn:ietf:params:rtp-hdrext:sdes:mid\",\"id\":4}],"
                 "\"encodings\":[{\"ssrc\":%u}],\"rtcp\":{\"cname\":\"c%u\",\"reducedSize\":true,\"mux\":true}}}",
                 id, ssrc, ssrc);
    } else {
        snprintf(buf, sizeof buf,
                 "{\"method\":\"createProducer\",\"target\":\"peer\",\"id\":%u,\"kind\":\"video\",\"transportId\":1,"
                 "\"paused\":false,\"appData\":{\"k\":\"v\"},\"rtpParameters\":{\"muxId\":\"1\",\"codecs\":[{\"name\":"
                 "\"VP8\",\"mimeType\":\"video/VP8\",\"clockRate\":90000,\"payloadType\":96,\"rtcpFeedback\":[{\"type\":"
                 "\"nack\"},{\"type\":\"nack\",\"parameter\":\"pli\"},{\"type\":\"transport-cc\"}],\"parameters\":{}},"
                 "{\"name\":\"rtx\",\"mimeType\":\"video/rtx\",\"clockRate\":90000,\"payloadType\":97,\"parameters\":"
                 "{\"apt\":96}}],\"headerExtensions\":[{\"uri\":\"http://www.ietf.org/id/draft-holmer-rmcat-"
                 "transport-wide-cc-extensions-01\",\"id\":3},{\"uri\":\"urn:ietf:params:rtp-hdrext:sdes:mid\","
                 "\"id\":4}],\"encodings\":[{\"ssrc\":%u,\"rtx\":{\"ssrc\":%u}}],\"rtcp\":{\"cname\":\"c%u\","
                 "\"reducedSize\":true,\"mux\":true}}}",
                 id, ssrc, ssrc + 1, ssrc);
    }
    send_req(b, peer, buf);
}

/* The anchor's send transport says DTLS role "client" (we are the DTLS server, so no
 * ClientHello is retransmitted toward a browser that never comes: a DTLS client gives
 * up after its flight retries, ~15-30 s, which a slow run under valgrind reaches); the
 * churn peers' say "server" (we are the client) like Chrome's send transports. */
static void transports(batch *b, const char *peer) {
    char buf[1024];
    snprintf(buf, sizeof buf,
             "{\"method\":\"createTransport\",\"target\":\"peer\",\"id\":1,\"direction\":\"send\",\"options\":{},"
             "\"appData\":{},\"dtlsParameters\":{\"role\":\"%s\",%s}}",
             strcmp(peer, "anchor") ? "server" : "client", FP);
    send_req(b, peer, buf);
    send_req(b, peer,
             "{\"method\":\"createTransport\",\"target\":\"peer\",\"id\":2,\"direction\":\"recv\",\"options\":{},"
             "\"appData\":{}}");
    snprintf(buf, sizeof buf,
             "{\"method\":\"updateTransport\",\"target\":\"peer\",\"notification\":true,\"id\":2,"
             "\"dtlsParameters\":{\"role\":\"client\",%s}}",
             FP);
    send_note(b->room, peer, buf);
}

static void enable(batch *b, const char *peer, uint64_t cid) {
    char buf[256];
    snprintf(buf, sizeof buf,
             "{\"method\":\"enableConsumer\",\"target\":\"peer\",\"id\":%" PRIu64
             ",\"transportId\":2,\"paused\":false,\"preferredProfile\":\"default\"}",
             cid);
    send_req(b, peer, buf);
}

static void note_id(const char *room, const char *peer, const char *method, uint64_t id, const char *extra) {
    char buf[256];
    snprintf(buf, sizeof buf, "{\"method\":\"%s\",\"target\":\"peer\",\"notification\":true,\"id\":%" PRIu64 "%s}",
             method, id, extra);
    send_note(room, peer, buf);
}

/* (Re)create the lane's room with its anchor: two transports, audio + video. */
static void room_up(batch *b) {
    sfu_result r = sfu_server_create_room(srv, b->room, NULL);
    CHECK(r == SFU_RESULT_OK, "create_room %s: %d %s", b->room, (int)r, sfu_last_error());
    char buf[8192];
    snprintf(buf, sizeof buf,
             "{\"method\":\"join\",\"target\":\"room\",\"peerName\":\"anchor\",\"spy\":false,\"appData\":{},"
             "\"rtpCapabilities\":%s}",
             room_caps);
    send_req(b, "anchor", buf);
    transports(b, "anchor");
    produce(b, "anchor", 1, "audio", 1000);
    produce(b, "anchor", 2, "video", 2000);
    wait_batch(b, false);
}

static void cycle(batch *b, unsigned i) {
    char peer[32], buf[8192];
    snprintf(peer, sizeof peer, "p%u", i);
    /* join: consumers of the anchor's producers come in the response */
    if (i % 2 == 0)
        snprintf(buf, sizeof buf,
                 "{\"method\":\"join\",\"target\":\"room\",\"peerName\":\"%s\",\"spy\":false,\"appData\":{\"n\":%u},"
                 "\"rtpCapabilities\":%s}",
                 peer, i, room_caps);
    else
        snprintf(buf, sizeof buf, "{\"method\":\"join\",\"target\":\"room\",\"peerName\":\"%s\"}", peer);
    send_req(b, peer, buf);
    char *joined = wait_batch(b, true);
    uint64_t mine[4];
    int nmine = consumer_ids(joined, mine, 4);
    free(joined);
    CHECK(nmine == 2, "join of %s listed %d consumers, want 2 (%ld host events, the first: %s)", peer, nmine,
          (long)atomic_load(&n_unexpected_host), first_unexpected);
    /* produce + consume */
    transports(b, peer);
    produce(b, peer, 10, "audio", 10000 + 4 * i);
    produce(b, peer, 11, "video", 10002 + 4 * i);
    for (int k = 0; k < nmine; k++) enable(b, peer, mine[k]);
    wait_batch(b, false);
    /* the anchor consumes p<i> */
    for (int k = 0; k < 2; k++) {
        th_event *e = th_wait_notification(b->q, "anchor", "newConsumer", WAIT_MS);
        CHECK(e, "no newConsumer for the anchor in %s (cycle %u)", b->room, i);
        uint64_t cid;
        CHECK(consumer_ids(e->json, &cid, 1) == 1, "no consumer id in %s", e->json);
        char want[48];
        snprintf(want, sizeof want, "\"peerName\":\"%s\"", peer);
        CHECK(strstr(e->json, want), "newConsumer of another peer: %s", e->json);
        th_event_free(e);
        enable(b, "anchor", cid);
    }
    wait_batch(b, false);
    /* notifications on both sides */
    note_id(b->room, peer, "pauseProducer", 11, "");
    note_id(b->room, peer, "resumeProducer", 11, "");
    note_id(b->room, peer, "pauseConsumer", mine[1], "");
    note_id(b->room, peer, "resumeConsumer", mine[1], "");
    note_id(b->room, peer, "setConsumerPreferredProfile", mine[1], ",\"profile\":\"low\"");
    note_id(b->room, peer, "enableTransportStats", 1, ",\"interval\":1000");
    note_id(b->room, peer, "enableConsumerStats", mine[0], ",\"interval\":1000");
    note_id(b->room, peer, "disableTransportStats", 1, "");
    /* leave, three ways */
    switch (i % 3) {
    case 0:
        send_note(b->room, peer, "{\"method\":\"leave\",\"target\":\"peer\",\"notification\":true}");
        break;
    case 1: {
        sfu_result r = sfu_server_close_peer(srv, b->room, peer);
        CHECK(r == SFU_RESULT_OK, "close_peer %s: %d %s", peer, (int)r, sfu_last_error());
        break;
    }
    default:
        note_id(b->room, peer, "closeProducer", 10, "");
        note_id(b->room, peer, "closeTransport", 1, "");
        note_id(b->room, peer, "closeTransport", 2, "");
        send_note(b->room, peer, "{\"method\":\"leave\",\"target\":\"peer\",\"notification\":true}");
    }
}

/* A round trip through the room's worker and the notifier: everything sent before
 * has been processed and delivered. */
static void sync_lane(batch *b) {
    send_req(b, "sync", "{\"method\":\"queryRoom\",\"target\":\"room\"}");
    wait_batch(b, false);
}

typedef struct {
    int lane;
    unsigned from, to; /* cycle numbers [from, to) */
} job;

static void *lane_main(void *arg) {
    job *j = arg;
    char room[32];
    snprintf(room, sizeof room, "churn-%d", j->lane);
    batch b = {.q = &lanes_q[j->lane], .room = room};
    for (unsigned i = j->from; i < j->to; i++) {
        cycle(&b, i);
        if ((i + 1) % RECYCLE == 0) {
            sync_lane(&b);
            sfu_result r = sfu_server_close_room(srv, room);
            CHECK(r == SFU_RESULT_OK, "close_room: %d %s", (int)r, sfu_last_error());
            room_up(&b);
        }
    }
    sync_lane(&b);
    return NULL;
}

static void run_lanes(int lanes, unsigned from, unsigned to) {
    pthread_t th[MAX_LANES];
    job jobs[MAX_LANES];
    for (int l = 0; l < lanes; l++) {
        jobs[l] = (job){.lane = l, .from = from, .to = to};
        CHECK(pthread_create(&th[l], NULL, lane_main, &jobs[l]) == 0, "pthread_create");
    }
    for (int l = 0; l < lanes; l++) pthread_join(th[l], NULL);
}

/* ------------------------------------------------------------------------- */

static long rss_kib(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    long size = 0, res = 0;
    if (f) {
        if (fscanf(f, "%ld %ld", &size, &res) != 2) res = 0;
        fclose(f);
    }
    return res * (sysconf(_SC_PAGESIZE) / 1024);
}

static size_t heap_in_use(void) {
    struct mallinfo2 m = mallinfo2();
    return m.uordblks + m.hblkhd;
}

/* The room's rtpCapabilities from queryRoom, used as the clients' capabilities
 * (a client supporting everything the room offers). */
static char *query_caps(void) {
    sfu_result r = sfu_server_create_room(srv, "churn-0", NULL);
    CHECK(r == SFU_RESULT_OK, "create_room: %s", sfu_last_error());
    batch b = {.q = &lanes_q[0], .room = "churn-0"};
    send_req(&b, "q", "{\"method\":\"queryRoom\",\"target\":\"room\"}");
    char *resp = wait_batch(&b, true);
    const char *p = strstr(resp, "\"rtpCapabilities\":");
    CHECK(p, "no rtpCapabilities in %s", resp);
    p += strlen("\"rtpCapabilities\":");
    /* the object: balance braces (no braces inside strings in this JSON) */
    int depth = 0;
    const char *q = p;
    do {
        if (*q == '{') depth++;
        else if (*q == '}') depth--;
        q++;
    } while (depth > 0 && *q);
    char *caps = strndup(p, (size_t)(q - p));
    free(resp);
    CHECK(sfu_server_close_room(srv, "churn-0") == SFU_RESULT_OK, "close_room");
    return caps;
}

int main(int argc, char **argv) {
    unsigned cycles = argc > 1 ? (unsigned)strtoul(argv[1], NULL, 10) : 600;
    int lanes = argc > 2 ? atoi(argv[2]) : 2;
    CHECK(lanes >= 1 && lanes <= MAX_LANES, "lanes in 1..%d", MAX_LANES);
    unsigned per_lane = cycles / (unsigned)lanes;
    per_lane -= per_lane % RECYCLE;
    CHECK(per_lane >= 2 * RECYCLE, "at least %d cycles per lane", 2 * RECYCLE);
    /* Warm-up: 10% of the cycles, a whole number of room recycles. */
    unsigned warm = per_lane / 10;
    warm -= warm % RECYCLE;
    if (warm < RECYCLE) warm = RECYCLE;

    th_begin("churn cycles: every request answered ok, no unexpected host event");
    for (int l = 0; l < MAX_LANES; l++) th_recorder_init(&lanes_q[l]);
    th_checks_init(&checks);
    th_ids_init(&request_ids, 1);
    int threads0 = th_count_threads(), fds0 = th_count_fds();
    sfu_result r = sfu_server_new("{\"numWorkers\":2,\"rtcIPv4\":\"127.0.0.1\",\"transportTimeout\":3600}", on_event,
                                  &checks, on_free, &srv);
    CHECK(r == SFU_RESULT_OK, "sfu_server_new: %s", sfu_last_error());
    room_caps = query_caps();
    for (int l = 0; l < lanes; l++) {
        char room[32];
        snprintf(room, sizeof room, "churn-%d", l);
        batch b = {.q = &lanes_q[l], .room = room};
        room_up(&b);
    }

    double t0 = th_now_s();
    run_lanes(lanes, 0, warm);
    double t1 = th_now_s();
    size_t heap_before = heap_in_use();
    long rss_before = rss_kib();
    int fds_before = th_count_fds(), threads_before = th_count_threads();
    printf("warm-up: %u cycles (%u per lane) in %.2f s; heap in use %zu bytes, RSS %ld KiB, %d fds, %d threads\n",
           warm * lanes, warm, t1 - t0, heap_before, rss_before, fds_before, threads_before);
#ifdef CHURN_SELFTEST_LEAK
    /* Proves LeakSanitizer's check below sees a leak in this process: lose a block. */
    {
        void *volatile lost = malloc(4242);
        lost = NULL;
        (void)lost;
    }
#endif

    run_lanes(lanes, warm, per_lane);
    double t2 = th_now_s();
    size_t heap_after = heap_in_use();
    long rss_after = rss_kib();
    int fds_after = th_count_fds(), threads_after = th_count_threads();
    unsigned total = per_lane * (unsigned)lanes;
    printf("churn: %u cycles (%u lanes x %u) in %.2f s (%.0f cycles/s); %ld callbacks, %ld notifications\n",
           total, lanes, per_lane, t2 - t0, total / (t2 - t0), (long)atomic_load(&checks.calls),
           (long)atomic_load(&n_notifications));
#if UNDER_ASAN
    (void)heap_after;
    (void)rss_after;
    printf("after %u more cycles: %d fds, %d threads (heap and RSS figures are not meaningful under ASan)\n",
           total - warm * lanes, fds_after, threads_after);
#else
    printf("after %u more cycles: heap in use %zu bytes (%+.2f%%), RSS %ld KiB (%+.2f%%), %d fds, %d threads\n",
           total - warm * lanes, heap_after, 100.0 * ((double)heap_after - (double)heap_before) / (double)heap_before,
           rss_after, 100.0 * ((double)rss_after - (double)rss_before) / (double)rss_before, fds_after,
           threads_after);
#endif
    CHECK(atomic_load(&n_unexpected_host) == 0, "%ld unexpected host events, the first: %s",
          (long)atomic_load(&n_unexpected_host), first_unexpected);
    th_check_callbacks(&checks, "churn");
    th_end();

    th_begin("no fd or thread grows over the cycles");
    CHECK(fds_after == fds_before, "fds grew from %d to %d", fds_before, fds_after);
    CHECK(threads_after == threads_before, "threads grew from %d to %d", threads_before, threads_after);
    th_end();
#if UNDER_ASAN
    th_begin("LeakSanitizer finds no leak while the server runs");
    /* Unreachable blocks while the server still runs (between the cycles and the free). */
    int leaked = __lsan_do_recoverable_leak_check();
    printf("LeakSanitizer with the server running: %s\n", leaked ? "LEAKS" : "no leak");
    CHECK(!leaked, "LeakSanitizer found leaks while the server runs (see above)");
    th_end();
#else
    th_begin("heap and RSS stay put after the warm-up");
    /* Heap and RSS after the warm-up vs at the end. */
    CHECK((double)heap_after <= (double)heap_before * 1.02 + 256 * 1024,
          "heap in use grew from %zu to %zu bytes over %u cycles", heap_before, heap_after, total - warm * lanes);
    CHECK((double)rss_after <= (double)rss_before * 1.05 + 1024, "RSS grew from %ld to %ld KiB", rss_before,
          rss_after);
    th_end();
#endif

    th_begin("sfu_server_free: userdata_free once, no callback after, no thread or fd left");
    th_server_free(&checks, srv);
    th_check_freed(&checks, "sfu_server_free", 100);
    int threads_end = th_count_threads(), fds_end = th_count_fds();
    printf("after sfu_server_free: %d threads (%d before sfu_server_new), %d fds (%d before)\n", threads_end, threads0,
           fds_end, fds0);
    th_check_no_library_threads(threads0, "after sfu_server_free");
    CHECK(fds_end == fds0, "fds left: %d, want %d", fds_end, fds0);
    th_end();
    free(room_caps);
    for (int l = 0; l < MAX_LANES; l++) th_recorder_destroy(&lanes_q[l]);
    th_checks_destroy(&checks);
    return th_finish();
}
