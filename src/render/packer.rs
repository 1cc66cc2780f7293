//! The Packer template directory (`out/packer/`): HCL2 sources for QEMU and
//! VirtualBox that install CentOS 7 from the ISO with the appliance's
//! kickstart, provisioners that install the overlay and run the first boot,
//! and the `vagrant` post-processor. Packer logs in with a per-build key pair
//! kept in `out/secrets/packer/`.

use std::path::PathBuf;

use anyhow::{Context, Result};
use handlebars::Handlebars;
use serde::Serialize;

use super::Tree;
use crate::appliance::Appliance;
use crate::config::{Config, PackerSection, Problem, RequiredPlugins, Sudo};
use crate::secrets::{self, SshKeyPair};
use crate::tools::log;

/// The `[packer]` settings plus what the templates derive from other sections.
#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    /// `[packer]` as configured; the templates see its keys at the top level.
    #[serde(flatten)]
    pub section: PackerSection,
    /// `.BOXNAME-VERSION-{{.Provider}}.box.partial` (`/` in the box name
    /// becomes `-`); the post-processor fills in the provider. A hidden temp
    /// name: regbake renames it into place under out/box's lock once the
    /// build succeeded, so a killed build leaves only a `.partial`, which
    /// the next run removes.
    pub box_file: String,
    pub box_name: String,
    pub box_version: String,
    /// QEMU's disk interface that makes the guest name the disk `storage.disk`.
    pub qemu_disk_interface: String,
    /// Why Packer cannot bake this config (the template is then not rendered).
    #[serde(skip)]
    pub problems: Vec<Problem>,
    /// The private keys beside the `user.ssh_key_files` found at render time
    /// (`.pub` stripped, `~` kept for Vagrant to expand).
    #[serde(skip)]
    pub key_files: Vec<String>,
    /// The absolute out dir: the box Vagrantfile names a generated user key
    /// by its absolute path. Set by [`crate::prepare`].
    #[serde(skip)]
    pub out_dir: Option<PathBuf>,
}

impl Settings {
    pub fn from_config(c: &Config) -> Self {
        let p = &c.packer;
        let mut problems = vec![];
        if c.user.sudo != Sudo::Nopasswd {
            let value = match c.user.sudo {
                Sudo::Password => "\"password\"",
                _ => "\"none\"",
            };
            problems.push(Problem {
                path: "user.sudo".into(),
                value: value.into(),
                expected: "regbake packer logs in as the user and provisions and shuts down with `sudo -n` (no password is ever stored): set sudo = \"nopasswd\", or install with regbake kickstart".into(),
            });
        }
        // /boot (1 GiB) + root + data (at least 1 GiB when it grows) + 1 GiB
        // for LVM metadata and rounding.
        let min_disk_mb =
            1024 + c.storage.root_size_gb * 1024 + c.storage.data_size_gb.max(1) * 1024 + 1024;
        if p.disk_size_mb < min_disk_mb {
            problems.push(Problem {
                path: "packer.disk_size_mb".into(),
                value: p.disk_size_mb.to_string(),
                expected: format!("the kickstart's /boot, storage.root_size_gb and storage.data_size_gb (plus 1 GiB spare) need at least {min_disk_mb} MiB"),
            });
        }
        let vbox = p.builders.iter().any(|b| b == "virtualbox-iso");
        let qemu_disk_interface = match c.storage.disk.as_str() {
            // The VM's only disk: "auto" finds it, as sda.
            "auto" | "sda" => "virtio-scsi",
            "vda" if !vbox => "virtio",
            disk => {
                problems.push(Problem {
                    path: "storage.disk".into(),
                    value: format!("{disk:?}"),
                    expected: "regbake packer installs on the VM's only disk: expected \"auto\" or \"sda\" (QEMU virtio-scsi, VirtualBox SATA), or \"vda\" with packer.builders = [\"qemu\"]".into(),
                });
                "virtio-scsi"
            }
        };
        Self {
            section: p.clone(),
            // The same name as crate::boxfile::BoxMeta::box_file_name.
            box_file: partial_box_file(&box_file(
                &c.vagrant.box_name.replace('/', "-"),
                &c.vagrant.box_version,
                "{{.Provider}}",
            )),
            box_name: c.vagrant.box_name.clone(),
            box_version: c.vagrant.box_version.clone(),
            qemu_disk_interface: qemu_disk_interface.into(),
            problems,
            key_files: c
                .user
                .ssh_key_files
                .iter()
                .filter(|f| crate::appliance::expand_home(f).is_file())
                .filter_map(|f| f.strip_suffix(".pub"))
                .map(str::to_string)
                .collect(),
            out_dir: None,
        }
    }
}

