//! What the templates do differently per `appliance.distro`: the package
//! manager, the packages, the repositories and the kickstart dialect.

use serde::Serialize;

use crate::config::Distro;

/// The distro as the templates see it (`distro.*`).
#[derive(Debug, Clone, Serialize)]
pub struct DistroFacts {
    /// `appliance.distro` (`centos7`, `rocky9`, …).
    pub id: &'static str,
    /// `CentOS 7`, `Rocky Linux 9`, …
    pub name: &'static str,
    pub major: u8,
    /// CentOS 7: yum, a replaced `sshd_config`, the vault's repositories.
    pub el7: bool,
    /// EL10: the ISO boots GRUB2 on BIOS too, and needs an x86-64-v3 CPU.
    pub el10: bool,
    /// pykickstart's handler for its kickstart (`ksvalidator -v`).
    pub ks_version: String,
}

impl DistroFacts {
    pub fn of(d: Distro) -> Self {
        Self {
            id: d.id(),
            name: d.name(),
            major: d.major(),
            el7: d == Distro::Centos7,
            el10: d.major() == 10,
            ks_version: format!("RHEL{}", d.major()),
        }
    }
}

/// The packages every appliance needs, with the names CentOS 7 really uses
/// (the manual's `container_selinux` is `container-selinux`, from extras).
const EL7_PACKAGES: &[&str] = &[
    "lvm2",
    "device-mapper-persistent-data",
    "container-selinux",
    "libcgroup",
    "docker-ce",
    "curl",
    "firewalld",
    "policycoreutils-python",
];

/// The same on EL9 and EL10: semanage is in policycoreutils-python-utils;
/// container-selinux comes from AppStream; curl is curl-minimal, which a
/// request for `curl` would conflict with; libcgroup is gone (cgroup v2).
const EL9_PACKAGES: &[&str] = &[
    "lvm2",
    "device-mapper-persistent-data",
    "container-selinux",
    "docker-ce",
    "firewalld",
    "policycoreutils-python-utils",
];

pub fn base_packages(d: Distro) -> &'static [&'static str] {
    if d == Distro::Centos7 {
        EL7_PACKAGES
    } else {
        EL9_PACKAGES
    }
}

/// One repository: a `repo` line of the kickstart, a section of a repo file.
#[derive(Debug, Clone, Serialize)]
pub struct Repo {
    pub id: String,
    pub name: String,
    pub title: String,
    pub url: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Repos {
    /// The installation tree (the kickstart's `url`).
    pub os_url: String,
    /// CentOS 7's repositories, which `CentOS-Base.repo` replaces with the
    /// vault's (EL9/EL10 keep the vendor's own repo files: their mirrors
    /// are alive).
    pub centos: Vec<Repo>,
    /// `repo` lines of the kickstart (everything but the tree, which is `url`).
    pub kickstart: Vec<Repo>,
    pub docker_ce_base: String,
}

fn repo(id: &str, title: &str, url: String) -> Repo {
    Repo {
        id: id.to_string(),
        name: id.to_string(),
        title: title.to_string(),
        url,
    }
}

/// The repositories of `mirror` and Docker's `docker_ce` (both without a
/// trailing `/`).
pub fn repos(d: Distro, mirror: &str, docker_ce: &str) -> Repos {
    if d == Distro::Centos7 {
        let docker = repo(
            "docker-ce-stable",
            "Docker CE Stable",
            format!("{docker_ce}/7/x86_64/stable/"),
        );
        let centos: Vec<Repo> = [
            ("base", "os", "Base"),
            ("updates", "updates", "Updates"),
            ("extras", "extras", "Extras"),
        ]
        .iter()
        .map(|(id, dir, title)| repo(id, title, format!("{mirror}/{dir}/x86_64/")))
        .collect();
        let mut kickstart: Vec<Repo> = centos[1..].to_vec();
        kickstart.push(docker);
        return Repos {
            os_url: format!("{mirror}/os/x86_64/"),
            centos,
            kickstart,
            docker_ce_base: docker_ce.to_string(),
        };
    }
    // No trailing `/`: anaconda adds the repositories a tree's .treeinfo
    // lists (BaseOS's may list AppStream) unless a kickstart repo has the
    // same URL, compared after os.path.normpath, which drops the `/`
    // (anaconda rhel-9 payload/dnf/payload.py _load_treeinfo_repositories).
    Repos {
        os_url: format!("{mirror}/BaseOS/x86_64/os"),
        centos: vec![],
        kickstart: vec![
            // container-selinux, which docker-ce requires, is in AppStream.
            repo(
                "AppStream",
                "AppStream",
                format!("{mirror}/AppStream/x86_64/os"),
            ),
            // Docker's tree for the major: dnf's `$releasever` can be a
            // point release, which Docker's RHEL tree does not have.
            repo(
                "docker-ce-stable",
                "Docker CE Stable",
                format!("{docker_ce}/{}/x86_64/stable", d.major()),
            ),
        ],
        docker_ce_base: docker_ce.to_string(),
    }
}

/// Whether every key is `ssh-rsa`: the DEFAULT crypto policy of EL9 and
/// EL10 refuses the SHA-1 `ssh-rsa` signature that old clients make with
/// such keys.
pub fn rsa_only(keys: &[String]) -> bool {
    !keys.is_empty() && keys.iter().all(|k| k.starts_with("ssh-rsa "))
}
