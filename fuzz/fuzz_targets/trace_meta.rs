//! libFuzzer entry point of the `trace_meta` target; its body (and what it checks) is
//! `tracegate_fuzz_targets::meta`, which the stable corpus replay runs too.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _accepted = tracegate_fuzz_targets::meta::trace_meta(data);
});
