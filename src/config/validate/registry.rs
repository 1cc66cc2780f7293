//! [registry]: the values, then versions, TLS files, auth, storage, mirror
//! and garbage collection.

use crate::config::calendar::{is_on_calendar, CALENDAR_HELP};
use crate::config::error::Problems;
use crate::config::grammar::{
    is_bcrypt, is_bucket, is_duration, is_env_name, is_hostname, is_image_ref, is_key_prefix,
    is_name, is_url, ENV_HELP, NAME_HELP, SSH_PORT, URL_HELP,
};
use crate::config::schema::{Backend, Config, RegistrySection, TlsMode};

/// [registry] (the values; [`registry_backends`] the rest)
pub(super) fn registry(c: &Config, p: &mut Problems) {
    p.check(
        is_image_ref(&c.registry.image),
        "registry.image",
        &c.registry.image,
        "expected an image reference such as registry:2 or host:5000/library/registry:2.8.3",
    );
    p.check(
        c.registry.port <= 65535,
        "registry.port",
        c.registry.port,
        "expected a port number from 1 to 65535, or 0 for the default (5000, or 443 with TLS)",
    );
    p.check(
        c.registry.port != SSH_PORT,
        "registry.port",
        c.registry.port,
        "expected a port other than 22, where the appliance's sshd listens",
    );
    p.check(
        is_name(&c.registry.container_name),
        "registry.container_name",
        &c.registry.container_name,
        NAME_HELP,
    );
    registry_backends(c, p);
    // Checked even when disabled: the value is kept for when it is enabled.
    p.check(
        is_on_calendar(&c.registry.gc.schedule),
        "registry.gc.schedule",
        &c.registry.gc.schedule,
        CALENDAR_HELP,
    );
    p.check(
        !c.registry.gc.delete_untagged || c.registry.effective_major() >= 3,
        "registry.gc.delete_untagged",
        "true",
        "false with registry 2.x: before distribution 3.0, garbage-collect --delete-untagged also deletes the per-platform images of multi-arch images (distribution issues #3178, #3004), so their pulls fail; use registry.image = \"registry:3\" to collect untagged manifests",
    );
    for (i, san) in c.registry.tls.sans.iter().enumerate() {
        p.check(
            is_hostname(san) || san.parse::<std::net::IpAddr>().is_ok(),
            format!("registry.tls.sans[{i}]"),
            san,
            "expected a DNS name or an IP address",
        );
    }
    p.range(
        "registry.tls.days",
        c.registry.tls.days,
        1..=3650,
        "expected a number of days from 1 to 3650",
    );
}

/// [registry]: versions, TLS files, auth, storage, mirror.
fn registry_backends(c: &Config, p: &mut Problems) {
    let r = &c.registry;
    versions(r, p);
    tls_files(r, p);
    auth(r, p);
    storage(r, p);
    mirror(r, p);
}

/// The major version, the secret, purge age and metrics port.
fn versions(r: &RegistrySection, p: &mut Problems) {
    p.check(
        [0, 2, 3].contains(&r.major),
        "registry.major",
        r.major,
        "expected 2 or 3 (the distribution major version), or 0 to take it from the image tag",
    );
    p.check(
        r.http_secret_env.is_empty() || is_env_name(&r.http_secret_env),
        "registry.http_secret_env",
        &r.http_secret_env,
        ENV_HELP,
    );
    p.check(
        r.upload_purge_age.is_empty() || is_duration(&r.upload_purge_age),
        "registry.upload_purge_age",
        &r.upload_purge_age,
        "expected a duration such as 168h or 30m, or \"\" to keep abandoned uploads",
    );
    // The port is only bound with metrics on: off, it may be anything in
    // range (the default 5001 is a fine registry port then).
    p.check(
        (1..=65535).contains(&r.metrics_port)
            && !(r.metrics
                && (r.metrics_port == u32::from(r.effective_port()) || r.metrics_port == SSH_PORT)),
        "registry.metrics_port",
        r.metrics_port,
        "expected a port number from 1 to 65535 other than the registry port and ssh's 22",
    );
}

/// TLS files: the paths only; their content is checked when read.
fn tls_files(r: &RegistrySection, p: &mut Problems) {
    match r.tls.mode {
        TlsMode::Files => {
            for (field, v, required) in [
                ("registry.tls.cert", &r.tls.cert, true),
                ("registry.tls.key", &r.tls.key, true),
                ("registry.tls.ca", &r.tls.ca, false),
            ] {
                p.check(
                    (!required && v.is_empty()) || (!v.is_empty() && !v.chars().any(char::is_control)),
                    field,
                    v,
                    "expected the path of a PEM file (required with tls.mode = \"files\", except ca)",
                );
            }
        }
        _ => {
            for (field, v) in [
                ("registry.tls.cert", &r.tls.cert),
                ("registry.tls.key", &r.tls.key),
                ("registry.tls.ca", &r.tls.ca),
            ] {
                p.check(
                    v.is_empty(),
                    field,
                    v,
                    "only used with tls.mode = \"files\"",
                );
            }
        }
    }
}

