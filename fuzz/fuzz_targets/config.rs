//! regbake.toml: parse, validate, and for a valid config resolve and render
//! everything. Any input must give a result or an error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use regbake::model::secrets::{SecretStore, Slot};
use regbake::model::{Appliance, Facts};
use regbake::render::{render, Scope};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(config) = regbake::config::parse(text) else {
        return;
    };
    if !regbake::config::validate(&config).is_empty() {
        return;
    }
    let mut store = SecretStore::default();
    if let Ok(app) = Appliance::resolve(&config, &mut store, &Facts::default(), Slot::Single) {
        let _ = render(&app, Scope::All);
    }
});
