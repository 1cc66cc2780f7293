//! Bad input, said exactly: each case is a config, an inventory or a
//! command-line value the user got wrong, with the whole stderr of the real
//! binary and exit 2. One problem is said one way wherever it comes from:
//! `[FILE:LINE: ]PATH = VALUE: EXPECTED`, text quoted, numbers and booleans
//! bare. Every case runs and every mismatch is shown, not only the first.

use crate::common::Test;

/// regbake.toml, then `regbake render`: the validation pass.
const CONFIGS: &[(&str, &str)] = &[
    // port out of range is a bare number.
    (
        "version = 1\n[registry]\nport = 70000\n",
        "error: invalid config (1 problem):\n  - registry.port = 70000: expected a port number from 1 to 65535, or 0 for the default (5000, or 443 with TLS)\n",
    ),
    // version.
    (
        "version = 2\n",
        "error: invalid config (1 problem):\n  - version = 2: expected 1 (the only config version)\n",
    ),
    // text value is quoted.
    (
        "version = 1\n[storage]\ndisk = \"sda1\"\n",
        "error: invalid config (1 problem):\n  - storage.disk = \"sda1\": expected \"auto\" (the kickstart finds the one local, non-removable disk), a whole disk's /dev/disk/by-id/… or /dev/disk/by-path/… link, or a disk name such as sda, vda or nvme0n1 (not a partition, by-uuid/by-label file system, optical drive, loop or RAM device)\n",
    ),
    // problems are all said.
    (
        "version = 1\n[vagrant]\ncpus = 0\nhost_port = 22\n",
        "error: invalid config (2 problems):\n  - vagrant.cpus = 0: expected 1 to 256\n  - vagrant.host_port = 22: expected a port other than 22 and 2222 (ssh, and Vagrant's forward of the VM's ssh), or 0 for the registry port\n",
    ),
    // a relative image path and a checksum Packer does not know.
    (
        "version = 1\n[packer]\nsource = \"image\"\nimage_url = \"file:images/el9.qcow2\"\nimage_checksum = \"md5:0\"\n",
        "error: invalid config (2 problems):\n  - packer.image_url = \"file:images/el9.qcow2\": expected an http(s) URL of a qcow2 cloud image, or file:///PATH of a local one (no spaces, quotes or shell characters)\n  - packer.image_checksum = \"md5:0\": expected sha256:<64 hex digits>, sha512:<128 hex digits>, or file:<http(s) URL of a checksum file that lists the image>\n",
    ),
    // of the wrong type names its field.
    (
        "version = 1\n[registry]\nport = \"x\"\n",
        "error: registry.port: invalid type: string \"x\", expected u32\n",
    ),
    // an unknown choice names its field, the value and the choices.
    (
        "version = 1\n[packer]\naccelerator = \"kvmm\"\n",
        "error: packer.accelerator: unknown variant `kvmm`, expected one of `kvm`, `tcg`, `hvf`, `whpx`, `none`\n",
    ),
];

/// An inventory, then `regbake kickstart --inventory inv.ini`: each problem
/// with its FILE:LINE.
const INVENTORIES: &[(&str, &str)] = &[
    // ip.
    (
        "[web]\nh1 ip=10.0.0.300/24\n",
        "error: inv.ini:2: host h1: ip = \"10.0.0.300/24\": bad CIDR, expected an IPv4 address with its prefix length such as 192.0.2.10/24, or dhcp\n",
    ),
    // mac in group vars.
    (
        "[web]\nh1\n[web:vars]\nmac=52:54:00:12:34\n",
        "error: inv.ini:4: [web:vars]: mac = \"52:54:00:12:34\": bad MAC address, expected six hex pairs such as 52:54:00:12:34:56\n",
    ),
    // data size that is not a number is text.
    (
        "[web]\nh1 regbake_data_size_gb=ten\n",
        "error: inv.ini:2: host h1: regbake_data_size_gb = \"ten\": expected a whole number of GiB (0 = fill the disk)\n",
    ),
    // data size out of range is a bare number.
    (
        "[web]\nh1 data_size_gb=2000000\n",
        "error: invalid config (1 problem):\n  - inv.ini:2: host h1: data_size_gb (storage.data_size_gb) = 2000000: expected a size in GiB up to 1048576, or 0 to grow the data volume to fill the disk\n",
    ),
    // host name checked as in regbake.toml.
    (
        "[web]\nh1\nh2 hostname=bad_name\n",
        "error: invalid config (1 problem):\n  - inv.ini:3: host h2: hostname (appliance.hostname) = \"bad_name\": expected an RFC 1123 host name: dot-separated labels of letters, digits and '-', each 1-63 characters not starting or ending with '-', 253 characters at most\n",
    ),
    // duplicates, every one with its line.
    (
        "[w]\nh1 mac=52:54:00:00:00:01\nh2 mac=52:54:00:00:00:01 ip=10.0.0.4/8\nh3 ip=10.0.0.4/8\n",
        "error: inv.ini: 2 problems:\n  inv.ini:3: host h2: mac = \"52:54:00:00:00:01\": also host h1's (line 2)\n  inv.ini:4: host h3: ip = \"10.0.0.4\": also host h2's (line 3)\n",
    ),
    // unknown var.
    (
        "[web]\nh1 gatway=10.0.0.1\n",
        "error: inv.ini:2: host h1: unknown regbake var gatway (did you mean gateway?); regbake reads hostname, ip, gateway, dns, disk, mac, data_size_gb\n",
    ),
    // without hosts.
    (
        "[web]\n# none yet\n",
        "error: inv.ini: the inventory lists no hosts\n",
    ),
];

