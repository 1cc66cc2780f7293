//! The Packer template directory (`out/packer/`): HCL2 sources for QEMU and
//! VirtualBox that install the distro from its ISO with the appliance's
//! kickstart (or, with `packer.source = "image"`, boot a cloud image that
//! cloud-init prepares for Packer's login), provisioners that install the overlay and run the first boot,
//! and the `vagrant` post-processor. Packer logs in with a per-build key pair
//! kept in `out/secrets/packer/`.

use anyhow::{Context, Result};
use handlebars::Handlebars;
use serde::Serialize;

use crate::config::Builder;
use crate::model::packer::Settings;
use crate::model::secrets;
use crate::model::Appliance;
use crate::tree::Tree;
use crate::util::log;

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
    /// [`Settings::image`], for the templates.
    image: bool,
    source_name: &'a str,
    vm_name: &'a str,
    /// `source.TYPE.NAME` of each selected builder.
    sources: Vec<String>,
    scripts: Vec<&'static str>,
    boot_command: &'static str,
    /// QEMU's `-smbios` value that points cloud-init's NoCloud at Packer's
    /// HTTP server (`source = "image"`).
    smbios: &'static str,
    /// cloud-init's `instance-id` of the build VM.
    instance_id: String,
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
    if app.user.generated_key {
        let key = s.out_dir.join(secrets::SSH_KEY);
        let key = key
            .to_str()
            .with_context(|| format!("{} is not a UTF-8 path", key.display()))?;
        return Ok(vec![key.to_string()]);
    }
    if !s.key_files.is_empty() {
        return Ok(s.key_files.clone());
    }
    Ok(DEFAULT_IDENTITIES
        .iter()
        .map(std::string::ToString::to_string)
        .collect())
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

/// The keys Packer types at the ISO's boot menu, whose default entry is
/// "Test this media & install" (lorax's isolinux.cfg and grub2-bios.cfg).
fn boot_command(grub2: bool) -> &'static str {
    if grub2 {
        // EL10's ISO boots GRUB2 on BIOS too (lorax rhel10-branch x86.tmpl):
        // <up> selects "Install …", e edits it; its lines are `setparams
        // '…'`, an empty one, then `linux …`: two <down>s, <end>, append,
        // Ctrl-X boots.
        "<up><wait>e<wait><down><down><end> inst.text inst.ks=http://{{ .HTTPIP }}:{{ .HTTPPort }}/ks.cfg<leftCtrlOn>x<leftCtrlOff>"
    } else {
        // Isolinux (CentOS 7, EL9): <up> selects "Install …", <tab> edits
        // its kernel command line.
        "<up><tab> inst.text inst.ks=http://{{ .HTTPIP }}:{{ .HTTPPort }}/ks.cfg<enter><wait>"
    }
}

/// `packer/NOT-RENDERED` with why, in place of the template: it replaces
/// a template an earlier render left, so nothing stale is checked or built.
fn not_rendered(s: &Settings, tree: &mut Tree) {
    let mut why = String::from(
        "The Packer template was not rendered: regbake packer cannot bake this config.\n",
    );
    for p in &s.problems {
        log::note(&format!("packer template not rendered: {p}"));
        why.push_str(&format!("- {p}\n"));
    }
    tree.add(NOT_RENDERED, why, 0o644);
}

/// Render `packer/…` and the build key (`secrets/packer/…`) into `tree`.
/// A config Packer cannot bake (see [`Settings::problems`]) renders nothing
/// and says why; `regbake packer` turns that into a config error.
pub fn render(
    hb: &Handlebars<'_>,
    app: &Appliance,
    mut json: serde_json::Value,
    kickstart: &str,
    tree: &mut Tree,
) -> Result<()> {
    let s = &app.packer;
    if !s.problems.is_empty() {
        not_rendered(s, tree);
        return Ok(());
    }
    let qemu = s.section.builders.contains(&Builder::Qemu);
    let virtualbox = s.section.builders.contains(&Builder::VirtualboxIso);
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
        image: s.image(),
        source_name: name,
        vm_name: name,
        sources: s
            .section
            .builders
            .iter()
            .map(|b| format!("source.{b}.{name}"))
            .collect(),
        scripts: scripts.clone(),
        boot_command: boot_command(app.distro.el10),
        // cloud-init reads `ds=nocloud-net;s=URL/` from the SMBIOS serial
        // number and fetches URL/meta-data and URL/user-data once the
        // network is up (its NoCloud docs; ds-identify looks there too).
        smbios: "type=1,serial=ds=nocloud-net;s=http://{{ .HTTPIP }}:{{ .HTTPPort }}/",
        instance_id: format!("regbake-build-{name}"),
        // -n: fail instead of waiting for a password that is never given.
        shutdown_command: "sudo -n /sbin/shutdown -P now",
        execute_command: "sudo -n env {{ .Vars }} bash {{ .Path }}",
        ssh_key_file: SSH_KEY_FROM_TEMPLATE,
        authorized_keys: format!("{}/.ssh/authorized_keys", app.user.home),
        build_public_key: &s.build_public_key,
        remove_build_key: !app.user.authorized_keys.contains(&s.build_public_key),
        http_proxy: proxy.map(|p| p.http.clone()).unwrap_or_default(),
        https_proxy: proxy.map(|p| p.https.clone()).unwrap_or_default(),
        no_proxy: proxy.map(|p| p.no_proxy.clone()).unwrap_or_default(),
        box_private_keys: box_private_keys(app)?,
    };
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
    if s.plugins_file {
        emit("plugins.pkr.hcl", 0o644)?;
    }
    for script in &scripts {
        emit(&format!("scripts/{script}"), 0o755)?;
    }
    if s.image() {
        // cloud-init's seed: the build user and key (public), no secrets.
        emit("http/user-data", 0o644)?;
        emit("http/meta-data", 0o644)?;
    } else {
        // The kickstart holds the appliance's secrets, like out/kickstart/ks.cfg.
        emit("http/ks.cfg", 0o600)?;
    }
    let vagrantfile = hb
        .render(BOX_VAGRANTFILE, &json)
        .with_context(|| format!("rendering {BOX_VAGRANTFILE}"))?;
    tree.add(BOX_VAGRANTFILE, split_go_delimiters(&vagrantfile), 0o644);
    Ok(())
}