/// The box file name for a provider (`libvirt`, `virtualbox`).
pub fn box_file(name: &str, version: &str, provider: &str) -> String {
    format!("{name}-{version}-{provider}.box")
}

/// The hidden name Packer writes box `file` under until regbake moves it.
pub fn partial_box_file(file: &str) -> String {
    format!(".{file}.partial")
}

/// The Vagrant provider of the box a builder makes.
pub fn provider_of(builder: &str) -> &'static str {
    match builder {
        "qemu" => "libvirt",
        _ => "virtualbox",
    }
}

/// What `out/packer/` holds instead of a template when Packer cannot bake
/// the config.
pub const NOT_RENDERED: &str = "packer/NOT-RENDERED";

/// The private key file, relative to the template directory.
const SSH_KEY_FROM_TEMPLATE: &str = "../secrets/packer/id_ed25519";

/// Everything the Packer templates see under `packer`.
#[derive(Debug, Serialize)]
struct PackerContext<'a> {
    #[serde(flatten)]
    settings: &'a Settings,
    qemu: bool,
    virtualbox: bool,
    source_name: &'a str,
    vm_name: &'a str,
    /// `source.TYPE.NAME` of each selected builder.
    sources: Vec<String>,
    scripts: Vec<&'static str>,
    boot_command: &'static str,
    shutdown_command: &'static str,
    execute_command: &'static str,
    ssh_key_file: &'static str,
    authorized_keys: String,
    build_public_key: &'a str,
    /// False when the build key is also one of the user's configured keys.
    remove_build_key: bool,
    http_proxy: String,
    https_proxy: String,
    no_proxy: String,
    /// Private keys the box Vagrantfile offers, in order of preference.
    box_private_keys: Vec<String>,
}

/// The box Vagrantfile, relative to `out/`.
pub const BOX_VAGRANTFILE: &str = "packer/box/Vagrantfile";

/// OpenSSH's default identities, offered when the user's keys are literal
/// `user.ssh_keys` whose private halves regbake cannot know.
const DEFAULT_IDENTITIES: &[&str] = &["~/.ssh/id_ed25519", "~/.ssh/id_ecdsa", "~/.ssh/id_rsa"];

/// The private keys a plain `vagrant up` of the box logs in with: the key
/// regbake generated for the user (absolute: the box Vagrantfile is read from
/// Vagrant's box store), else the ones beside the configured key files, else
/// OpenSSH's defaults.
fn box_private_keys(app: &Appliance) -> Result<Vec<String>> {
    let s = &app.packer;
    if app.material.generated_ssh.is_some() {
        let out = s
            .out_dir
            .as_ref()
            .context("the out dir of the generated ssh key is not known")?;
        let key = out.join(secrets::SSH_KEY);
        let key = key
            .to_str()
            .with_context(|| format!("{} is not a UTF-8 path", key.display()))?;
        return Ok(vec![key.to_string()]);
    }
    if !s.key_files.is_empty() {
        return Ok(s.key_files.clone());
    }
    Ok(DEFAULT_IDENTITIES.iter().map(|k| k.to_string()).collect())
}

/// Packer renders a `vagrantfile_template` as a Go template: two braces in a
/// row, which only quoted values can bring in, are split into adjacent Ruby
/// string literals (`'a{' '{b'` is `'a{{b'`).
pub(super) fn split_go_delimiters(ruby: &str) -> String {
    let mut s = ruby.to_string();
    while s.contains("{{") {
        s = s.replace("{{", "{' '{");
    }
    s
}

/// Packer's build key: the stored one, or a new ed25519 pair.
fn build_key(app: &Appliance) -> Result<SshKeyPair> {
    match &app.material.stored.packer_ssh {
        Some(k) => Ok(k.clone()),
        None => secrets::generate_ssh_key(&format!("regbake-packer@{}", app.appliance.name)),
    }
}

/// Whether `plugins.pkr.hcl` is rendered; `auto` asks the `packer` on PATH.
pub fn wants_plugins_file(setting: RequiredPlugins) -> bool {
    match setting {
        RequiredPlugins::Always => true,
        RequiredPlugins::Never => false,
        RequiredPlugins::Auto => match crate::packer::installed_version() {
            Some(v) => v.needs_plugins_block(),
            // Nothing to ask: render for the Packer one would install today.
            None => true,
        },
    }
}

