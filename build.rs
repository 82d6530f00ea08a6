//! Generates `include/sfu.h` with cbindgen (written only when its bytes change) and
//! `sfu.pc` for pkg-config.

use std::path::PathBuf;

fn main() {
    let dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
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

    let mut config = cbindgen::Config::from_file(dir.join("cbindgen.toml")).expect("cbindgen.toml");
    config.after_includes = Some(format!(
        "\n#define SFU_VERSION \"{version}\"\n#define SFU_VERSION_MAJOR {major}\n#define SFU_VERSION_MINOR {minor}\n#define SFU_VERSION_PATCH {patch}\n"
    ));
    let header = dir.join("include").join("sfu.h");
    match cbindgen::Builder::new().with_crate(&dir).with_config(config).generate() {
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

    // pkg-config file next to the build output (prefix = the repository).
    if let Ok(tpl) = std::fs::read_to_string(dir.join("sfu.pc.in")) {
        let pc = tpl
            .replace("@PREFIX@", &dir.display().to_string())
            .replace("@VERSION@", &version);
        let out = PathBuf::from(std::env::var("OUT_DIR").unwrap());
        // target/<profile>/build/sfu-xxx/out -> target/<profile>/sfu.pc
        if let Some(profile_dir) = out.ancestors().nth(3) {
            let _ = std::fs::write(profile_dir.join("sfu.pc"), pc);
        }
    }
}