/// Command-line values: the flag is the path.
const ARGS: &[(&[&str], &str)] = &[
    // that is a device.
    (
        &["-c", "/dev/null", "render"],
        "error: -c/--config = \"/dev/null\": a device, not a regular file; expected a regbake.toml (a regular file of at most 1 MiB)\n",
    ),
    // that is a device.
    (
        &["kickstart", "--inventory", "/dev/null"],
        "error: --inventory = \"/dev/null\": a device, not a regular file; expected an Ansible INI inventory (a regular file of at most 128 MiB)\n",
    ),
    // report URL scheme.
    (
        &["kickstart", "--serve", "127.0.0.1:0", "--report-url", "ftp://192.0.2.5"],
        "error: --report-url = \"ftp://192.0.2.5\": expected an http:// or https:// URL\n",
    ),
    // report URL with a query.
    (
        &["kickstart", "--serve", "127.0.0.1:0", "--report-url", "http://192.0.2.5/?a=1"],
        "error: --report-url = \"http://192.0.2.5/?a=1\": expected scheme://host[:port][/path] without a query, fragment or login\n",
    ),
    // serving on every address without a report URL.
    (
        &["kickstart", "--serve", "0.0.0.0:8080"],
        "error: --serve = \"0.0.0.0:8080\": listens on every address, and the installers need one to fetch their kickstarts from and to report to: add --report-url http://ADDRESS:8080 with an address of this machine that they reach\n",
    ),
    // box pack disk that is missing.
    (
        &["box", "pack", "--provider", "libvirt", "--disk", "nope.qcow2"],
        "error: --disk = \"nope.qcow2\": not a file\n",
    ),
];

/// One bad input: the files it writes, the arguments, the stderr wanted.
type Case = (
    Vec<(&'static str, &'static str)>,
    Vec<&'static str>,
    &'static str,
);

/// Every case of the three tables.
fn cases() -> Vec<Case> {
    let configs = CONFIGS
        .iter()
        .map(|(toml, err)| (vec![("regbake.toml", *toml)], vec!["render"], *err));
    let inventories = INVENTORIES.iter().map(|(ini, err)| {
        (
            vec![("inv.ini", *ini)],
            vec!["kickstart", "--inventory", "inv.ini"],
            *err,
        )
    });
    let args = ARGS.iter().map(|(args, err)| (vec![], args.to_vec(), *err));
    configs.chain(inventories).chain(args).collect()
}

#[test]
fn bad_input_is_said_exactly_and_exits_2() {
    let cases = cases();
    assert!(cases.len() >= 12);
    let mut wrong = vec![];
    for (files, args, want) in cases {
        let mut t = Test::new();
        for (rel, content) in &files {
            t = t.file(rel, content);
        }
        let o = t.args(&args).run();
        if o.code != 2 || o.stderr != want {
            wrong.push(format!(
                "regbake {args:?} with {files:?}\n  exit {} (want 2)\n  stderr: {:?}\n  want:   {want:?}",
                o.code, o.stderr
            ));
        }
    }
    assert!(wrong.is_empty(), "\n{}", wrong.join("\n\n"));
}

/// The README's `error: …` examples are lines some case's stderr holds.
#[test]
fn readme_error_examples_are_cases() {
    let readme = std::fs::read_to_string(crate::common::repo().join("README.md")).expect("README");
    let shown: Vec<&str> = readme
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("error: "))
        .collect();
    assert!(shown.len() >= 2, "{shown:?}");
    for line in shown {
        assert!(
            cases()
                .iter()
                .any(|(_, _, err)| err.lines().any(|l| l == line)),
            "README's {line:?} is no case's stderr"
        );
    }
}
