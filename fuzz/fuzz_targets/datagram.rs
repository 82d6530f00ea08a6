//! cargo-fuzz target `datagram`: see `run_datagram_input` in crates/sfu-testkit/src/fuzz.rs for the input format.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    sfu_fuzz::harness::run_datagram_input(data);
});
