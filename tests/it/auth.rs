//! htpasswd bcrypt cost (issue 14): the registry verifies a hash on every
//! request with credentials, so regbake hashes at a low cost by default,
//! re-hashes when the setting changes, and `check` warns about a supplied
//! hash that makes each request slow.

use crate::common::Test;
use crate::registry::KEY;

const HTPASSWD: &str = "out/overlay/opt/docker/auth/htpasswd";

fn config(auth: &str, users: &str) -> String {
    format!(
        "version = 1\n[user]\nssh_keys = [\"{KEY}\"]\n[registry.tls]\nmode = \"generate\"\n\
         [registry.auth]\n{auth}\n{users}"
    )
}

const ENV_USER: &str = "[[registry.auth.users]]\nname = \"bob\"\npassword_env = \"BOB_PW\"\n";

/// bob's hash and its cost, from the rendered htpasswd.
fn bob(t: &Test) -> (String, u32) {
    let htpasswd = t.read(HTPASSWD);
    let hash = htpasswd
        .lines()
        .find_map(|l| l.strip_prefix("bob:"))
        .unwrap_or_else(|| panic!("no bob in {htpasswd}"))
        .to_string();
    assert!(hash.starts_with("$2b$"), "{hash}");
    let cost = hash[4..6].parse().expect("a two-digit cost");
    assert!(
        bcrypt::verify("bob-secret", &hash).expect("verify"),
        "{hash}"
    );
    (hash, cost)
}

fn render_with(t: Test, auth: &str) -> Test {
    let t = t
        .config(&config(auth, ENV_USER))
        .env("BOB_PW", "bob-secret")
        .args(&["render"]);
    t.success();
    t
}

#[test]
fn default_cost_is_5_and_a_changed_setting_rehashes() {
    let t = render_with(Test::new(), "");
    let (first, cost) = bob(&t);
    assert_eq!(cost, 5, "the default is htpasswd -B's cost");
    // Unchanged settings keep the hash (and its salt).
    let t = render_with(t, "bcrypt_cost = 5");
    assert_eq!(bob(&t).0, first);
    // A new cost re-hashes on the next render, and back again.
    let t = render_with(t, "bcrypt_cost = 7");
    let (seven, cost) = bob(&t);
    assert_eq!(cost, 7);
    let t = render_with(t, "bcrypt_cost = 7");
    assert_eq!(bob(&t).0, seven, "kept at the new cost");
    let t = render_with(t, "bcrypt_cost = 4");
    let (four, cost) = bob(&t);
    assert_eq!(cost, 4);
    assert_ne!(four, first);
}

#[test]
fn out_of_range_costs_are_refused() {
    for (cost, shown) in [("3", "3"), ("13", "13"), ("31", "31")] {
        let t = Test::new()
            .config(&config(&format!("bcrypt_cost = {cost}"), ENV_USER))
            .env("BOB_PW", "bob-secret")
            .args(&["render"]);
        let t = t
            .status(2)
            .stderr_contains("registry.auth.bcrypt_cost")
            .stderr_contains(shown)
            .stderr_contains("4 to 12");
        t.check();
        assert!(!t.path().join("out").exists());
    }
    let t = Test::new()
        .config(&config("bcrypt_cost = -1", ENV_USER))
        .args(&["render"]);
    t.status(2).stderr_contains("bcrypt_cost").check();
}

#[test]
fn supplied_hashes_outside_go_bcrypt_costs_are_refused() {
    // The registry's Go bcrypt takes costs 4 to 31 only: anything else
    // would lock the user out.
    let good = bcrypt::hash("x", 4).expect("bcrypt");
    for cost in ["03", "32", "99"] {
        let bad = format!("$2b${cost}${}", &good[7..]);
        let users =
            format!("[[registry.auth.users]]\nname = \"alice\"\npassword_hash = \"{bad}\"\n");
        let t = Test::new().config(&config("", &users)).args(&["render"]);
        t.status(2)
            .stderr_contains("registry.auth.users[0].password_hash")
            .check();
    }
}

/// `regbake check ARGS` in `t`'s directory.
fn check(t: Test, args: &[&str]) -> (Test, crate::common::Output) {
    let t = t.args(args);
    let o = t.run();
    assert!(!o.stderr.contains("panicked"), "{}", o.stderr);
    (t, o)
}

