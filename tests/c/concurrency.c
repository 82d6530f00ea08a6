/*
 * The C API called from many host threads at once, and sfu_server_free while
 * traffic flows.
 *
 *   concurrency [rounds=10]
 *
 * 1. mixed: 8 host threads, 500 calls each, at random: requests (valid and not) and
 *    notifications to shared rooms, their own room and rooms that do not exist,
 *    sfu_server_close_peer, sfu_server_close_room + sfu_server_create_room of shared
 *    rooms (racing the requests), create/close of their own room; the callback itself
 *    sends requests (re-entrancy) while UDP garbage hits the server's ports. Checks: every
 *    accepted request gets exactly one response (an unaccepted one none), results are
 *    among those documented for the call, the callback never runs concurrently with
 *    itself nor on two threads, then sfu_server_free returns, userdata_free ran once,
 *    no callback afterwards, and no library thread is left.
 * 2. free-under-traffic, `rounds` times: two servers, each with request/notify threads,
 *    a room create/close thread and a UDP flood thread (garbage, STUN-, DTLS- and
 *    RTP-looking datagrams) running; after a random 0-30 ms both servers are freed from
 *    two threads at once. The traffic threads go on calling with the freed handles
 *    (SFU_RESULT_SERVER_CLOSED). Checks as above; the count of accepted requests is
 *    final when sfu_server_free returns.
 *
 * Runs under ASan/UBSan/LSan from tests/c_programs.rs; scripts/tsan.sh builds it and the
 * library with ThreadSanitizer. The last line on success is "N passed, 0 failed".
 */

#define _GNU_SOURCE

#include "test_host.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_IDS (1u << 22)
#define THREADS 8
#define CALLS 500

/* Per request id: accepted by sfu_server_request (1) and responses received. */
static atomic_uchar accepted[MAX_IDS];
static atomic_uchar responses[MAX_IDS];
static th_ids request_ids; /* from 1 */

typedef struct {
    sfu_server *srv;
    th_checks checks; /* the callback's contract and userdata_free */
    atomic_int reentrant_left;
    atomic_long unexpected_ids;
} host;

