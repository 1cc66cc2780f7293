//! `appliance.distro`: the Enterprise Linux an appliance is built on, and
//! the defaults that depend on it (repositories, registry image, base box,
//! ISO). What the templates do differently per distro is derived from it in
//! `model::distro`.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Distro {
    Centos7,
    Rocky9,
    Alma9,
    Rocky10,
    Alma10,
}

impl Distro {
    pub const ALL: [Distro; 5] = [
        Distro::Centos7,
        Distro::Rocky9,
        Distro::Alma9,
        Distro::Rocky10,
        Distro::Alma10,
    ];

    /// The config's name of it (`appliance.distro`).
    pub fn id(self) -> &'static str {
        match self {
            Distro::Centos7 => "centos7",
            Distro::Rocky9 => "rocky9",
            Distro::Alma9 => "alma9",
            Distro::Rocky10 => "rocky10",
            Distro::Alma10 => "alma10",
        }
    }

    /// The distribution's own name.
    pub fn name(self) -> &'static str {
        match self {
            Distro::Centos7 => "CentOS 7",
            Distro::Rocky9 => "Rocky Linux 9",
            Distro::Alma9 => "AlmaLinux 9",
            Distro::Rocky10 => "Rocky Linux 10",
            Distro::Alma10 => "AlmaLinux 10",
        }
    }

    /// The Enterprise Linux major release.
    pub fn major(self) -> u8 {
        match self {
            Distro::Centos7 => 7,
            Distro::Rocky9 | Distro::Alma9 => 9,
            Distro::Rocky10 | Distro::Alma10 => 10,
        }
    }

    fn rocky(self) -> bool {
        matches!(self, Distro::Rocky9 | Distro::Rocky10)
    }

    /// Default `repos.mirror`: the tree whose `BaseOS/` and `AppStream/`
    /// (CentOS 7: `os/`, `updates/`, `extras/`) hold the packages.
    pub fn mirror(self) -> String {
        match self {
            // End of life: mirrorlist.centos.org is gone, the vault stays.
            Distro::Centos7 => "https://vault.centos.org/7.9.2009".into(),
            d if d.rocky() => format!("https://dl.rockylinux.org/pub/rocky/{}", d.major()),
            d => format!("https://repo.almalinux.org/almalinux/{}", d.major()),
        }
    }

    /// Default `repos.docker_ce`: Docker's repository for the distro; the
    /// rendered repo file pins `$releasever` to the major (on EL9/EL10 dnf's
    /// `$releasever` can be a point release such as 9.4, which Docker's
    /// RHEL tree does not have: moby #49169).
    pub fn docker_ce(self) -> &'static str {
        match self {
            Distro::Centos7 => "https://download.docker.com/linux/centos",
            _ => "https://download.docker.com/linux/rhel",
        }
    }

    /// Default `registry.image`: distribution 3 on the current distros.
    pub fn registry_image(self) -> &'static str {
        match self {
            Distro::Centos7 => "registry:2",
            _ => "registry:3",
        }
    }

    /// Default `vagrant.base_box`: the vendor's own box (libvirt and
    /// VirtualBox).
    pub fn base_box(self) -> &'static str {
        match self {
            Distro::Centos7 => "centos/7",
            Distro::Rocky9 => "rockylinux/9",
            Distro::Alma9 => "almalinux/9",
            Distro::Rocky10 => "rockylinux/10",
            Distro::Alma10 => "almalinux/10",
        }
    }

    /// The directory of the vendor's ISOs and their `CHECKSUM` file.
    fn iso_dir(self) -> String {
        match self {
            Distro::Centos7 => "https://vault.centos.org/7.9.2009/isos/x86_64".into(),
            d if d.rocky() => format!(
                "https://download.rockylinux.org/pub/rocky/{}/isos/x86_64",
                d.major()
            ),
            d => format!(
                "https://repo.almalinux.org/almalinux/{}/isos/x86_64",
                d.major()
            ),
        }
    }

    /// Default `packer.iso_url`: the minimal ISO (CentOS 7: the last
    /// release; the others: the vendor's `latest` name for the newest
    /// point release).
    pub fn iso_url(self) -> String {
        let file = match self {
            Distro::Centos7 => "CentOS-7-x86_64-Minimal-2009.iso".to_string(),
            d if d.rocky() => format!("Rocky-{}-latest-x86_64-minimal.iso", d.major()),
            d => format!("AlmaLinux-{}-latest-x86_64-minimal.iso", d.major()),
        };
        format!("{}/{file}", self.iso_dir())
    }

    /// Default `packer.iso_checksum`: CentOS 7's is fixed; a `latest` ISO
    /// changes with each point release, so Packer reads its sum from the
    /// vendor's `CHECKSUM` file beside it (which lists the `latest` names).
    pub fn iso_checksum(self) -> String {
        match self {
            Distro::Centos7 => {
                "sha256:07b94e6b1a0b0260b94c83d6bb76b26bf7a310dc78d7a9c7432809fb9bc6194a".into()
            }
            d => format!("file:{}/CHECKSUM", d.iso_dir()),
        }
    }

    /// The directory of the vendor's GenericCloud images and the checksum
    /// file that lists them.
    fn image_dir(self) -> String {
        match self {
            Distro::Centos7 => "https://cloud.centos.org/centos/7/images".into(),
            d if d.rocky() => format!(
                "https://dl.rockylinux.org/pub/rocky/{}/images/x86_64",
                d.major()
            ),
            d => format!(
                "https://repo.almalinux.org/almalinux/{}/cloud/x86_64/images",
                d.major()
            ),
        }
    }

    /// Default `packer.image_url`: the vendor's GenericCloud qcow2 (with
    /// cloud-init), CentOS 7's last one, the others' `latest` name.
    pub fn image_url(self) -> String {
        let file = match self {
            Distro::Centos7 => "CentOS-7-x86_64-GenericCloud-2009.qcow2".to_string(),
            d if d.rocky() => format!("Rocky-{}-GenericCloud-Base.latest.x86_64.qcow2", d.major()),
            d => format!("AlmaLinux-{}-GenericCloud-latest.x86_64.qcow2", d.major()),
        };
        format!("{}/{file}", self.image_dir())
    }

    /// Default `packer.image_checksum`: CentOS 7's image is fixed; the
    /// `latest` ones are read from the vendor's `CHECKSUM` file.
    pub fn image_checksum(self) -> String {
        match self {
            Distro::Centos7 => {
                "sha256:e38bab0475cc6d004d2e17015969c659e5a308111851b0e2715e84646035bdd3".into()
            }
            d => format!("file:{}/CHECKSUM", d.image_dir()),
        }
    }
}

impl std::fmt::Display for Distro {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.id())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_the_serde_names() {
        for d in Distro::ALL {
            let toml = format!("d = \"{}\"", d.id());
            #[derive(Deserialize)]
            struct T {
                d: Distro,
            }
            let t: T = toml::from_str(&toml).expect("parses");
            assert_eq!(t.d, d);
        }
    }

    #[test]
    fn defaults_per_vendor() {
        assert_eq!(
            Distro::Rocky9.iso_url(),
            "https://download.rockylinux.org/pub/rocky/9/isos/x86_64/Rocky-9-latest-x86_64-minimal.iso"
        );
        assert_eq!(
            Distro::Alma10.iso_checksum(),
            "file:https://repo.almalinux.org/almalinux/10/isos/x86_64/CHECKSUM"
        );
        assert_eq!(
            Distro::Rocky10.mirror(),
            "https://dl.rockylinux.org/pub/rocky/10"
        );
        assert_eq!(
            Distro::Centos7.iso_url(),
            "https://vault.centos.org/7.9.2009/isos/x86_64/CentOS-7-x86_64-Minimal-2009.iso"
        );
    }
}
