// sfu.h as C++: compiles cleanly (-Wall -Wextra -Werror -pedantic, C++11 and later),
// survives double inclusion, declares the functions with C linkage (this program
// links against the library) and its types are usable from C++ (a capture-less
// lambda as the callback, enums in constant expressions).
#include "sfu.h"
#include "sfu.h"  // twice on purpose

#include <cstdio>
#include <cstring>
#include <type_traits>

static_assert(SFU_RESULT_OK == 0 && SFU_RESULT_INTERNAL == 10, "sfu_result values");
static_assert(SFU_EVENT_KIND_RESPONSE == 0 && SFU_EVENT_KIND_HOST == 2, "sfu_event_kind values");
static_assert(sizeof(sfu_result) == sizeof(int), "sfu_result is int-sized");
static_assert(std::is_same<decltype(&sfu_server_new),
                           sfu_result (*)(const char *, sfu_event_fn, void *, sfu_userdata_free_fn, sfu_server **)>::value,
              "sfu_server_new signature");
static_assert(std::is_same<decltype(&sfu_server_request),
                           sfu_result (*)(sfu_server *, const char *, const char *, uint64_t, const char *)>::value,
              "sfu_server_request signature");
static_assert(std::is_same<decltype(&sfu_server_free), void (*)(sfu_server *)>::value, "sfu_server_free signature");

namespace {
int fail(const char *what) {
    std::printf("FAIL: %s\n", what);
    return 1;
}
}  // namespace

int main() {
    int passed = 0;
    if (std::strcmp(sfu_version(), SFU_VERSION) != 0) return fail("sfu_version() == SFU_VERSION");
    passed++;

    sfu_event_fn cb = [](void *, sfu_event_kind, const char *, const char *, uint64_t, const char *, size_t) {};
    sfu_server *s = nullptr;
    if (sfu_server_new(nullptr, nullptr, nullptr, nullptr, &s) != SFU_RESULT_NULL_ARGUMENT || s != nullptr)
        return fail("sfu_server_new without a callback -> NULL_ARGUMENT");
    if (sfu_server_new("{\"numWorkerz\":1}", cb, nullptr, nullptr, &s) != SFU_RESULT_INVALID_CONFIG ||
        std::strstr(sfu_last_error(), "numWorkerz") == nullptr)
        return fail("invalid config -> INVALID_CONFIG naming the key");
    passed++;

    // A real server from C++, created and freed.
    struct Counter {
        int frees = 0;
    } counter;
    sfu_userdata_free_fn fin = [](void *u) { static_cast<Counter *>(u)->frees++; };
    if (sfu_server_new("{\"numWorkers\":1}", cb, &counter, fin, &s) != SFU_RESULT_OK || s == nullptr)
        return fail("sfu_server_new");
    if (sfu_server_create_room(s, "r", nullptr) != SFU_RESULT_OK) return fail("sfu_server_create_room");
    sfu_server_free(s);
    if (counter.frees != 1) return fail("userdata_free ran exactly once");
    passed++;

    std::printf("%d passed, 0 failed\n", passed);
    return 0;
}
