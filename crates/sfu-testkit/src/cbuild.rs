//! Building and running the project's C and C++ test programs against the release C
//! library (`target/release/libsfu.so`): gcc/g++ with ASan, UBSan and LeakSanitizer,
//! an rpath to the library, bounded runs. Used by tests/c_programs.rs and
//! tests/c_media.rs.
//!
//! The library is NOT built from here: `cargo build --release` (scripts/test.sh does it
//! first) must have produced it. Build outputs go to `target/c-tests/`. Needs gcc, g++,
//! make, nm and readelf.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

/// A program that runs longer is killed and the test fails.
pub const RUN_TIMEOUT: Duration = Duration::from_secs(120);

/// Sanitizers for every program: errors abort (UBSan otherwise only prints).
pub const SANITIZE: &[&str] = &["-g", "-fno-omit-frame-pointer", "-fsanitize=address,undefined", "-fno-sanitize-recover=all"];

/// The repository's root directory.
pub fn root() -> PathBuf {
    let kit = Path::new(env!("CARGO_MANIFEST_DIR"));
    kit.join("../..").canonicalize().unwrap_or_else(|_| kit.join("../.."))
}

pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(d) if Path::new(&d).is_absolute() => PathBuf::from(d),
        Some(d) => root().join(d),
        None => root().join("target"),
    }
}

/// target/release, checked: the library must have been built already.
pub fn lib_dir() -> PathBuf {
    let dir = target_dir().join("release");
    let so = dir.join("libsfu.so");
    assert!(
        so.is_file(),
        "{} is missing: build the C library first with `cargo build --release` \
         (scripts/test.sh does), then run the test again",
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

pub fn out_dir(name: &str) -> PathBuf {
    let d = target_dir().join("c-tests").join(name);
    std::fs::create_dir_all(&d).unwrap_or_else(|e| panic!("creating {}: {e}", d.display()));
    d
}

pub fn run_checked(cmd: &mut Command, what: &str) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: cannot run {cmd:?}: {e}"));
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{what} failed ({}):\n{cmd:?}\n{text}", out.status);
    text
}

/// Compile and link one program with sanitizers and an rpath to the library.
/// `compiler`: "gcc" or "g++"; the binary is built under a temporary name and renamed,
/// so concurrent runs never execute a half-written file.
pub fn build(compiler: &str, std: &str, sources: &[&str], name: &str) -> PathBuf {
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
pub fn assert_instrumented(exe: &Path) {
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
pub fn run(exe: &Path) -> String {
    run_args(exe, &[])
}

/// [`run`] with command-line arguments.
pub fn run_args(exe: &Path, args: &[&str]) -> String {
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
pub fn assert_passed_line(stdout: &str, min: usize) {
    let last = stdout.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("");
    let n: Option<usize> = last.strip_suffix(" passed, 0 failed").and_then(|n| n.trim().parse().ok());
    assert!(
        n.is_some_and(|n| n >= min),
        "the last line should be \"N passed, 0 failed\" with N >= {min}, got {last:?}\n{stdout}"
    );
}

