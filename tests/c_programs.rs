//! Builds and runs the C/C++ programs against the release C library:
//! `tests/c/*` (the C ABI under ASan/UBSan/LeakSanitizer: control plane, shutdown
//! races; the header as C and C++) and the documented example `examples/c` (through
//! its Makefile). `tests/c/stdio_host.c` is built and driven by tests/c_media.rs.
//!
//! The library is NOT built from here: `cargo build --release` (scripts/test.sh does
//! it first) must have produced `target/release/libsfu.so`. Build outputs go to
//! `target/c-tests/`. Needs gcc, g++, make and nm (binutils).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

/// A program that runs longer is killed and the test fails.
const RUN_TIMEOUT: Duration = Duration::from_secs(120);

/// Sanitizers for every program: errors abort (UBSan otherwise only prints).
const SANITIZE: &[&str] = &["-g", "-fno-omit-frame-pointer", "-fsanitize=address,undefined", "-fno-sanitize-recover=all"];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(d) if Path::new(&d).is_absolute() => PathBuf::from(d),
        Some(d) => root().join(d),
        None => root().join("target"),
    }
}

/// target/release, checked: the library must have been built already.
fn lib_dir() -> PathBuf {
    let dir = target_dir().join("release");
    let so = dir.join("libsfu.so");
    assert!(
        so.is_file(),
        "{} is missing: build the C library first with `cargo build --release` \
         (scripts/test.sh does), then run `cargo test --release --test c_programs`",
        so.display()
    );
    if let Some(newer) = newest_source_after(&so) {
        eprintln!(
            "warning: {} is newer than {}: the C programs may run against a stale library \
             (run `cargo build --release`)",
            newer.display(),
            so.display()
        );
    }
    dir
}

/// A file under src/ (or cbindgen.toml/build.rs) modified after `artifact`.
fn newest_source_after(artifact: &Path) -> Option<PathBuf> {
    let built = std::fs::metadata(artifact).and_then(|m| m.modified()).ok()?;
    fn walk(dir: &Path, built: SystemTime, out: &mut Option<PathBuf>) {
        let Ok(rd) = std::fs::read_dir(dir) else { return };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, built, out);
            } else if p.extension().is_some_and(|x| x == "rs")
                && e.metadata().and_then(|m| m.modified()).is_ok_and(|m| m > built)
            {
                *out = Some(p);
            }
        }
    }
    let mut found = None;
    walk(&root().join("src"), built, &mut found);
    found
}

fn out_dir(name: &str) -> PathBuf {
    let d = target_dir().join("c-tests").join(name);
    std::fs::create_dir_all(&d).unwrap_or_else(|e| panic!("creating {}: {e}", d.display()));
    d
}

fn run_checked(cmd: &mut Command, what: &str) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: cannot run {cmd:?}: {e}"));
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{what} failed ({}):\n{cmd:?}\n{text}", out.status);
    text
}

/// Compile and link one program with sanitizers and an rpath to the library.
/// `compiler`: "gcc" or "g++"; the binary is built under a temporary name and renamed,
/// so concurrent runs never execute a half-written file.
fn build(compiler: &str, std: &str, sources: &[&str], name: &str) -> PathBuf {
    let lib = lib_dir();
    let dir = out_dir(name);
    let exe = dir.join(name);
    let tmp = dir.join(format!("{name}.{}.tmp", std::process::id()));
    let mut cmd = Command::new(compiler);
    cmd.arg(format!("-std={std}"))
        .args(["-Wall", "-Wextra", "-Werror"])
        .args(SANITIZE)
        .arg("-I")
        .arg(root().join("include"));
    for s in sources {
        cmd.arg(root().join(s));
    }
    cmd.arg("-o")
        .arg(&tmp)
        .arg("-L")
        .arg(&lib)
        .arg("-lsfu")
        .arg(format!("-Wl,-rpath,{}", lib.display()))
        .args(["-lpthread", "-lm"]);
    run_checked(&mut cmd, &format!("compiling {name}"));
    std::fs::rename(&tmp, &exe).unwrap_or_else(|e| panic!("renaming {}: {e}", tmp.display()));
    exe
}

/// Like rustls-ffi's C tests: prove the sanitizer really is in the binary, and that
/// it resolves the library from target/release (rpath), not from somewhere else.
fn assert_instrumented(exe: &Path) {
    let syms = run_checked(Command::new("nm").arg(exe), "nm");
    assert!(syms.contains("__asan_init"), "{} is not built with AddressSanitizer (no __asan_init)", exe.display());
    let dynamic = run_checked(Command::new("readelf").arg("-d").arg(exe), "readelf -d");
    let lib = lib_dir();
    assert!(
        dynamic.lines().any(|l| (l.contains("RUNPATH") || l.contains("RPATH")) && l.contains(&*lib.to_string_lossy())),
        "{} has no rpath to {}:\n{dynamic}",
        exe.display(),
        lib.display()
    );
}

/// Run with a bounded time under the sanitizers' strict settings; returns stdout.
/// Panics (with the program's output) on timeout or a non-zero exit.
fn run(exe: &Path) -> String {
    run_args(exe, &[])
}

/// [`run`] with command-line arguments.
fn run_args(exe: &Path, args: &[&str]) -> String {
    let mut child = Command::new(exe)
        .args(args)
        .current_dir(exe.parent().unwrap())
        // The rpath must be what finds libsfu.so (cargo sets LD_LIBRARY_PATH for tests).
        .env_remove("LD_LIBRARY_PATH")
        .env("ASAN_OPTIONS", "detect_leaks=1:halt_on_error=1:abort_on_error=0:strict_string_checks=1")
        .env("LSAN_OPTIONS", "report_objects=1")
        .env("UBSAN_OPTIONS", "halt_on_error=1:print_stacktrace=1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", exe.display()));
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = r.read_to_end(&mut v);
            String::from_utf8_lossy(&v).into_owned()
        })
    };
    let out = drain(Box::new(child.stdout.take().unwrap()));
    let err = drain(Box::new(child.stderr.take().unwrap()));
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("waiting for the program") {
            break Some(s);
        }
        if start.elapsed() > RUN_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let (stdout, stderr) = (out.join().unwrap(), err.join().unwrap());
    let shown = format!("--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}");
    match status {
        None => panic!("{} did not finish within {RUN_TIMEOUT:?} (killed)\n{shown}", exe.display()),
        Some(s) => assert!(s.success(), "{} exited with {s}\n{shown}", exe.display()),
    }
    stdout
}

/// The closing line CI recognises: "N passed, 0 failed" with N > 0.
fn assert_passed_line(stdout: &str, min: usize) {
    let last = stdout.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("");
    let n: Option<usize> = last.strip_suffix(" passed, 0 failed").and_then(|n| n.trim().parse().ok());
    assert!(
        n.is_some_and(|n| n >= min),
        "the last line should be \"N passed, 0 failed\" with N >= {min}, got {last:?}\n{stdout}"
    );
}

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
