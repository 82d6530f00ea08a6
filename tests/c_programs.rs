//! Builds and runs the C/C++ programs against the release C library:
//! `tests/c/*` (the C ABI under ASan/UBSan/LeakSanitizer: control plane, shutdown
//! races; the header as C and C++) and the documented example `examples/c` (through
//! its Makefile). `tests/c/stdio_host.c` is built and driven by tests/c_media.rs.
//!
//! The library is NOT built from here: `cargo build --release` (scripts/test.sh does
//! it first) must have produced `target/release/libsfu.so`. Build outputs go to
//! `target/c-tests/`. Needs gcc, g++, make and nm (binutils).

use std::process::Command;

use sfu_testkit::cbuild::{assert_instrumented, assert_passed_line, build, lib_dir, out_dir, root, run, run_args, run_checked, SANITIZE};

#[test]
fn c_control_plane_under_sanitizers() {
    let exe = build("gcc", "c11", &["tests/c/control_plane.c"], "control_plane");
    assert_instrumented(&exe);
    let out = run(&exe);
    assert_passed_line(&out, 8);
}

/// tests/c/shutdown.c: sfu_server_free from inside the callback, racing requests
/// (30 runs) and from two threads at once (20 runs), under the sanitizers.
#[test]
fn c_shutdown_races_under_sanitizers() {
    let exe = build("gcc", "c11", &["tests/c/shutdown.c"], "shutdown");
    assert_instrumented(&exe);
    let out = run(&exe);
    assert_passed_line(&out, 3);
}

/// sfu_server_free from inside the callback of the last queued event: userdata_free
/// must still run (exactly once) once the callback returns.
#[test]
fn c_free_in_last_callback_runs_userdata_free() {
    let exe = build("gcc", "c11", &["tests/c/shutdown.c"], "shutdown_last_event");
    assert_instrumented(&exe);
    let out = run_args(&exe, &["last-event"]);
    assert_passed_line(&out, 1);
}

/// tests/c/churn.c: 600 join -> produce -> consume -> leave cycles (2 lanes, rooms
/// re-created every 50): LeakSanitizer finds nothing while the server runs nor at exit;
/// no fd or thread left. The 10,000-cycle run with heap/RSS figures: scripts/churn.sh.
#[test]
fn c_churn_leaks_nothing_under_lsan() {
    let exe = build("gcc", "c11", &["tests/c/churn.c"], "churn");
    assert_instrumented(&exe);
    let out = run_args(&exe, &["600", "2"]);
    assert_passed_line(&out, 4);
}

/// tests/c/concurrency.c: 8 host threads of mixed calls (every accepted request answered
/// once), then two servers freed at once while requests, room churn and UDP floods go
/// on (5 rounds): no callback after the free, no library thread left.
#[test]
fn c_concurrency_and_free_under_traffic_under_sanitizers() {
    let exe = build("gcc", "c11", &["tests/c/concurrency.c"], "concurrency");
    assert_instrumented(&exe);
    let out = run_args(&exe, &["5"]);
    assert_passed_line(&out, 2);
}

/// tests/c/observability.c: the log callback (thread, order with events, per-server
/// level, replacement and finalizers, refusals) and sfu_server_metrics /
/// sfu_string_free (ownership, NULL arguments, from inside the callback).
#[test]
fn c_log_callback_and_metrics_under_sanitizers() {
    let exe = build("gcc", "c11", &["tests/c/observability.c"], "observability");
    assert_instrumented(&exe);
    let out = run(&exe);
    assert_passed_line(&out, 6);
}

#[test]
fn header_compiles_as_c_and_survives_double_inclusion() {
    // Every C standard the header claims (C99 and later), pedantic.
    for std in ["c99", "c11", "c17", "gnu11"] {
        run_checked(
            Command::new("gcc")
                .arg(format!("-std={std}"))
                .args(["-Wall", "-Wextra", "-Werror", "-pedantic", "-Wstrict-prototypes", "-Wmissing-prototypes", "-fsyntax-only", "-I"])
                .arg(root().join("include"))
                .arg(root().join("tests/c/header_twice.c")),
            &format!("gcc -std={std} on tests/c/header_twice.c"),
        );
    }
    let exe = build("gcc", "c11", &["tests/c/header_twice.c"], "header_c");
    assert_instrumented(&exe);
    assert_passed_line(&run(&exe), 3);
}

#[test]
fn header_compiles_as_cpp_with_c_linkage() {
    for std in ["c++11", "c++14", "c++17", "c++20"] {
        run_checked(
            Command::new("g++")
                .arg(format!("-std={std}"))
                .args(["-Wall", "-Wextra", "-Werror", "-pedantic", "-fsyntax-only", "-I"])
                .arg(root().join("include"))
                .arg(root().join("tests/c/header_cpp.cpp")),
            &format!("g++ -std={std} on tests/c/header_cpp.cpp"),
        );
    }
    // Linking proves the declarations have C linkage (no mangled names).
    let exe = build("g++", "c++17", &["tests/c/header_cpp.cpp"], "header_cpp");
    assert_instrumented(&exe);
    assert_passed_line(&run(&exe), 3);
}

#[test]
fn example_minimal_builds_with_its_makefile_and_runs() {
    let lib = lib_dir();
    let dir = out_dir("example");
    let cflags = format!("-std=c11 -Wall -Wextra -Werror {}", SANITIZE.join(" "));
    // -B: always rebuild (flags may differ from a previous build).
    run_checked(
        Command::new("make")
            .arg("-B")
            .arg("-C")
            .arg(root().join("examples/c"))
            .arg(format!("ROOT={}", root().display()))
            .arg(format!("LIBDIR={}", lib.display()))
            .arg(format!("OUT={}", dir.display()))
            .arg("CC=gcc")
            .arg(format!("CFLAGS={cflags}")),
        "make -C examples/c",
    );
    let exe = dir.join("minimal");
    assert_instrumented(&exe);
    let out = run(&exe);
    for want in ["alice -> {\"method\":\"queryRoom\"", "alice -> {\"method\":\"join\"", "\"iceParameters\"", "done"] {
        assert!(out.contains(want), "the example's output has {want:?}:\n{out}");
    }
}