static uint64_t rnd(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static unsigned take_id(void) {
    uint64_t id = th_ids_take(&request_ids);
    CHECK(id < MAX_IDS, "out of request ids");
    return (unsigned)id;
}

/* A request; records it when accepted. Returns the call's result. */
static sfu_result request(host *h, sfu_server *s, const char *room, const char *peer, const char *json) {
    unsigned id = take_id();
    /* Mark first: the response may arrive before sfu_server_request returns. */
    atomic_store(&accepted[id], 1);
    sfu_result r = sfu_server_request(s, room, peer, id, json);
    if (r != SFU_RESULT_OK) atomic_store(&accepted[id], 0);
    (void)h;
    return r;
}

static void on_event(void *ud, sfu_event_kind kind, const char *room, const char *peer, uint64_t request_id,
                     const char *json, size_t json_len) {
    host *h = ud;
    if (!th_callback_enter(&h->checks, kind, room, peer, request_id, json, json_len)) {
        th_callback_leave(&h->checks);
        return;
    }
    if (kind == SFU_EVENT_KIND_RESPONSE) {
        if (request_id == 0 || request_id >= MAX_IDS || !atomic_load(&accepted[request_id]))
            atomic_fetch_add(&h->unexpected_ids, 1);
        else
            atomic_fetch_add(&responses[request_id], 1);
    }
    /* Re-entrancy: a few requests from inside the callback. */
    if (kind == SFU_EVENT_KIND_NOTIFICATION && strstr(json, "\"newPeer\"") &&
        atomic_fetch_sub(&h->reentrant_left, 1) > 0) {
        request(h, h->srv, room, peer, "{\"method\":\"queryRoom\",\"target\":\"room\"}");
        sfu_server_notify(h->srv, room, peer, "{\"method\":\"pauseProducer\",\"notification\":true,\"id\":1}");
    }
    th_callback_leave(&h->checks);
}

static void on_free(void *ud) {
    host *h = ud;
    th_userdata_freed(&h->checks);
}

static const char *REQUESTS[] = {
    "{\"method\":\"queryRoom\",\"target\":\"room\"}",
    "{\"method\":\"join\",\"target\":\"room\",\"peerName\":\"x\",\"spy\":false}",
    "{\"method\":\"createTransport\",\"target\":\"peer\",\"id\":1,\"direction\":\"recv\",\"options\":{}}",
    "{\"method\":\"createTransport\",\"target\":\"peer\",\"id\":2,\"direction\":\"send\",\"options\":{},"
    "\"dtlsParameters\":{\"role\":\"server\",\"fingerprints\":[{\"algorithm\":\"sha-256\",\"value\":"
    "\"00:07:0E:15:1C:23:2A:31:38:3F:46:4D:54:5B:62:69:70:77:7E:85:8C:93:9A:A1:A8:AF:B6:BD:C4:CB:D2:D9\"}]}}",
    "{\"method\":\"createProducer\",\"target\":\"peer\",\"id\":1,\"kind\":\"audio\",\"transportId\":2,"
    "\"rtpParameters\":{\"codecs\":[{\"name\":\"opus\",\"mimeType\":\"audio/opus\",\"clockRate\":48000,"
    "\"payloadType\":111,\"channels\":2}],\"encodings\":[{\"ssrc\":1234}]}}",
    "{\"method\":\"enableConsumer\",\"target\":\"peer\",\"id\":10000001,\"transportId\":1}",
    "{\"method\":\"restartTransport\",\"target\":\"peer\",\"id\":1}",
    "{\"method\":\"fly\"}",
    "{not json",
    "",
};

static const char *NOTIFICATIONS[] = {
    "{\"method\":\"leave\",\"target\":\"peer\",\"notification\":true}",
    "{\"method\":\"pauseProducer\",\"target\":\"peer\",\"notification\":true,\"id\":1}",
    "{\"method\":\"closeTransport\",\"target\":\"peer\",\"notification\":true,\"id\":1}",
    "{\"method\":\"updateTransport\",\"target\":\"peer\",\"notification\":true,\"id\":1,\"dtlsParameters\":"
    "{\"role\":\"client\",\"fingerprints\":[{\"algorithm\":\"sha-256\",\"value\":\"AA\"}]}}",
    "[]",
};

static const char *ROOMS[] = {"s0", "s1", "s2", "s3", "nowhere"};
static const char *PEERS[] = {"a", "b", "c"};

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* ------------------------------------------------------------------------- */
/* UDP traffic toward the server's ports                                      */

typedef struct {
    atomic_bool *stop;
    int port;
    uint64_t seed;
    long sent;
} flood_arg;

static void *flood_main(void *arg) {
    flood_arg *f = arg;
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    CHECK(fd >= 0, "socket");
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons((uint16_t)f->port)};
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    unsigned char buf[1200];
    for (long i = 0; i < 200000 && !atomic_load(f->stop); i++) {
        size_t n = 1 + rnd(&f->seed) % sizeof buf;
        for (size_t k = 0; k < n; k++) buf[k] = (unsigned char)rnd(&f->seed);
        switch (i % 4) {
        case 0: /* STUN-looking: binding request header, magic cookie */
            if (n < 20) n = 20;
            buf[0] = 0, buf[1] = 1, buf[4] = 0x21, buf[5] = 0x12, buf[6] = 0xA4, buf[7] = 0x42;
            break;
        case 1: buf[0] = 22; break;   /* DTLS handshake */
        case 2: buf[0] = 0x80; break; /* RTP/RTCP */
        default: break;               /* garbage */
        }
        if (sendto(fd, buf, n, 0, (struct sockaddr *)&to, sizeof to) > 0) f->sent++;
        if (i % 64 == 0) th_sleep_ms(1);
    }
    close(fd);
    return NULL;
}

/* ------------------------------------------------------------------------- */
/* 1. mixed calls                                                             */

typedef struct {
    host *h;
    int k;
    uint64_t seed;
} worker_arg;

static bool result_in(sfu_result r, const sfu_result *ok, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (r == ok[i]) return true;
    return false;
}

