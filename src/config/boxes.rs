//! Box names: the one place that says how a box, its catalog and the files
//! Packer and Vagrant write are named (`boxes` packs them, `render` names
//! Packer's output, `bake` moves it into place).

use super::{BadInput, Problem, Provider};

/// Which box to pack: its catalog name, version and provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoxMeta {
    /// e.g. `regbake/registry`
    pub name: String,
    pub version: String,
    pub provider: Provider,
}

impl BoxMeta {
    /// `NAME` with '/' replaced by '-', as used in file names.
    pub fn file_stem(&self) -> String {
        self.name.replace('/', "-")
    }

    /// `NAME-VERSION-PROVIDER.box`
    pub fn box_file_name(&self) -> String {
        box_file_name(
            &self.file_stem(),
            &self.version,
            provider_name(self.provider),
        )
    }

    /// `NAME.json`
    pub fn catalog_file_name(&self) -> String {
        format!("{}.json", self.file_stem())
    }

    /// Problems with the name and version (they become file names and catalog
    /// keys), reported against `name_path` / `version_path`.
    pub fn problems(&self, name_path: &str, version_path: &str) -> Vec<Problem> {
        let mut problems = vec![];
        if !super::is_box_name(&self.name) {
            problems.push(Problem::new(
                name_path,
                &self.name,
                "expected NAME or ORG/NAME, each part [A-Za-z0-9][A-Za-z0-9._-]*",
            ));
        }
        if !super::is_version(&self.version) {
            problems.push(Problem::new(
                version_path,
                &self.version,
                "expected a version of dot-separated numbers, e.g. 1.0.0",
            ));
        }
        problems
    }

    pub fn check(&self) -> anyhow::Result<()> {
        let problems = self.problems("box name", "box version");
        if !problems.is_empty() {
            return Err(BadInput::Invalid(problems).into());
        }
        Ok(())
    }
}

pub fn provider_name(p: Provider) -> &'static str {
    match p {
        Provider::Libvirt => "libvirt",
        Provider::Virtualbox => "virtualbox",
    }
}

/// `STEM-VERSION-PROVIDER.box`; Packer's template fills in `{{.Provider}}`.
pub fn box_file_name(stem: &str, version: &str, provider: &str) -> String {
    format!("{stem}-{version}-{provider}.box")
}

/// The hidden name a box (or any file of `out/box`) is written under until
/// it is complete: a run that dies leaves only this, which the next removes.
pub fn partial(file: &str) -> String {
    format!(".{file}.partial")
}
