//! The overlay: every file the appliance needs, at its target path. It is the
//! single source of truth that all three deliveries install.

use anyhow::{Context, Result};
use handlebars::Handlebars;

use crate::model::{Appliance, CA_ANCHOR, CERTS_DIR};
use crate::tree::Tree;

/// (template, target path, mode); `USER` in a path is the admin user's name.
const FILES: &[(&str, &str, u32)] = &[
    ("overlay/etc/ssh/sshd_config", "etc/ssh/sshd_config", 0o600),
    (
        "overlay/home/USER/.ssh/authorized_keys",
        "home/USER/.ssh/authorized_keys",
        0o600,
    ),
    (
        "overlay/etc/yum.repos.d/CentOS-Base.repo",
        "etc/yum.repos.d/CentOS-Base.repo",
        0o644,
    ),
    (
        "overlay/etc/yum.repos.d/docker-ce.repo",
        "etc/yum.repos.d/docker-ce.repo",
        0o644,
    ),
    (
        "overlay/etc/docker/daemon.json",
        "etc/docker/daemon.json",
        0o644,
    ),
    (
        "overlay/etc/systemd/system/regbake-registry.service",
        "etc/systemd/system/regbake-registry.service",
        0o644,
    ),
    (
        "overlay/etc/systemd/system/regbake-firstboot.service",
        "etc/systemd/system/regbake-firstboot.service",
        0o644,
    ),
    (
        "overlay/usr/local/sbin/regbake-install",
        "usr/local/sbin/regbake-install",
        0o755,
    ),
    (
        "overlay/usr/local/sbin/regbake-firstboot",
        "usr/local/sbin/regbake-firstboot",
        0o755,
    ),
    (
        "overlay/usr/local/sbin/regbake-uninstall",
        "usr/local/sbin/regbake-uninstall",
        0o755,
    ),
    (
        "overlay/etc/firewalld/zones/public.xml",
        "etc/firewalld/zones/public.xml",
        0o644,
    ),
];

pub fn render(hb: &Handlebars<'_>, app: &Appliance) -> Result<Tree> {
    let mut t = Tree::default();
    let user = &app.user.name;
    let mut emit = |template: &str, target: &str, mode: u32| -> Result<()> {
        let text = hb
            .render(template, app)
            .with_context(|| format!("rendering {template}"))?;
        t.add(target.replace("USER", user), text, mode);
        Ok(())
    };
    for (template, target, mode) in FILES {
        emit(template, target, *mode)?;
    }
    let config = format!("{}/config.yml", app.registry.config_dir);
    emit(
        "overlay/etc/docker/registry/config.yml",
        config.trim_start_matches('/'),
        0o600,
    )?;
    if app.user.sudo {
        emit("overlay/etc/sudoers.d/USER", "etc/sudoers.d/USER", 0o440)?;
    }
    if let Some(proxy) = &app.proxy {
        emit("overlay/etc/yum.conf", "etc/yum.conf", 0o644)?;
        if !proxy.http.is_empty() {
            emit(
                "overlay/etc/systemd/system/docker.service.d/http-proxy.conf",
                "etc/systemd/system/docker.service.d/http-proxy.conf",
                0o644,
            )?;
        }
        if !proxy.https.is_empty() {
            emit(
                "overlay/etc/systemd/system/docker.service.d/https-proxy.conf",
                "etc/systemd/system/docker.service.d/https-proxy.conf",
                0o644,
            )?;
        }
    }
    t.add(
        "etc/hostname",
        format!("{}\n", app.appliance.hostname),
        0o644,
    );
    if let Some(tls) = &app.registry_files.tls {
        let certs = CERTS_DIR.trim_start_matches('/');
        t.add(format!("{certs}/registry.crt"), tls.cert.clone(), 0o644);
        t.add(format!("{certs}/registry.key"), tls.key.clone(), 0o600);
        if let Some(ca) = &tls.ca {
            t.add(format!("{certs}/ca.crt"), ca.clone(), 0o644);
            t.add(CA_ANCHOR.trim_start_matches('/'), ca.clone(), 0o644);
            t.add(
                format!("etc/docker/certs.d/{}/ca.crt", app.registry.address),
                ca.clone(),
                0o644,
            );
        }
    }
    if let Some(h) = &app.registry_files.htpasswd {
        t.add(
            app.registry.htpasswd_path.trim_start_matches('/'),
            h.clone(),
            0o600,
        );
    }
    Ok(t)
}

/// A reproducible `overlay.tar.gz`: files only (extracting over `/` must not
/// touch the modes or times of existing directories), sorted, owned by root,
/// mtime 0, no gzip timestamp.
pub fn pack(t: &Tree) -> Result<Vec<u8>> {
    let gz = flate2::GzBuilder::new()
        .mtime(0)
        // Fast: a fleet render packs one overlay per host; the level barely
        // changes the size of these small text files.
        .write(Vec::new(), flate2::Compression::fast());
    let mut tar = tar::Builder::new(gz);
    tar.mode(tar::HeaderMode::Deterministic);
    for (path, e) in &t.files {
        let mut h = tar::Header::new_gnu();
        h.set_size(e.data.len() as u64);
        h.set_mode(e.mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_entry_type(tar::EntryType::Regular);
        tar.append_data(&mut h, path, &e.data[..])
            .with_context(|| format!("adding {path}"))?;
    }
    let gz = tar.into_inner().context("finishing the tar stream")?;
    gz.finish().context("finishing gzip")
}
