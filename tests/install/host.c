/* A host built against an *installed* libsfu (tests/install/run.sh compiles it with
 * `pkg-config --cflags --libs sfu`, and once against libsfu.a). Creates a server and a
 * room, then through the callback: queryRoom answered ok:true with the room's
 * rtpCapabilities; alice joins (ok:true); bob joins (ok:true, peers = [alice]); alice is
 * told about bob (newPeer). Prints the file the libsfu code was mapped from, so the
 * caller can check which copy of the library ran. Every wait is bounded (10 s).
 * Exit 0 on success, 1 with a message otherwise. */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sfu.h"

#define MAX_EVENTS 64
#define WAIT_SECONDS 10

/* A client's rtpCapabilities (what mediasoup-client sends for an Opus-only browser). */
#define CAPS "{\"codecs\":[{\"name\":\"opus\",\"mimeType\":\"audio/opus\",\"kind\":\"audio\"," \
             "\"clockRate\":48000,\"channels\":2,\"preferredPayloadType\":100,\"parameters\":{}," \
             "\"rtcpFeedback\":[]}],\"headerExtensions\":[],\"fecMechanisms\":[]}"
#define JOIN(peer) "{\"method\":\"join\",\"target\":\"room\",\"peerName\":\"" peer "\"," \
                   "\"rtpCapabilities\":" CAPS ",\"spy\":false,\"appData\":{}}"

struct event {
    sfu_event_kind kind;
    char peer[64];
    uint64_t request_id;
    char *json;
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static struct event events[MAX_EVENTS];
static int n_events;

static void on_event(void *ud, sfu_event_kind kind, const char *room, const char *peer,
                     uint64_t request_id, const char *json, size_t len) {
    (void)ud;
    (void)room;
    pthread_mutex_lock(&mu);
    if (n_events < MAX_EVENTS) {
        struct event *e = &events[n_events];
        e->kind = kind;
        snprintf(e->peer, sizeof e->peer, "%s", peer);
        e->request_id = request_id;
        e->json = malloc(len + 1);
        if (e->json) {
            memcpy(e->json, json, len);
            e->json[len] = '\0';
            n_events++;
        }
    }
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}

static void fail(const char *what, const char *detail) {
    fprintf(stderr, "host(c): %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
    exit(1);
}

/* The first event matching (kind, peer, request id or 0, substring or NULL), waiting at
 * most WAIT_SECONDS. Returns its JSON (owned by the event list). */
static const char *wait_for(sfu_event_kind kind, const char *peer, uint64_t id, const char *needle) {
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += WAIT_SECONDS;
    const char *found = NULL;
    pthread_mutex_lock(&mu);
    for (;;) {
        for (int i = 0; i < n_events && !found; i++) {
            const struct event *e = &events[i];
            if (e->kind == kind && strcmp(e->peer, peer) == 0 && (id == 0 || e->request_id == id) &&
                (needle == NULL || strstr(e->json, needle) != NULL)) {
                found = e->json;
            }
        }
        if (found || pthread_cond_timedwait(&cv, &mu, &deadline) != 0) break;
    }
    pthread_mutex_unlock(&mu);
    return found;
}

static const char *request(sfu_server *server, const char *peer, uint64_t id, const char *json) {
    if (sfu_server_request(server, "room1", peer, id, json) != SFU_RESULT_OK) fail("sfu_server_request", sfu_last_error());
    const char *answer = wait_for(SFU_EVENT_KIND_RESPONSE, peer, id, NULL);
    if (!answer) fail("no response within 10 s to", json);
    if (!strstr(answer, "\"ok\":true")) fail("request failed", answer);
    return answer;
}

/* The path of the mapping that holds sfu_version's code. */
static void print_loaded_library(void) {
    FILE *maps = fopen("/proc/self/maps", "r");
    if (!maps) fail("cannot read /proc/self/maps", NULL);
    unsigned long want = (unsigned long)(void *)&sfu_version;
    char line[4096];
    while (fgets(line, sizeof line, maps)) {
        unsigned long lo, hi;
        if (sscanf(line, "%lx-%lx", &lo, &hi) == 2 && want >= lo && want < hi) {
            char *path = strchr(line, '/');
            printf("host(c): libsfu code mapped from %s", path ? path : "(anonymous)\n");
        }
    }
    fclose(maps);
}

int main(void) {
    sfu_server *server = NULL;
    if (sfu_server_new("{\"numWorkers\":1,\"rtcIPv4\":\"127.0.0.1\"}", on_event, NULL, NULL, &server) != SFU_RESULT_OK)
        fail("sfu_server_new", sfu_last_error());
    if (sfu_server_create_room(server, "room1", NULL) != SFU_RESULT_OK) fail("sfu_server_create_room", sfu_last_error());

    const char *q = request(server, "alice", 1, "{\"method\":\"queryRoom\",\"target\":\"room\"}");
    if (!strstr(q, "\"rtpCapabilities\":{\"codecs\":[")) fail("queryRoom without rtpCapabilities", q);
    request(server, "alice", 2, JOIN("alice"));
    const char *b = request(server, "bob", 3, JOIN("bob"));
    if (!strstr(b, "\"peers\":[{") || !strstr(b, "\"name\":\"alice\"")) fail("bob's join does not list alice", b);
    const char *np = wait_for(SFU_EVENT_KIND_NOTIFICATION, "alice", 0, "\"method\":\"newPeer\"");
    if (!np || !strstr(np, "\"name\":\"bob\"")) fail("alice got no newPeer for bob", np);

    print_loaded_library();
    printf("host(c): sfu %s: queryRoom, join alice, join bob (peers [alice]), newPeer to alice: ok\n", sfu_version());
    sfu_server_free(server);
    for (int i = 0; i < n_events; i++) free(events[i].json);
    return 0;
}
