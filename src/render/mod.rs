//! Rendering: the appliance becomes an in-memory [`Tree`] of files, which is
//! then written into `out/` atomically.

pub mod escape;
pub mod kickstart;
pub mod ksdir;
pub mod overlay;
pub mod packer;
pub mod vagrant;

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;

use anyhow::{Context, Result};
use handlebars::Handlebars;

use crate::appliance::Appliance;
use crate::secrets;

/// Every template, by its path under `templates/` without `.hbs`.
macro_rules! templates {
    ($($name:literal),* $(,)?) => {
        &[$(($name, include_str!(concat!("../../templates/", $name, ".hbs")))),*]
    };
}

const TEMPLATES: &[(&str, &str)] = templates![
    "overlay/etc/sudoers.d/USER",
    "overlay/home/USER/.ssh/authorized_keys",
    "overlay/etc/ssh/sshd_config",
    "overlay/etc/yum.repos.d/CentOS-Base.repo",
    "overlay/etc/yum.repos.d/docker-ce.repo",
    "overlay/etc/yum.conf",
    "overlay/etc/docker/daemon.json",
    "overlay/etc/systemd/system/docker.service.d/http-proxy.conf",
    "overlay/etc/systemd/system/docker.service.d/https-proxy.conf",
    "overlay/etc/docker/registry/config.yml",
    "overlay/etc/systemd/system/regbake-registry.service",
    "overlay/etc/systemd/system/regbake-firstboot.service",
    "overlay/usr/local/sbin/regbake-install",
    "overlay/usr/local/sbin/regbake-firstboot",
    "overlay/usr/local/sbin/regbake-uninstall",
    "overlay/etc/firewalld/zones/public.xml",
    "kickstart/ks.cfg",
    "vagrant/Vagrantfile",
    "packer/variables.pkr.hcl",
    "packer/sources.pkr.hcl",
    "packer/build.pkr.hcl",
    "packer/box/Vagrantfile",
    "packer/plugins.pkr.hcl",
    "packer/scripts/install.sh",
    "packer/scripts/firstboot.sh",
    "packer/scripts/cleanup.sh",
    "packer/http/ks.cfg",
];

/// Handlebars in strict mode, HTML escaping off: quoting is done per target
/// language by the helpers in [`escape`].
pub fn handlebars() -> Result<Handlebars<'static>> {
    let mut hb = Handlebars::new();
    hb.set_strict_mode(true);
    hb.register_escape_fn(handlebars::no_escape);
    escape::register(&mut hb);
    for (name, text) in TEMPLATES {
        hb.register_template_string(name, *text)
            .with_context(|| format!("parsing template {name}.hbs"))?;
    }
    Ok(hb)
}

/// One file to write: content and Unix mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub data: Vec<u8>,
    pub mode: u32,
}

/// Files by relative path (`/`-separated), in a stable order.
#[derive(Debug, Clone, Default)]
pub struct Tree {
    pub files: BTreeMap<String, Entry>,
}

impl Tree {
    pub fn add(&mut self, path: impl Into<String>, data: impl Into<Vec<u8>>, mode: u32) {
        self.files.insert(
            path.into(),
            Entry {
                data: data.into(),
                mode,
            },
        );
    }

    /// Put another tree under `prefix/`.
    pub fn graft(&mut self, prefix: &str, other: &Tree) {
        for (p, e) in &other.files {
            self.files.insert(format!("{prefix}/{p}"), e.clone());
        }
    }

    pub fn get(&self, path: &str) -> Option<&Entry> {
        self.files.get(path)
    }

    /// The distinct first path components.
    fn top_level(&self) -> Vec<&str> {
        let mut tops: Vec<&str> = self
            .files
            .keys()
            .map(|k| k.split('/').next().unwrap_or(k))
            .collect();
        tops.dedup();
        tops
    }
}

/// Which families of output to render.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    All,
    Kickstart,
}

/// Directories of `out/` that hold state kept across renders; they are
/// written file by file and never swapped out.
const STATE_DIRS: &[&str] = &["secrets", "ssh"];

/// Render everything the scope asks for.
pub fn render(app: &Appliance, scope: Scope) -> Result<Tree> {
    let hb = handlebars()?;
    let overlay = overlay::render(&hb, app)?;
    let tarball = overlay::pack(&overlay).context("packing the overlay")?;
    let mut tree = Tree::default();
    tree.add(
        "kickstart/ks.cfg",
        kickstart::render(&hb, app, &tarball)?,
        0o600,
    );
    if scope == Scope::All {
        tree.graft("overlay", &overlay);
        tree.add("overlay.tar.gz", tarball, 0o600);
        tree.add(vagrant::PATH, vagrant::render(&hb, app)?, 0o644);
        for (p, e) in client_files(app).files {
            tree.files.insert(format!("client/{p}"), e);
        }
        let ks = tree
            .get("kickstart/ks.cfg")
            .map(|e| String::from_utf8_lossy(&e.data).into_owned())
            .unwrap_or_default();
        packer::render(&hb, app, &ks, &mut tree)?;
    }
    state_files(app, &mut tree);
    Ok(tree)
}