static void *mixed_main(void *arg) {
    worker_arg *w = arg;
    host *h = w->h;
    sfu_server *s = h->srv;
    char own[16];
    snprintf(own, sizeof own, "own%d", w->k);
    bool own_open = false;
    for (int i = 0; i < CALLS; i++) {
        uint64_t x = rnd(&w->seed);
        const char *room = ROOMS[(x >> 8) % N(ROOMS)];
        if ((x >> 16) % 4 == 0 && own_open) room = own;
        const char *peer = PEERS[(x >> 24) % N(PEERS)];
        sfu_result r;
        switch (x % 16) {
        case 0: case 1: case 2: case 3: case 4: case 5: case 6:
            r = request(h, s, room, peer, REQUESTS[(x >> 32) % N(REQUESTS)]);
            CHECK(r == SFU_RESULT_OK, "request: %d %s", (int)r, sfu_last_error());
            break;
        case 7: case 8: case 9:
            r = sfu_server_notify(s, room, peer, NOTIFICATIONS[(x >> 32) % N(NOTIFICATIONS)]);
            CHECK(r == SFU_RESULT_OK, "notify: %d %s", (int)r, sfu_last_error());
            break;
        case 10: {
            r = sfu_server_close_peer(s, room, peer);
            const sfu_result ok[] = {SFU_RESULT_OK, SFU_RESULT_ROOM_NOT_FOUND, SFU_RESULT_PEER_NOT_FOUND};
            CHECK(result_in(r, ok, N(ok)), "close_peer: %d %s", (int)r, sfu_last_error());
            break;
        }
        case 11: {
            const char *shared = ROOMS[(x >> 32) % 4];
            r = sfu_server_close_room(s, shared);
            CHECK(r == SFU_RESULT_OK || r == SFU_RESULT_ROOM_NOT_FOUND, "close_room: %d %s", (int)r,
                  sfu_last_error());
            r = sfu_server_create_room(s, shared, NULL);
            CHECK(r == SFU_RESULT_OK || r == SFU_RESULT_ROOM_EXISTS, "create_room: %d %s", (int)r, sfu_last_error());
            break;
        }
        case 12:
            if (own_open) {
                r = sfu_server_close_room(s, own);
                CHECK(r == SFU_RESULT_OK, "close own room: %d %s", (int)r, sfu_last_error());
            } else {
                r = sfu_server_create_room(s, own, NULL);
                CHECK(r == SFU_RESULT_OK, "create own room: %d %s", (int)r, sfu_last_error());
            }
            own_open = !own_open;
            break;
        case 13:
            r = sfu_server_create_room(s, "", NULL);
            CHECK(r == SFU_RESULT_INVALID_ARGUMENT, "empty room id: %d", (int)r);
            r = sfu_server_create_room(s, "bad-options", "{\"mediaCodecs\":7}");
            CHECK(r == SFU_RESULT_INVALID_ARGUMENT, "bad options: %d", (int)r);
            break;
        default:
            r = request(h, s, room, peer, "{\"method\":\"join\",\"target\":\"room\"}");
            CHECK(r == SFU_RESULT_OK, "join: %d", (int)r);
        }
    }
    return NULL;
}

static void host_init(host *h) {
    memset(h, 0, sizeof *h);
    th_checks_init(&h->checks);
    atomic_store(&h->reentrant_left, 50);
}

/* After the free: the callback's contract, userdata_free, no response to an id never
 * accepted. */
static void check_host(host *h, const char *what) {
    CHECK(atomic_load(&h->unexpected_ids) == 0, "%s: responses to ids never accepted", what);
    th_check_freed(&h->checks, what, 0);
    th_checks_destroy(&h->checks);
}

/* Every accepted id in [from, to) has exactly one response. */
static void check_responses(unsigned from, unsigned to, const char *what, unsigned *n_accepted) {
    unsigned acc = 0;
    for (unsigned id = from; id < to; id++) {
        unsigned a = atomic_load(&accepted[id]), n = atomic_load(&responses[id]);
        if (a) acc++;
        CHECK(n == a, "%s: request %u (accepted %u) got %u responses", what, id, a, n);
    }
    if (n_accepted) *n_accepted = acc;
}

/* The UDP ports of this process's sockets bound on 127.0.0.1 (the servers' worker
 * sockets): socket inodes from /proc/self/fd matched in /proc/net/udp. */
static int local_udp_ports(int *ports, int max) {
    unsigned long inodes[64];
    int ni = 0;
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    while (d && (e = readdir(d)) && ni < 64) {
        char path[300], link[64];
        snprintf(path, sizeof path, "/proc/self/fd/%s", e->d_name);
        ssize_t n = readlink(path, link, sizeof link - 1);
        if (n <= 0) continue;
        link[n] = 0;
        if (sscanf(link, "socket:[%lu]", &inodes[ni]) == 1) ni++;
    }
    if (d) closedir(d);
    FILE *f = fopen("/proc/net/udp", "r");
    if (!f) return 0;
    char line[512];
    int n = 0;
    if (!fgets(line, sizeof line, f)) {
        fclose(f);
        return 0;
    }
    while (n < max && fgets(line, sizeof line, f)) {
        unsigned addr, port;
        unsigned long inode;
        if (sscanf(line, " %*d: %8X:%4X %*X:%*X %*X %*X:%*X %*X:%*X %*X %*u %*u %lu", &addr, &port, &inode) != 3 ||
            addr != 0x0100007F)
            continue;
        for (int i = 0; i < ni; i++)
            if (inodes[i] == inode) ports[n++] = (int)port;
    }
    fclose(f);
    return n;
}

