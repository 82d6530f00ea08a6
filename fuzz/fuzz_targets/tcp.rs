//! cargo-fuzz target `tcp`: see `run_tcp_input` in crates/sfu-testkit/src/fuzz.rs for the input format.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    sfu_fuzz::harness::run_tcp_input(data);
});