/// The `bcrypt cost` lines of JSON check output, and whether any check failed.
fn cost_lines(stdout: &str) -> (Vec<serde_json::Value>, bool) {
    let checks: serde_json::Value = serde_json::from_str(stdout).expect("json");
    let checks = checks.as_array().expect("an array");
    let any_failed = checks.iter().any(|c| c["status"] == "failed");
    let lines = checks
        .iter()
        .filter(|c| c["check"] == "bcrypt cost")
        .cloned()
        .collect();
    (lines, any_failed)
}

#[test]
fn check_warns_about_a_costly_supplied_hash() {
    let costly = bcrypt::hash("alice-secret", 12).expect("bcrypt");
    let cheap = bcrypt::hash("carol-secret", 5).expect("bcrypt");
    let users = format!(
        "[[registry.auth.users]]\nname = \"alice\"\npassword_hash = \"{costly}\"\n\
         [[registry.auth.users]]\nname = \"carol\"\npassword_hash = \"{cheap}\"\n{ENV_USER}"
    );
    let t = Test::new()
        .config(&config("", &users))
        .env("BOB_PW", "bob-secret");

    let (t, o) = check(t, &["check", "--format", "json"]);
    let (lines, any_failed) = cost_lines(&o.stdout);
    // One line per supplied hash; bob's is regbake's own, at bcrypt_cost.
    assert_eq!(lines.len(), 2, "{lines:?}");
    let file = "overlay/opt/docker/auth/htpasswd";
    assert_eq!(lines[0]["status"], "warning", "{:?}", lines[0]);
    assert_eq!(lines[0]["file"], file);
    let msg = lines[0]["message"].as_str().expect("a message");
    assert!(
        msg.contains("registry.auth.users[0].password_hash (alice) has bcrypt cost 12"),
        "{msg}"
    );
    assert!(msg.contains("ms of CPU"), "{msg}");
    assert_eq!(lines[1]["status"], "passed", "{:?}", lines[1]);
    // A warning alone does not fail the check.
    assert_eq!(o.code, i32::from(any_failed), "{}", o.stderr);

    let (t, o) = check(t, &["check"]);
    assert!(
        o.stdout
            .lines()
            .any(|l| l.starts_with("warning  bcrypt cost") && l.ends_with(file)),
        "{}",
        o.stdout
    );
    assert!(o.stdout.contains(" 1 warned, "), "{}", o.stdout);

    // --strict fails on it, as on sshd's warnings.
    let (_, o) = check(t, &["check", "--format", "json", "--strict"]);
    let (lines, _) = cost_lines(&o.stdout);
    assert_eq!(lines[0]["status"], "failed", "{:?}", lines[0]);
    let msg = lines[0]["message"].as_str().expect("a message");
    assert!(msg.starts_with("warnings (strict): "), "{msg}");
    assert_eq!(o.code, 1);
}

/// Issue 18 §22: bcrypt reads 72 bytes of a password; a longer one is
/// refused (naming the field and variable, never the password), so that
/// changing a password after byte 72 cannot silently keep the old one.
#[test]
fn passwords_past_bcrypts_72_bytes_are_refused() {
    let long = "p".repeat(72);
    let t = Test::new()
        .config(&config("", ENV_USER))
        .env("BOB_PW", &long)
        .args(&["render"]);
    t.success();
    let hash = t
        .read(HTPASSWD)
        .lines()
        .find_map(|l| l.strip_prefix("bob:"))
        .expect("bob")
        .to_string();
    assert!(bcrypt::verify(&long, &hash).expect("verify"));
    // The rotation that bcrypt would not see.
    let rotated = format!("{long}-rotated");
    let t = t
        .config(&config("", ENV_USER))
        .env("BOB_PW", &rotated)
        .args(&["render"]);
    let t = t
        .status(2)
        .stderr_contains("registry.auth.users[0].password_env = \"BOB_PW\"")
        .stderr_contains("holds 80 bytes")
        .stderr_contains("at most 72 bytes");
    let o = t.check();
    assert!(!o.stderr.contains(&rotated), "the password was printed");
    assert!(t.read(HTPASSWD).contains(&hash), "the old hash is kept");
}
