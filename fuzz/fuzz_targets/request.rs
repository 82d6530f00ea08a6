//! cargo-fuzz target `request`: see `run_request_input` in crates/sfu-testkit/src/fuzz.rs for the input format.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    sfu_fuzz::harness::run_request_input(data);
});