static const char CONFIG[] = "{\"numWorkers\":2,\"rtcIPv4\":\"127.0.0.1\"}";

/* Every request accepted from `*first` on has its response. */
static bool all_answered(void *first) {
    unsigned last = (unsigned)th_ids_peek(&request_ids);
    for (unsigned id = *(unsigned *)first; id < last; id++)
        if (atomic_load(&accepted[id]) && !atomic_load(&responses[id])) return false;
    return true;
}

static void test_mixed(void) {
    th_begin("mixed calls from 8 threads");
    int threads0 = th_count_threads();
    host h;
    host_init(&h);
    sfu_result r = sfu_server_new(CONFIG, on_event, &h, on_free, &h.srv);
    CHECK(r == SFU_RESULT_OK, "sfu_server_new: %s", sfu_last_error());
    for (int i = 0; i < 4; i++) CHECK(sfu_server_create_room(h.srv, ROOMS[i], NULL) == SFU_RESULT_OK, "room");
    unsigned first = (unsigned)th_ids_peek(&request_ids);
    atomic_bool stop = false;
    int ports[8];
    int np = local_udp_ports(ports, 8);
    pthread_t fl[8];
    flood_arg fa[8];
    for (int i = 0; i < np; i++) {
        fa[i] = (flood_arg){.stop = &stop, .port = ports[i], .seed = 0x9E3779B97F4A7C15ull + (uint64_t)i};
        CHECK(pthread_create(&fl[i], NULL, flood_main, &fa[i]) == 0, "pthread_create");
    }
    pthread_t th[THREADS];
    worker_arg wa[THREADS];
    for (int k = 0; k < THREADS; k++) {
        wa[k] = (worker_arg){.h = &h, .k = k, .seed = 0x2545F4914F6CDD1Dull * (uint64_t)(k + 1)};
        CHECK(pthread_create(&th[k], NULL, mixed_main, &wa[k]) == 0, "pthread_create");
    }
    for (int k = 0; k < THREADS; k++) pthread_join(th[k], NULL);
    /* Wait (at most 20 s) until every accepted request is answered, then free (which
     * answers the rest: the counts below are final either way). */
    th_poll(all_answered, &first, 20000, 10);
    atomic_store(&stop, true);
    long sent = 0;
    for (int i = 0; i < np; i++) {
        pthread_join(fl[i], NULL);
        sent += fa[i].sent;
    }
    th_server_free(&h.checks, h.srv);
    unsigned n_acc;
    check_responses(first, (unsigned)th_ids_peek(&request_ids), "mixed", &n_acc);
    long calls = atomic_load(&h.checks.calls);
    check_host(&h, "mixed");
    th_check_no_library_threads(threads0, "mixed");
    printf("mixed: %d threads x %d calls, %u requests answered once each, %ld callbacks, %ld datagrams to %d "
           "ports\n",
           THREADS, CALLS, n_acc, calls, sent, np);
    th_end();
}

/* ------------------------------------------------------------------------- */
/* 2. free while traffic flows                                                */

typedef struct {
    host *h;
    sfu_server *s; /* the handle, kept after the free on purpose */
    uint64_t seed;
    long after_close; /* calls that returned SERVER_CLOSED */
} traffic_arg;

static void *traffic_main(void *arg) {
    traffic_arg *t = arg;
    int closed_seen = 0;
    for (long i = 0; i < 1000000 && closed_seen < 50; i++) {
        uint64_t x = rnd(&t->seed);
        const char *room = ROOMS[(x >> 8) % 2];
        const char *peer = PEERS[(x >> 16) % N(PEERS)];
        sfu_result r;
        if (x % 3) r = request(t->h, t->s, room, peer, REQUESTS[(x >> 32) % 4]);
        else r = sfu_server_notify(t->s, room, peer, NOTIFICATIONS[(x >> 32) % N(NOTIFICATIONS)]);
        CHECK(r == SFU_RESULT_OK || r == SFU_RESULT_SERVER_CLOSED, "traffic: %d %s", (int)r, sfu_last_error());
        if (r == SFU_RESULT_SERVER_CLOSED) closed_seen++, t->after_close++;
        if (i % 16 == 0) th_sleep_ms(0);
    }
    CHECK(closed_seen == 50, "traffic thread never saw the server closed");
    return NULL;
}