/// What a docker client host needs to use the registry.
fn client_files(app: &Appliance) -> Tree {
    let mut t = Tree::default();
    let addr = &app.registry.address;
    match app
        .material
        .registry
        .tls
        .as_ref()
        .and_then(|t| t.ca.as_ref())
    {
        Some(ca) => {
            t.add(format!("certs.d/{addr}/ca.crt"), ca.clone(), 0o644);
            t.add(
                "README.md",
                format!(
                    "# Using the registry {addr}\n\n\
                     Copy `certs.d/{addr}/ca.crt` to `/etc/docker/certs.d/{addr}/ca.crt`\n\
                     on every docker host (no daemon restart needed), then\n\
                     `docker pull {addr}/IMAGE`.\n"
                ),
                0o644,
            );
        }
        None if app.registry.tls => {
            t.add(
                "README.md",
                format!(
                    "# Using the registry {addr}\n\n\
                     It uses the TLS certificate given in the config; clients that trust\n\
                     its issuer need nothing else: `docker pull {addr}/IMAGE`.\n"
                ),
                0o644,
            );
        }
        None => {
            let snippet = serde_json::json!({ "insecure-registries": [addr] });
            t.add("daemon.json", format!("{:#}\n", snippet), 0o644);
            t.add(
                "README.md",
                format!(
                    "# Using the registry {addr}\n\n\
                     It speaks plain HTTP. Merge `daemon.json` into `/etc/docker/daemon.json`\n\
                     on every docker host and restart docker, then `docker pull {addr}/IMAGE`.\n"
                ),
                0o644,
            );
        }
    }
    t
}

/// Secrets and generated keys, including stored ones this render does not use
/// (turning TLS off and on again must not rotate the CA).
pub(crate) fn state_files(app: &Appliance, tree: &mut Tree) {
    let m = &app.material;
    // A secret from http_secret_env stays in the environment; a generated
    // (or previously stored) one is kept.
    let http_secret = m
        .registry
        .generated_http_secret
        .as_ref()
        .or(m.stored.http_secret.as_ref());
    if let Some(s) = http_secret {
        tree.add(secrets::HTTP_SECRET, format!("{s}\n"), 0o600);
    }
    let ssh = m.generated_ssh.as_ref().or(m.stored.ssh.as_ref());
    if let Some(k) = ssh {
        tree.add(secrets::SSH_KEY, k.private_openssh.clone(), 0o600);
        tree.add(secrets::SSH_PUB, format!("{}\n", k.public_line), 0o644);
    }
    if let Some(h) = &m.registry.htpasswd {
        tree.add(secrets::HTPASSWD, h.clone(), 0o600);
    }
    let ca = m
        .registry
        .generated_tls
        .as_ref()
        .map(|t| (t.ca_cert.clone(), t.ca_key.clone()))
        .or_else(|| m.stored.ca.clone());
    if let Some((cert, key)) = ca {
        tree.add(secrets::CA_CERT, cert, 0o644);
        tree.add(secrets::CA_KEY, key, 0o600);
    }
    let server = m
        .registry
        .generated_tls
        .as_ref()
        .map(|t| (t.server_cert.clone(), t.server_key.clone(), t.sans.clone()))
        .or_else(|| m.stored.server.clone());
    if let Some((cert, key, sans)) = server {
        tree.add(secrets::SERVER_CERT, cert, 0o644);
        tree.add(secrets::SERVER_KEY, key, 0o600);
        tree.add(secrets::SERVER_SANS, sans.join("\n") + "\n", 0o644);
    }
}

