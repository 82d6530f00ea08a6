/*
 * sfu.h as C: it compiles cleanly (-Wall -Wextra -Werror -pedantic, C99 and later),
 * including it twice is harmless (include guard), and its declarations have the
 * types the documentation promises. Also linked and run against the library.
 */
#include "sfu.h"
#include "sfu.h" /* twice on purpose */

#include <stdio.h>
#include <string.h>

/* The ABI's types, checked at compile time: assigning the functions to pointers of
 * the documented types fails to compile if a signature drifts. */
static sfu_result (*const check_new)(const char *, sfu_event_fn, void *, sfu_userdata_free_fn,
                                     sfu_server **) = sfu_server_new;
static sfu_result (*const check_create)(sfu_server *, const char *, const char *) = sfu_server_create_room;
static sfu_result (*const check_close_room)(sfu_server *, const char *) = sfu_server_close_room;
static sfu_result (*const check_close_peer)(sfu_server *, const char *, const char *) = sfu_server_close_peer;
static sfu_result (*const check_request)(sfu_server *, const char *, const char *, uint64_t,
                                         const char *) = sfu_server_request;
static sfu_result (*const check_notify)(sfu_server *, const char *, const char *, const char *) = sfu_server_notify;
static void (*const check_free)(sfu_server *) = sfu_server_free;
static const char *(*const check_version)(void) = sfu_version;
static const char *(*const check_last_error)(void) = sfu_last_error;

static void cb(void *userdata, sfu_event_kind kind, const char *room_id, const char *peer_name,
               uint64_t request_id, const char *json, size_t json_len) {
    (void)userdata, (void)kind, (void)room_id, (void)peer_name, (void)request_id, (void)json, (void)json_len;
}
static const sfu_event_fn check_cb = cb;

#if __STDC_VERSION__ >= 201112L
_Static_assert(SFU_RESULT_OK == 0 && SFU_RESULT_NULL_ARGUMENT == 1 && SFU_RESULT_INVALID_UTF8 == 2 &&
                   SFU_RESULT_INVALID_CONFIG == 3 && SFU_RESULT_INVALID_ARGUMENT == 4 &&
                   SFU_RESULT_ROOM_EXISTS == 5 && SFU_RESULT_ROOM_NOT_FOUND == 6 &&
                   SFU_RESULT_PEER_NOT_FOUND == 7 && SFU_RESULT_SERVER_CLOSED == 8 && SFU_RESULT_IO == 9 &&
                   SFU_RESULT_INTERNAL == 10,
               "sfu_result values");
_Static_assert(SFU_EVENT_KIND_RESPONSE == 0 && SFU_EVENT_KIND_NOTIFICATION == 1 && SFU_EVENT_KIND_HOST == 2,
               "sfu_event_kind values");
_Static_assert(sizeof(sfu_result) == sizeof(int) && sizeof(sfu_event_kind) == sizeof(int),
               "C enums are int-sized, as Rust's #[repr(C)] enums");
#endif

#define FAIL(...) (printf("FAIL: " __VA_ARGS__), printf("\n"), 1)

int main(void) {
    int passed = 0;
    sfu_server *s = NULL;
    if (strcmp(check_version(), SFU_VERSION) != 0) return FAIL("sfu_version() \"%s\" != \"%s\"", check_version(), SFU_VERSION);
    passed++;
    if (check_new(NULL, NULL, NULL, NULL, &s) != SFU_RESULT_NULL_ARGUMENT || s != NULL)
        return FAIL("sfu_server_new without a callback");
    if (strlen(check_last_error()) == 0) return FAIL("sfu_last_error() is empty after a failure");
    passed++;
    if (check_create(NULL, "r", NULL) != SFU_RESULT_NULL_ARGUMENT || check_close_room(NULL, "r") != SFU_RESULT_NULL_ARGUMENT ||
        check_close_peer(NULL, "r", "p") != SFU_RESULT_NULL_ARGUMENT ||
        check_request(NULL, "r", "p", 1, "{}") != SFU_RESULT_NULL_ARGUMENT ||
        check_notify(NULL, "r", "p", "{}") != SFU_RESULT_NULL_ARGUMENT)
        return FAIL("NULL server");
    check_free(NULL);
    (void)check_cb;
    passed++;
    printf("%d passed, 0 failed\n", passed);
    return 0;
}
