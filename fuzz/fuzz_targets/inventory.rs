//! Ansible INI inventories: parse, then each host's config as a fleet render
//! makes and validates it.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(inv) = regbake::config::inventory::parse("fuzz.ini", text) else {
        return;
    };
    let base = regbake::config::parse(regbake::config::DEFAULT_TOML).expect("defaults");
    for host in &inv.hosts {
        let c = regbake::fleet::host_config(&base, host);
        let _ = regbake::config::validate(&c);
    }
});