static void *rooms_main(void *arg) {
    traffic_arg *t = arg;
    for (int i = 0; i < 100000; i++) {
        sfu_result r = sfu_server_close_room(t->s, ROOMS[i % 2]);
        if (r == SFU_RESULT_SERVER_CLOSED) break;
        CHECK(r == SFU_RESULT_OK || r == SFU_RESULT_ROOM_NOT_FOUND, "close_room: %d", (int)r);
        r = sfu_server_create_room(t->s, ROOMS[i % 2], NULL);
        if (r == SFU_RESULT_SERVER_CLOSED) break;
        CHECK(r == SFU_RESULT_OK || r == SFU_RESULT_ROOM_EXISTS, "create_room: %d %s", (int)r, sfu_last_error());
        th_sleep_ms(1);
    }
    return NULL;
}

static void *free_main(void *arg) {
    host *h = arg;
    th_server_free(&h->checks, h->srv);
    return NULL;
}

static void test_free_under_traffic(int rounds) {
    th_begin("two servers freed under traffic");
    long total_after_close = 0, total_datagrams = 0;
    unsigned total_accepted = 0;
    for (int round = 0; round < rounds; round++) {
        int threads0 = th_count_threads();
        unsigned first = (unsigned)th_ids_peek(&request_ids);
        host h[2];
        traffic_arg ta[2][3];
        pthread_t th[2][3], fl[8], fr[2];
        flood_arg fa[8];
        atomic_bool stop = false;
        for (int s = 0; s < 2; s++) {
            host_init(&h[s]);
            sfu_result r = sfu_server_new(CONFIG, on_event, &h[s], on_free, &h[s].srv);
            CHECK(r == SFU_RESULT_OK, "sfu_server_new: %s", sfu_last_error());
            for (int i = 0; i < 2; i++) CHECK(sfu_server_create_room(h[s].srv, ROOMS[i], NULL) == SFU_RESULT_OK, "room");
        }
        int ports[8];
        int np = local_udp_ports(ports, 8);
        for (int i = 0; i < np; i++) {
            fa[i] = (flood_arg){.stop = &stop, .port = ports[i], .seed = 77 + (uint64_t)(round * 8 + i)};
            CHECK(pthread_create(&fl[i], NULL, flood_main, &fa[i]) == 0, "pthread_create");
        }
        for (int s = 0; s < 2; s++)
            for (int k = 0; k < 3; k++) {
                ta[s][k] = (traffic_arg){.h = &h[s], .s = h[s].srv, .seed = 1000003ull * (uint64_t)(round + 1) + (uint64_t)(s * 3 + k)};
                CHECK(pthread_create(&th[s][k], NULL, k == 2 ? rooms_main : traffic_main, &ta[s][k]) == 0, "pthread_create");
            }
        uint64_t seed = 0xABCDEFull + (uint64_t)round;
        th_sleep_ms((int)(rnd(&seed) % 31));
        for (int s = 0; s < 2; s++) CHECK(pthread_create(&fr[s], NULL, free_main, &h[s]) == 0, "pthread_create");
        for (int s = 0; s < 2; s++) pthread_join(fr[s], NULL);
        /* Both servers are freed: the responses are final now. */
        unsigned last = (unsigned)th_ids_peek(&request_ids);
        for (int s = 0; s < 2; s++)
            for (int k = 0; k < 3; k++) {
                pthread_join(th[s][k], NULL);
                total_after_close += ta[s][k].after_close;
            }
        atomic_store(&stop, true);
        for (int i = 0; i < np; i++) {
            pthread_join(fl[i], NULL);
            total_datagrams += fa[i].sent;
        }
        unsigned acc;
        check_responses(first, last, "free-under-traffic", &acc);
        /* Requests after `last` were all refused (SERVER_CLOSED): none accepted. */
        unsigned acc_late;
        check_responses(last, (unsigned)th_ids_peek(&request_ids), "free-under-traffic (late)", &acc_late);
        CHECK(acc_late == 0, "%u requests accepted after sfu_server_free returned", acc_late);
        total_accepted += acc;
        for (int s = 0; s < 2; s++) check_host(&h[s], "free-under-traffic");
        th_check_no_library_threads(threads0, "free-under-traffic");
    }
    printf("free-under-traffic: %d rounds x 2 servers freed at once, %u accepted requests answered once each, "
           "%ld calls refused with SERVER_CLOSED after the free, %ld datagrams\n",
           rounds, total_accepted, total_after_close, total_datagrams);
    th_end();
}

int main(int argc, char **argv) {
    int rounds = argc > 1 ? atoi(argv[1]) : 10;
    th_ids_init(&request_ids, 1);
    test_mixed();
    test_free_under_traffic(rounds);
    return th_finish();
}
