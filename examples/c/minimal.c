/*
 * A minimal sfu host: one server, one room, one scripted peer.
 *
 * A real host receives these JSON messages from a browser running
 * mediasoup-client over its own signaling channel (WebSocket...), passes each to
 * sfu_server_request / sfu_server_notify with the room and the peer it came from,
 * and sends every callback back to that peer. Here the "peer" is a script, and
 * the answers are printed.
 *
 *   make && ./minimal          (see Makefile; needs `cargo build --release` first)
 */
#define _POSIX_C_SOURCE 200809L

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sfu.h"

/* The callback runs on a library thread: hand the answer over to main. */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static uint64_t answered_id;
static char *answer; /* the last response, owned by main once taken */

static void on_event(void *userdata, sfu_event_kind kind, const char *room, const char *peer,
                     uint64_t request_id, const char *json, size_t json_len) {
    (void)userdata, (void)json_len;
    if (kind != SFU_EVENT_KIND_RESPONSE) { /* a notification for `peer`, or a host event */
        printf("  [%s to %s/%s] %s\n", kind == SFU_EVENT_KIND_HOST ? "host event" : "notification", room, peer, json);
        return;
    }
    pthread_mutex_lock(&mu);
    free(answer);
    answer = strdup(json); /* `json` is only valid during the call */
    answered_id = request_id;
    pthread_cond_signal(&cv);
    pthread_mutex_unlock(&mu);
}

/* Send one request and wait (at most 10 s) for its response. Returns a malloc'd string. */
static char *request(sfu_server *s, const char *room, const char *peer, const char *json) {
    static uint64_t next_id = 1;
    uint64_t id = next_id++;
    printf("%s -> %.100s%s\n", peer, json, strlen(json) > 100 ? "..." : "");
    if (sfu_server_request(s, room, peer, id, json) != SFU_RESULT_OK) {
        fprintf(stderr, "sfu_server_request: %s\n", sfu_last_error());
        return NULL;
    }
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += 10;
    char *r = NULL;
    pthread_mutex_lock(&mu);
    while (answered_id != id && pthread_cond_timedwait(&cv, &mu, &deadline) == 0) {
    }
    if (answered_id == id) {
        r = answer;
        answer = NULL;
    }
    pthread_mutex_unlock(&mu);
    printf("%s <- %s\n\n", peer, r ? r : "(no answer within 10 s)");
    return r;
}

/* Copy the JSON object that follows `"key":` in `json` (string-aware brace matching). */
static char *json_object_at(const char *json, const char *key) {
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":{", key);
    const char *start = json ? strstr(json, pat) : NULL;
    if (!start) return NULL;
    start += strlen(pat) - 1;
    int depth = 0, in_str = 0;
    for (const char *p = start; *p; p++) {
        if (in_str) {
            if (*p == '\\' && p[1]) p++;
            else if (*p == '"') in_str = 0;
        } else if (*p == '"') {
            in_str = 1;
        } else if (*p == '{') {
            depth++;
        } else if (*p == '}' && --depth == 0) {
            return strndup(start, (size_t)(p - start + 1));
        }
    }
    return NULL;
}

int main(void) {
    printf("sfu %s\n\n", sfu_version());
    sfu_server *server = NULL;
    if (sfu_server_new("{\"numWorkers\":1,\"rtcIPv4\":\"127.0.0.1\"}", on_event, NULL, NULL, &server) != SFU_RESULT_OK) {
        fprintf(stderr, "sfu_server_new: %s\n", sfu_last_error());
        return 1;
    }
    if (sfu_server_create_room(server, "demo", NULL) != SFU_RESULT_OK) { /* NULL: default codecs */
        fprintf(stderr, "sfu_server_create_room: %s\n", sfu_last_error());
        sfu_server_free(server);
        return 1;
    }

    /* 1. The client asks for the room's capabilities. */
    char *q = request(server, "demo", "alice", "{\"method\":\"queryRoom\",\"target\":\"room\"}");

    /* 2. It joins with the capabilities it can receive. mediasoup-client intersects
     *    the room's with the browser's; this script accepts all of the room's. */
    char *caps = json_object_at(q, "rtpCapabilities");
    char *j = NULL;
    if (caps) {
        size_t n = strlen(caps) + 128;
        char *msg = malloc(n);
        snprintf(msg, n, "{\"method\":\"join\",\"target\":\"room\",\"peerName\":\"alice\",\"rtpCapabilities\":%s,"
                         "\"spy\":false,\"appData\":{}}", caps);
        j = request(server, "demo", "alice", msg);
        free(msg);
    }

    /* 3. A receive transport: the answer has the ICE and DTLS parameters the browser
     *    needs to connect to the server's UDP port. */
    char *t = request(server, "demo", "alice",
                      "{\"method\":\"createTransport\",\"target\":\"peer\",\"id\":12345678,"
                      "\"direction\":\"recv\",\"options\":{},\"appData\":{}}");

    int ok = q && j && t && strstr(j, "\"ok\":true") && strstr(t, "\"ok\":true");
    free(q), free(caps), free(j), free(t);

    /* 4. The client leaves; then the host shuts down. sfu_server_free waits for the
     *    library's threads: no callback runs after it returns. */
    sfu_server_notify(server, "demo", "alice", "{\"method\":\"leave\",\"target\":\"peer\",\"notification\":true}");
    sfu_server_free(server);
    free(answer);
    printf(ok ? "done\n" : "FAILED\n");
    return ok ? 0 : 1;
}