/// Render `packer/…` and the build key (`secrets/packer/…`) into `tree`.
/// A config Packer cannot bake (see [`Settings::problems`]) renders nothing
/// and says why; `regbake packer` turns that into a config error.
pub fn render(
    hb: &Handlebars<'_>,
    app: &Appliance,
    kickstart: &str,
    tree: &mut Tree,
) -> Result<()> {
    let s = &app.packer;
    if !s.problems.is_empty() {
        let mut why = String::from(
            "The Packer template was not rendered: regbake packer cannot bake this config.\n",
        );
        for p in &s.problems {
            log::note(&format!("packer template not rendered: {p}"));
            why.push_str(&format!("- {p}\n"));
        }
        // Replaces a template an earlier render left, so nothing stale is
        // checked or built.
        tree.add(NOT_RENDERED, why, 0o644);
        return Ok(());
    }
    let key = build_key(app)?;
    let qemu = s.section.builders.iter().any(|b| b == "qemu");
    let virtualbox = s.section.builders.iter().any(|b| b == "virtualbox-iso");
    let name = app.appliance.name.as_str();
    let mut scripts = vec!["install.sh"];
    if app.registry.preload {
        scripts.push("firstboot.sh");
    }
    scripts.push("cleanup.sh");
    let proxy = app.proxy.as_ref();
    let ctx = PackerContext {
        settings: s,
        qemu,
        virtualbox,
        source_name: name,
        vm_name: name,
        sources: s
            .section
            .builders
            .iter()
            .map(|b| format!("source.{b}.{name}"))
            .collect(),
        scripts: scripts.clone(),
        // Isolinux menu of the CentOS 7 ISO: <up> selects "Install CentOS 7",
        // <tab> edits its kernel command line.
        boot_command:
            "<up><tab> inst.text inst.ks=http://{{ .HTTPIP }}:{{ .HTTPPort }}/ks.cfg<enter><wait>",
        // -n: fail instead of waiting for a password that is never given.
        shutdown_command: "sudo -n /sbin/shutdown -P now",
        execute_command: "sudo -n env {{ .Vars }} bash {{ .Path }}",
        ssh_key_file: SSH_KEY_FROM_TEMPLATE,
        authorized_keys: format!("{}/.ssh/authorized_keys", app.user.home),
        build_public_key: &key.public_line,
        remove_build_key: !app.user.authorized_keys.contains(&key.public_line),
        http_proxy: proxy.map(|p| p.http.clone()).unwrap_or_default(),
        https_proxy: proxy.map(|p| p.https.clone()).unwrap_or_default(),
        no_proxy: proxy.map(|p| p.no_proxy.clone()).unwrap_or_default(),
        box_private_keys: box_private_keys(app)?,
    };
    let mut json = serde_json::to_value(app).context("serializing the appliance")?;
    if let Some(map) = json.as_object_mut() {
        map.insert(
            "packer".into(),
            serde_json::to_value(&ctx).context("serializing the packer settings")?,
        );
        map.insert("kickstart".into(), kickstart.trim_end().into());
    }
    let mut emit = |template: &str, mode: u32| -> Result<()> {
        let name = format!("packer/{template}");
        let text = hb
            .render(&name, &json)
            .with_context(|| format!("rendering {name}"))?;
        tree.add(name, text, mode);
        Ok(())
    };
    emit("variables.pkr.hcl", 0o644)?;
    emit("sources.pkr.hcl", 0o644)?;
    emit("build.pkr.hcl", 0o644)?;
    if wants_plugins_file(s.section.required_plugins) {
        emit("plugins.pkr.hcl", 0o644)?;
    }
    for script in &scripts {
        emit(&format!("scripts/{script}"), 0o755)?;
    }
    // The kickstart holds the appliance's secrets, like out/kickstart/ks.cfg.
    emit("http/ks.cfg", 0o600)?;
    let vagrantfile = hb
        .render(BOX_VAGRANTFILE, &json)
        .with_context(|| format!("rendering {BOX_VAGRANTFILE}"))?;
    tree.add(BOX_VAGRANTFILE, split_go_delimiters(&vagrantfile), 0o644);
    tree.add(secrets::PACKER_KEY, key.private_openssh.clone(), 0o600);
    tree.add(secrets::PACKER_PUB, format!("{}\n", key.public_line), 0o644);
    Ok(())
}
