//! Rendering with the embedded defaults and the real validators.

use crate::common::{require_tool, Test};

#[test]
fn fresh_render_with_embedded_defaults_generates_a_key() {
    let t = Test::new().args(&["render"]);
    let o = t.success();
    assert!(o.stderr.contains("generated key"), "{}", o.stderr);
    assert_eq!(t.mode("out/ssh/id_ed25519"), 0o600);
    assert_eq!(t.mode("out/secrets/http_secret"), 0o600);
    let pubkey = t.read("out/ssh/id_ed25519.pub");
    let authorized = t.read("out/overlay/home/ansible/.ssh/authorized_keys");
    assert_eq!(authorized.trim(), pubkey.trim());
}

#[test]
fn check_passes_for_defaults() {
    let require = std::env::var("REGBAKE_REQUIRE_TOOLS").as_deref() == Ok("1");
    for tool in [
        "ksvalidator",
        "visudo",
        "sshd",
        "shellcheck",
        "systemd-analyze",
    ] {
        require_tool(tool);
    }
    let args: &[&str] = if require {
        &["check", "--require-all"]
    } else {
        &["check"]
    };
    Test::new().args(args).success();
}
