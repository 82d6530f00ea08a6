//! Generates `include/sfu.h` with cbindgen (written only when its bytes change) and
//! `sfu.pc` for pkg-config; on Linux, gives the shared library its soname (see
//! [`soname`]) and puts the soname link next to it in the build output.

use std::path::PathBuf;

fn main() {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let version = std::env::var("CARGO_PKG_VERSION").unwrap();
    let mut parts = version.split(['.', '-']);
    let (major, minor, patch) = (
        parts.next().unwrap_or("0").to_string(),
        parts.next().unwrap_or("0").to_string(),
        parts.next().unwrap_or("0").to_string(),
    );
    println!("cargo:rerun-if-changed=src/ffi");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    println!("cargo:rerun-if-changed=sfu.pc.in");
    println!("cargo:rerun-if-changed=build.rs");

    let mut config = cbindgen::Config::from_file(root.join("cbindgen.toml")).expect("cbindgen.toml");
    config.after_includes = Some(format!(
        "\n#define SFU_VERSION \"{version}\"\n#define SFU_VERSION_MAJOR {major}\n#define SFU_VERSION_MINOR {minor}\n#define SFU_VERSION_PATCH {patch}\n"
    ));
    let header = root.join("include").join("sfu.h");
    match cbindgen::Builder::new().with_crate(&root).with_config(config).generate() {
        Ok(b) => {
            let mut out = Vec::new();
            b.write(&mut out);
            let old = std::fs::read(&header).unwrap_or_default();
            if old != out {
                std::fs::create_dir_all(header.parent().unwrap()).unwrap();
                std::fs::write(&header, &out).unwrap();
            }
        }
        Err(e) => {
            println!("cargo:warning=cbindgen failed: {e}");
        }
    }

    // The profile directory: target/<profile>/build/sfu-xxx/out -> target/<profile>
    // (target/<triple>/<profile> when cross-building), where cargo puts libsfu.so.
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    let profile_dir = out.ancestors().nth(3).map(PathBuf::from);

    // The soname: a program linked with -lsfu records it (DT_NEEDED), and the dynamic
    // loader then looks for a file of that name. `make install` (scripts/install.sh)
    // installs libsfu.so.X.Y.Z with this link; in the build output the same link points
    // at libsfu.so so that programs linked against target/<profile> keep running.
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        let name = soname(&major, &minor);
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,{name}");
        if let Some(dir) = &profile_dir {
            soname_link(&dir.join(&name));
        }
    }

    // pkg-config file next to the build output (prefix = the repository, libdir = the
    // build output). scripts/install.sh writes the installed one from the same template.
    if let (Ok(tpl), Some(dir)) = (std::fs::read_to_string(root.join("sfu.pc.in")), &profile_dir) {
        let pc = tpl
            .replace("@PREFIX@", &root.display().to_string())
            .replace("@LIBDIR@", &dir.display().to_string())
            .replace("@INCLUDEDIR@", "${prefix}/include")
            .replace("@VERSION@", &version);
        let _ = std::fs::write(dir.join("sfu.pc"), pc);
    }
}

/// `libsfu.so.MAJOR`, or `libsfu.so.0.MINOR` before 1.0: until then any minor release
/// may change the C ABI (README, Versioning), so a 0.2 library must not satisfy a
/// program linked against 0.1. Patch releases keep the ABI.
fn soname(major: &str, minor: &str) -> String {
    if major == "0" {
        format!("libsfu.so.0.{minor}")
    } else {
        format!("libsfu.so.{major}")
    }
}

/// `<profile dir>/libsfu.so.0.1 -> libsfu.so` (relative, so a copied target dir keeps
/// working). Created before the library is linked; it resolves once cargo puts
/// libsfu.so there.
#[cfg(unix)]
fn soname_link(link: &std::path::Path) {
    let target = std::path::Path::new("libsfu.so");
    if std::fs::read_link(link).ok().as_deref() == Some(target) {
        return;
    }
    let _ = std::fs::remove_file(link);
    if let Err(e) = std::os::unix::fs::symlink(target, link) {
        println!("cargo:warning=cannot create {}: {e}", link.display());
    }
}

#[cfg(not(unix))]
fn soname_link(_link: &std::path::Path) {}
