//! The Vagrantfile that bakes the appliance from a base box: it uploads
//! `out/overlay.tar.gz`, installs it and runs the firstboot inside the VM.

use anyhow::{Context, Result};
use handlebars::Handlebars;

/// Where it lands under `out/`.
pub const PATH: &str = "vagrant/Vagrantfile";

pub fn render(hb: &Handlebars<'_>, ctx: &handlebars::Context) -> Result<String> {
    hb.render_with_context("vagrant/Vagrantfile", ctx)
        .context("rendering vagrant/Vagrantfile")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config;

    /// Loads a Vagrantfile in real Ruby with a stand-in for `Vagrant` that
    /// records `config.…= value` assignments; prints them and the provisioner
    /// env as JSON.
    /// The tests' one Vagrant recorder.
    const RECORDER: &str = include_str!("../../tests/fixtures/vagrant-recorder.rb");

    /// Values that reach the Vagrantfile stay one Ruby string each, even
    /// if they got past validation: nothing they contain is evaluated.
    #[test]
    fn hostile_values_stay_inside_their_ruby_strings() {
        if which::which("ruby").is_err() {
            assert_ne!(
                std::env::var("REGBAKE_REQUIRE_TOOLS").as_deref(),
                Ok("1"),
                "ruby is required (REGBAKE_REQUIRE_TOOLS=1)"
            );
            eprintln!("SKIPPED: ruby is not installed");
            return;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let marker = dir.path().join("pwned");
        let m = marker.display();
        let payloads = [
            format!("x'; File.write('{m}', '1'); '"),
            format!("x\\'; File.write('{m}', '1'); #"),
            format!("#{{File.write('{m}', '1')}}\n'\"\\"),
            format!("x\nFile.write('{m}', '1')\n"),
        ];
        let mut c = config::parse(config::DEFAULT_TOML).expect("defaults");
        c.user.ssh_keys = vec![
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHtYOuLBG5flHVya7vWCk101CMrByUTqJB3xXQmJd8eW t@t"
                .into(),
        ];
        c.user.ssh_key_files = vec![];
        let mut v = config::Valid::check(c).expect("valid");
        // Past the validation, which wants a proxy: the values are set below.
        v.config.proxy = Some(config::ProxySection::default());
        let mut app = crate::model::Appliance::resolve(
            &v,
            &mut crate::model::secrets::SecretStore::default(),
            &crate::model::Facts::default(),
            crate::model::secrets::Slot::Single,
        )
        .expect("app");
        let hb = crate::render::handlebars().expect("handlebars");
        for p in &payloads {
            app.vagrant.base_box = p.clone();
            app.appliance.hostname = format!("h{p}");
            if let Some(proxy) = app.proxy.as_mut() {
                proxy.http = format!("http://{p}");
                proxy.https = format!("https://{p}");
                proxy.no_proxy = format!("n{p}");
            }
            let vf = dir.path().join("Vagrantfile");
            std::fs::write(
                &vf,
                render(hb, &handlebars::Context::wraps(&app).expect("context")).expect("render"),
            )
            .expect("write");
            let out = std::process::Command::new("ruby")
                .arg("-e")
                .arg(RECORDER)
                .arg(&vf)
                .output()
                .expect("ruby runs");
            assert!(
                out.status.success(),
                "{p:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let rec: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
            assert_eq!(rec["vals"]["vm.box"], p.as_str());
            assert_eq!(rec["vals"]["vm.hostname"], format!("h{p}"));
            let env = &rec["constants"]["PROVISION_ENV"];
            assert_eq!(env["http_proxy"], format!("http://{p}"));
            assert_eq!(env["HTTPS_PROXY"], format!("https://{p}"));
            assert_eq!(env["no_proxy"], format!("n{p}"));
            assert!(!marker.exists(), "{p:?} was evaluated");
        }
    }
}