/// Replace one file atomically (temp file beside it, then rename); its
/// directory is created with `dir_mode` when missing. `durable` also syncs
/// the file and its directory to disk: for state that cannot be rendered
/// again (a CA key lost to a power cut would rotate every client's trust).
pub(crate) fn write_file(path: &Path, e: &Entry, dir_mode: u32, durable: bool) -> Result<()> {
    let dir = path.parent().context("file path has a parent")?;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(dir_mode)
        .create(dir)
        .with_context(|| format!("creating {}", dir.display()))?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".regbake-")
        .tempfile_in(dir)
        .with_context(|| format!("creating a temp file in {}", dir.display()))?;
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(e.mode))
        .with_context(|| format!("setting the mode of {}", path.display()))?;
    tmp.write_all(&e.data)
        .with_context(|| format!("writing {}", path.display()))?;
    if durable {
        tmp.as_file()
            .sync_all()
            .with_context(|| format!("syncing {}", path.display()))?;
    }
    tmp.persist(path)
        .with_context(|| format!("moving {} into place", path.display()))?;
    if durable {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .with_context(|| format!("syncing {}", dir.display()))?;
    }
    Ok(())
}

/// Write a file into the staging dir, which is private until it is renamed
/// into place: no temp file needed.
fn write_staged(path: &Path, e: &Entry) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path.parent().context("file path has a parent")?;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(dir)
        .with_context(|| format!("creating {}", dir.display()))?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(e.mode)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    // The umask may have narrowed the mode given to open.
    f.set_permissions(std::fs::Permissions::from_mode(e.mode))
        .with_context(|| format!("setting the mode of {}", path.display()))?;
    f.write_all(&e.data)
        .with_context(|| format!("writing {}", path.display()))
}

/// Write the tree into `out` as the single-appliance render (see [`write_as`]).
pub fn write(tree: &Tree, out: &Path) -> Result<()> {
    write_as(tree, out, ksdir::Owner::Single)
}

/// Write the tree into `out`: rendered families are staged in a temp dir
/// beside `out` and each moved into place with a rename, so a failed run
/// leaves the previous output; state files are replaced one by one and never
/// deleted; `kickstart/`, which two commands share, is written file by file
/// as `owner`'s set (see [`ksdir`]); anything else in `out` (boxes, logs) is
/// left alone.
pub fn write_as(tree: &Tree, out: &Path, owner: ksdir::Owner) -> Result<()> {
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent).with_context(|| format!("creating {}", parent.display()))?;
    let staging = tempfile::Builder::new()
        .prefix(".regbake-staging-")
        .tempdir_in(&parent)
        .with_context(|| format!("creating a staging dir in {}", parent.display()))?;
    for (rel, e) in &tree.files {
        let top = rel.split('/').next().unwrap_or(rel);
        if STATE_DIRS.contains(&top) || top == ksdir::DIR {
            continue;
        }
        write_staged(&staging.path().join(rel), e)?;
    }
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    for dir in STATE_DIRS {
        if tree.files.keys().any(|k| k.starts_with(&format!("{dir}/"))) {
            let d = out.join(dir);
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&d)
                .with_context(|| format!("creating {}", d.display()))?;
        }
    }
    for (rel, e) in &tree.files {
        let top = rel.split('/').next().unwrap_or(rel);
        if !STATE_DIRS.contains(&top) {
            continue;
        }
        let path = out.join(rel);
        let same_mode =
            std::fs::metadata(&path).is_ok_and(|m| m.permissions().mode() & 0o7777 == e.mode);
        if !same_mode || std::fs::read(&path).ok().as_deref() != Some(&e.data[..]) {
            // State directories hold private keys: 0700 all the way down.
            // Per-host certificates are cheap to issue again from the kept
            // CA (and a fleet has thousands): synced are the CA, keys and
            // secrets that clients and appliances already trust.
            let durable = !rel.starts_with("secrets/tls/hosts/");
            write_file(&path, e, 0o700, durable)?;
        }
    }
    let prefix = format!("{}/", ksdir::DIR);
    let shared: BTreeMap<String, Entry> = tree
        .files
        .iter()
        .filter_map(|(rel, e)| Some((rel.strip_prefix(&prefix)?.to_string(), e.clone())))
        .collect();
    if !shared.is_empty() {
        ksdir::write(&out.join(ksdir::DIR), &shared, owner)
            .with_context(|| format!("writing {}", out.join(ksdir::DIR).display()))?;
    }
    let trash = tempfile::Builder::new()
        .prefix(".regbake-old-")
        .tempdir_in(&parent)
        .with_context(|| format!("creating a temp dir in {}", parent.display()))?;
    for top in tree.top_level() {
        if STATE_DIRS.contains(&top) || top == ksdir::DIR {
            continue;
        }
        let dest = out.join(top);
        if dest.symlink_metadata().is_ok() {
            std::fs::rename(&dest, trash.path().join(top))
                .with_context(|| format!("moving the old {} aside", dest.display()))?;
        }
        std::fs::rename(staging.path().join(top), &dest)
            .with_context(|| format!("moving {} into place", dest.display()))?;
    }
    Ok(())
}
