//! libFuzzer entry point of the `policy_parse` target; its body (and what it checks) is
//! `tracegate_fuzz_targets::policy`, which the stable corpus replay runs too.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _accepted = tracegate_fuzz_targets::policy::policy_parse(data);
});