/// Basic auth: its users, each with one kind of password.
fn auth(r: &RegistrySection, p: &mut Problems) {
    if !r.auth.users.is_empty() && r.tls.mode == TlsMode::Off {
        p.push(
            "registry.auth.users",
            format!("{} user(s)", r.auth.users.len()),
            "basic auth needs TLS (the registry sends credentials only over HTTPS): set registry.tls.mode = \"generate\" or \"files\"",
        );
    }
    p.check(
        (4..=12).contains(&r.auth.bcrypt_cost),
        "registry.auth.bcrypt_cost",
        r.auth.bcrypt_cost,
        "expected a bcrypt cost from 4 to 12 (each step doubles the CPU every authenticated request costs)",
    );
    let mut seen = std::collections::HashSet::new();
    for (i, u) in r.auth.users.iter().enumerate() {
        let base = format!("registry.auth.users[{i}]");
        p.check(
            !u.name.is_empty()
                && u.name.len() <= 64
                && u.name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-@".contains(c)),
            format!("{base}.name"),
            &u.name,
            "expected a user name of letters, digits and . _ - @",
        );
        if !seen.insert(u.name.clone()) {
            p.push(
                format!("{base}.name"),
                &u.name,
                "expected each user name once",
            );
        }
        match (u.password_hash.is_empty(), u.password_env.is_empty()) {
            (false, true) => p.check(
                is_bcrypt(&u.password_hash),
                format!("{base}.password_hash"),
                &u.password_hash,
                "expected a bcrypt hash ($2y$, $2a$ or $2b$; the registry accepts bcrypt only), e.g. from `htpasswd -nbB`",
            ),
            (true, false) => p.check(
                is_env_name(&u.password_env),
                format!("{base}.password_env"),
                &u.password_env,
                ENV_HELP,
            ),
            _ => p.push(
                base.clone(),
                &u.name,
                "expected exactly one of password_hash (bcrypt) and password_env",
            ),
        }
    }
}

/// The storage backend: S3's settings, set only for S3.
fn storage(r: &RegistrySection, p: &mut Problems) {
    let s = &r.storage;
    if s.backend == Backend::S3 {
        p.check(
            is_bucket(&s.bucket),
            "registry.storage.bucket",
            &s.bucket,
            "expected an S3 bucket name (3-63 of lowercase letters, digits, '.' and '-')",
        );
        p.check(
            !s.region.is_empty()
                && s.region.len() <= 32
                && s.region
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-'),
            "registry.storage.region",
            &s.region,
            "expected a region such as us-east-1 (any value the endpoint accepts for MinIO/Ceph)",
        );
        p.check(
            s.endpoint.is_empty() || is_url(&s.endpoint),
            "registry.storage.endpoint",
            &s.endpoint,
            URL_HELP,
        );
        for (field, v) in [
            ("registry.storage.access_key_env", &s.access_key_env),
            ("registry.storage.secret_key_env", &s.secret_key_env),
        ] {
            p.check(v.is_empty() || is_env_name(v), field, v, ENV_HELP);
        }
        if s.access_key_env.is_empty() != s.secret_key_env.is_empty() {
            p.push(
                "registry.storage.secret_key_env",
                &s.secret_key_env,
                "expected both access_key_env and secret_key_env, or neither (instance credentials)",
            );
        }
        p.check(
            s.root_directory.is_empty() || is_key_prefix(&s.root_directory),
            "registry.storage.root_directory",
            &s.root_directory,
            "expected an absolute key prefix such as /registry",
        );
    } else {
        for (field, v) in [
            ("registry.storage.bucket", &s.bucket),
            ("registry.storage.region", &s.region),
            ("registry.storage.endpoint", &s.endpoint),
            ("registry.storage.access_key_env", &s.access_key_env),
            ("registry.storage.secret_key_env", &s.secret_key_env),
            ("registry.storage.root_directory", &s.root_directory),
        ] {
            p.check(
                v.is_empty(),
                field,
                v,
                "only used with registry.storage.backend = \"s3\"",
            );
        }
    }
}

/// The pull-through cache.
fn mirror(r: &RegistrySection, p: &mut Problems) {
    if let Some(m) = &r.mirror {
        p.check(
            is_url(&m.remote_url),
            "registry.mirror.remote_url",
            &m.remote_url,
            URL_HELP,
        );
        for (field, v) in [
            ("registry.mirror.username_env", &m.username_env),
            ("registry.mirror.password_env", &m.password_env),
        ] {
            p.check(v.is_empty() || is_env_name(v), field, v, ENV_HELP);
        }
        if m.username_env.is_empty() != m.password_env.is_empty() {
            p.push(
                "registry.mirror.password_env",
                &m.password_env,
                "expected both username_env and password_env, or neither (anonymous pulls)",
            );
        }
    }
}
