//! Bare metal at fleet scale: `regbake kickstart --inventory/--serve/--oemdrv`.
//! Kickstarts are checked by pykickstart (ksvalidator, then its parser reads
//! the values back), images by mtools, the server by a plain TCP client.

use std::process::Command;

use crate::common::{ksvalidator, require_tool, Test};
use crate::served::{unfill, Server};

const INVENTORY: &str = "\
# three registries: static, DHCP, by-id disk
[all:vars]
dns=192.0.2.53,192.0.2.54
ansible_user=ansible

[registries]
reg1 ansible_host=192.0.2.11 hostname=reg1.example.com ip=192.0.2.11/24 gateway=192.0.2.1 mac=52:54:00:12:34:01
reg2 ansible_host=reg2.example.com ansible_port=2222 hostname=reg2.example.com ip=dhcp mac=52-54-00-12-34-02
reg3 hostname=reg3.example.com ip=198.51.100.7/25 gateway=198.51.100.1 disk=/dev/disk/by-id/wwn-0x5000c500a1b2c3d4 data_size_gb=200

[registries:vars]
disk=vda
";

/// Values pykickstart's RHEL7 parser reads back, per file, as JSON.
const READ_BACK: &str = r#"
import json, sys
from pykickstart.parser import KickstartParser
from pykickstart.version import makeVersion, RHEL7
out = {}
for f in sys.argv[1:]:
    h = makeVersion(RHEL7)
    KickstartParser(h).readKickstart(f)
    n = h.network.network[0]
    out[f] = {
        "bootproto": n.bootProto, "ip": n.ip or "", "netmask": n.netmask or "",
        "gateway": n.gateway or "", "hostname": n.hostname,
        "nameserver": n.nameserver or "",
        "onlyuse": h.ignoredisk.onlyuse, "clearpart": h.clearpart.drives,
        "data": [[l.mountpoint, l.size, bool(l.grow)] for l in h.logvol.dataList() if l.name == "data"],
    }
print(json.dumps(out))
"#;

#[test]
fn inventory_renders_one_valid_kickstart_per_host() {
    if !require_tool("ksvalidator") || !require_tool("python3") {
        return;
    }
    let t =
        Test::new()
            .file("hosts.ini", INVENTORY)
            .args(&["kickstart", "--inventory", "hosts.ini"]);
    let o = t.success();
    assert!(o.stdout.contains("rendered 3 kickstarts"), "{}", o.stdout);
    let files: Vec<String> = ["reg1", "reg2", "reg3"]
        .iter()
        .map(|h| format!("out/kickstart/{h}.ks"))
        .collect();
    for f in &files {
        let v = ksvalidator(t.path())
            .args(["-v", "RHEL7", f])
            .current_dir(t.path())
            .output()
            .expect("run ksvalidator");
        assert!(
            v.status.success(),
            "ksvalidator {f}: {}{}",
            String::from_utf8_lossy(&v.stdout),
            String::from_utf8_lossy(&v.stderr)
        );
        assert_eq!(t.mode(f), 0o600, "{f} holds secrets");
    }
    assert!(!t.path().join("out/kickstart/ks.cfg").exists());

    let py = Command::new("python3")
        .arg("-c")
        .arg(READ_BACK)
        .args(&files)
        .current_dir(t.path())
        .output()
        .expect("run python3");
    assert!(
        py.status.success(),
        "{}",
        String::from_utf8_lossy(&py.stderr)
    );
    let got: serde_json::Value = serde_json::from_slice(&py.stdout).expect("json");
    let expect = serde_json::json!({
        "out/kickstart/reg1.ks": {
            "bootproto": "static", "ip": "192.0.2.11", "netmask": "255.255.255.0",
            "gateway": "192.0.2.1", "hostname": "reg1.example.com",
            "nameserver": "192.0.2.53,192.0.2.54",
            "onlyuse": ["vda"], "clearpart": ["vda"],
            "data": [["/data/docker-registry", 1024, true]],
        },
        "out/kickstart/reg2.ks": {
            "bootproto": "dhcp", "ip": "", "netmask": "", "gateway": "",
            "hostname": "reg2.example.com", "nameserver": "192.0.2.53,192.0.2.54",
            "onlyuse": ["vda"], "clearpart": ["vda"],
            "data": [["/data/docker-registry", 1024, true]],
        },
        "out/kickstart/reg3.ks": {
            "bootproto": "static", "ip": "198.51.100.7", "netmask": "255.255.255.128",
            "gateway": "198.51.100.1", "hostname": "reg3.example.com",
            "nameserver": "192.0.2.53,192.0.2.54",
            "onlyuse": ["/dev/disk/by-id/wwn-0x5000c500a1b2c3d4"],
            "clearpart": ["/dev/disk/by-id/wwn-0x5000c500a1b2c3d4"],
            "data": [["/data/docker-registry", 204800, false]],
        },
    });
    assert_eq!(got, expect);
}

#[test]
fn each_host_gets_a_certificate_from_the_one_ca() {
    let t = Test::new()
        .config(
            "version = 1\n[registry.tls]\nmode = \"generate\"\n\
             [[registry.auth.users]]\nname = \"ci\"\npassword_env = \"REGBAKE_TEST_PW\"\n",
        )
        .file("hosts.ini", INVENTORY)
        .env("REGBAKE_TEST_PW", "s3cret-pw")
        .args(&["kickstart", "--inventory", "hosts.ini"]);
    let o = t.success();
    assert!(!o.stdout.contains("s3cret-pw") && !o.stderr.contains("s3cret-pw"));
    // One bcrypt hash for the fleet, kept like the other secrets.
    let htpasswd = t.read("out/secrets/htpasswd");
    assert!(htpasswd.starts_with("ci:$2"), "{htpasswd}");
    assert_eq!(t.mode("out/secrets/htpasswd"), 0o600);
    let ca = t.read("out/secrets/tls/ca.crt");
    let certs: Vec<String> = ["reg1", "reg2", "reg3"]
        .iter()
        .map(|h| t.read(&format!("out/secrets/tls/hosts/{h}.crt")))
        .collect();
    assert_eq!(
        t.read("out/secrets/tls/hosts/reg1.sans"),
        "reg1.example.com\n192.0.2.11\n"
    );
    assert_eq!(
        t.read("out/secrets/tls/hosts/reg2.sans"),
        "reg2.example.com\n"
    );
    assert_eq!(t.mode("out/secrets/tls/hosts/reg1.key"), 0o600);
    assert!(t
        .read("out/kickstart/reg3.ks")
        .contains("# Holds the appliance's secrets (registry http secret, TLS key)"));
    if require_tool("openssl") {
        for h in ["reg1", "reg2", "reg3"] {
            let v = Command::new("openssl")
                .args(["verify", "-CAfile", "out/secrets/tls/ca.crt"])
                .arg(format!("out/secrets/tls/hosts/{h}.crt"))
                .current_dir(t.path())
                .output()
                .expect("openssl");
            assert!(v.status.success(), "{}", String::from_utf8_lossy(&v.stderr));
        }
    }
    // A second render reuses the CA, every host certificate and the hash.
    t.success();
    assert_eq!(t.read("out/secrets/htpasswd"), htpasswd);
    assert_eq!(t.read("out/secrets/tls/ca.crt"), ca);
    for (h, c) in ["reg1", "reg2", "reg3"].iter().zip(&certs) {
        assert_eq!(&t.read(&format!("out/secrets/tls/hosts/{h}.crt")), c);
    }
}

#[test]
fn malformed_inventories_exit_2_naming_file_line_and_problem() {
    let cases: &[(&str, &str)] = &[
        (
            "[web]\nh1 ip=10.0.0.5/24\nh2 ip=10.0.0.300/24\n",
            "inv.ini:3: host h2: ip = \"10.0.0.300/24\": bad CIDR",
        ),
        (
            "[web]\nh1 ip=10.0.0.5/24\n\n[web]\nh1 ip=10.0.0.6/24\n",
            "inv.ini:5: duplicate host h1",
        ),
        (
            "[web]\nh1 gatway=10.0.0.1\n",
            "inv.ini:2: host h1: unknown regbake var gatway (did you mean gateway?)",
        ),
        (
            "[web:vars]\nregbake_disks=sdb\n[web]\nh1\n",
            "inv.ini:2: [web:vars]: unknown regbake var regbake_disks",
        ),
        (
            "[web\nh1\n",
            "inv.ini:1: unterminated section header",
        ),
        (
            "[web]\nh1 mac=52:54:00:12:34\n",
            "inv.ini:2: host h1: mac = \"52:54:00:12:34\": bad MAC",
        ),
        // Values are checked like regbake.toml values, naming the host.
        (
            "[web]\nh1\nh2 hostname=bad_name\n",
            "inv.ini:3: host h2: hostname (appliance.hostname) = \"bad_name\": expected an RFC 1123 host name",
        ),
        (
            "[web]\nh1 ip=10.0.0.5/24 gateway=10.9.0.1\n",
            "inv.ini:2: host h1: gateway (network.gateway) = \"10.9.0.1\": expected an IPv4 address inside",
        ),
        (
            "[web]\nh1 hostname=reg.example.com\nh2 hostname=REG.example.com\n",
            "inv.ini:3: host h2: hostname = \"reg.example.com\": also host h1's (line 2)",
        ),
        // Names the kickstart server would refuse to serve (issue 12, 13).
        (
            "[web]\nreg..1 ip=dhcp\n",
            "inv.ini:2: host name \"reg..1\" is not a safe file name",
        ),
        (
            "[web]\nreg2. ip=dhcp\n",
            "inv.ini:2: host name \"reg2.\" is not a safe file name",
        ),
    ];
    for (inv, want) in cases {
        let t = Test::new()
            .file("inv.ini", inv)
            .args(&["kickstart", "--inventory", "inv.ini"]);
        let t = t.status(2).stderr_contains(want);
        t.check();
        assert!(
            !t.path().join("out/kickstart").exists(),
            "nothing is written for {inv:?}"
        );
    }
}

/// Each kickstart goes only to a request with its host's token (issue
/// 21); by MAC only with `--trust-mac`; traversal is refused.
#[test]
fn serve_answers_by_token_and_by_mac_and_refuses_traversal() {
    let t = Test::new().file("hosts.ini", INVENTORY);
    let server = Server::start(
        &t,
        &["kickstart", "--inventory", "hosts.ini", "--trust-mac"],
    );
    for h in ["reg1", "reg2", "reg3"] {
        let path = &server.paths[h];
        assert!(
            path.starts_with("/ks/") && path.ends_with(&format!("/{h}.ks")),
            "{path}"
        );
        let (status, body) = server.get(path, &[]);
        assert_eq!(status, 200, "{h}");
        assert_eq!(
            unfill(&body),
            std::fs::read(t.path().join(format!("out/kickstart/{h}.ks"))).unwrap()
        );
        // Without its token, or with another host's: refused.
        let (status, body) = server.get(&format!("/{h}.ks"), &[]);
        assert_eq!(status, 403, "{}", String::from_utf8_lossy(&body));
        let other = if h == "reg1" { "reg2" } else { "reg1" };
        let token = server.paths[other].split('/').nth(2).unwrap();
        assert_eq!(server.get(&format!("/ks/{token}/{h}.ks"), &[]).0, 403);
    }
    assert_eq!(t.mode("out/fleet/boot-params"), 0o600);
    let reg2 = std::fs::read(t.path().join("out/kickstart/reg2.ks")).unwrap();
    let (status, body) = server.get(
        "/ks.cfg",
        &["X-RHN-Provisioning-MAC-0: eth0 52:54:00:12:34:02"],
    );
    assert_eq!((status, unfill(&body)), (200, reg2.clone()));
    // Anaconda sends one header per interface; any of them may match.
    let (status, body) = server.get(
        "/ks.cfg",
        &[
            "X-RHN-Provisioning-MAC-0: eth0 52:54:00:ff:ff:ff",
            "X-RHN-Provisioning-MAC-1: eth1 52:54:00:12:34:02",
        ],
    );
    assert_eq!((status, unfill(&body)), (200, reg2));
    let (status, body) = server.get(
        "/ks.cfg",
        &["X-RHN-Provisioning-MAC-0: eth0 52:54:00:99:99:99"],
    );
    assert_eq!(status, 404);
    assert!(String::from_utf8_lossy(&body).contains("no inventory host has MAC 52:54:00:99:99:99"));
    assert_eq!(server.get("/ks.cfg", &[]).0, 404);
    assert_eq!(server.get("/nope.ks", &[]).0, 404);
    for bad in [
        "/../reg1.ks",
        "/../../etc/passwd",
        "/%2e%2e/%2e%2e/etc/passwd",
        "/..%2freg1.ks",
        "/%2E%2E%2Fhosts.ini",
        "/out/kickstart/reg1.ks",
    ] {
        let (status, _) = server.get(bad, &[]);
        assert!(status == 400 || status == 404, "{bad}: {status}");
    }
}

/// Without `--trust-mac`, a MAC does not fetch a kickstart.
#[test]
fn serve_by_mac_needs_trust_mac() {
    let t = Test::new().file("hosts.ini", INVENTORY);
    let server = Server::start(&t, &["kickstart", "--inventory", "hosts.ini"]);
    let (status, body) = server.get(
        "/ks.cfg",
        &["X-RHN-Provisioning-MAC-0: eth0 52:54:00:12:34:02"],
    );
    let body = String::from_utf8_lossy(&body);
    assert_eq!(status, 403, "{body}");
    assert!(
        body.contains("--trust-mac") && body.contains("out/fleet/boot-params"),
        "{body}"
    );
}

#[test]
fn serve_single_host_and_stop_on_sigterm() {
    let t = Test::new();
    let mut server = Server::start(&t, &["kickstart"]);
    assert_eq!(server.get("/ks.cfg", &[]).0, 403, "the token is needed");
    let (status, body) = server.get(&server.paths["ks.cfg"], &[]);
    assert_eq!(status, 200);
    assert_eq!(
        unfill(&body),
        std::fs::read(t.path().join("out/kickstart/ks.cfg")).unwrap()
    );
    let status = server.stop();
    assert!(status.success(), "{status}");
    let out = server.stdout();
    assert!(out.contains("stopped (SIGTERM)"), "{out}");
}

#[test]
fn a_closed_terminal_stops_the_server() {
    // The shell sends its jobs SIGHUP when the session ends: a server left
    // behind would hold the port, serving on with nobody to read its log.
    let t = Test::new();
    let mut server = Server::start(&t, &["kickstart"]);
    assert_eq!(server.get(&server.paths["ks.cfg"], &[]).0, 200);
    let status = server.stop_with(libc::SIGHUP);
    assert!(status.success(), "{status}");
    // Its stdout, a pipe, went to /dev/null with the terminal: what is
    // left to see is the port, free again.
    assert!(
        std::net::TcpStream::connect(&server.addr).is_err(),
        "{} still answers",
        server.addr
    );
}

fn mtools(args: &[&str], dir: &std::path::Path) -> Vec<u8> {
    let o = Command::new(args[0])
        .args(&args[1..])
        .current_dir(dir)
        .output()
        .expect("run mtools");
    assert!(
        o.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    o.stdout
}

#[test]
fn oemdrv_images_hold_the_exact_kickstart() {
    if !require_tool("mlabel") || !require_tool("mcopy") {
        return;
    }
    let t = Test::new().args(&["kickstart", "--oemdrv"]);
    t.success();
    let label = mtools(
        &["mlabel", "-s", "-i", "out/kickstart/oemdrv.img", "::"],
        t.path(),
    );
    assert_eq!(
        String::from_utf8_lossy(&label).trim(),
        "Volume label is OEMDRV"
    );
    let ks = mtools(
        &["mcopy", "-i", "out/kickstart/oemdrv.img", "::ks.cfg", "-"],
        t.path(),
    );
    assert_eq!(
        ks,
        std::fs::read(t.path().join("out/kickstart/ks.cfg")).unwrap()
    );

    let t = Test::new().file("hosts.ini", INVENTORY).args(&[
        "kickstart",
        "--inventory",
        "hosts.ini",
        "--oemdrv",
    ]);
    t.success();
    for h in ["reg1", "reg3"] {
        let img = format!("out/kickstart/{h}-oemdrv.img");
        let label = mtools(&["mlabel", "-s", "-i", &img, "::"], t.path());
        assert_eq!(
            String::from_utf8_lossy(&label).trim(),
            "Volume label is OEMDRV"
        );
        let ks = mtools(&["mcopy", "-i", &img, "::ks.cfg", "-"], t.path());
        assert_eq!(
            ks,
            std::fs::read(t.path().join(format!("out/kickstart/{h}.ks"))).unwrap()
        );
    }
}

/// A malformed MAC header is named with its value (400), not answered as
/// if the installer had sent none.
#[test]
fn serve_names_a_malformed_mac_header() {
    let t = Test::new().file("hosts.ini", INVENTORY);
    let server = Server::start(
        &t,
        &["kickstart", "--inventory", "hosts.ini", "--trust-mac"],
    );
    let (status, body) = server.get("/ks.cfg", &["X-RHN-Provisioning-MAC-0: eth0 52:54:00:zz"]);
    let body = String::from_utf8_lossy(&body);
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains("malformed X-RHN-Provisioning-MAC-0 header")
            && body.contains("eth0 52:54:00:zz"),
        "{body}"
    );
    // A NIC whose address regbake cannot read (InfiniBand's 20 bytes) does
    // not stop a machine whose other NIC is in the inventory.
    let reg2 = std::fs::read(t.path().join("out/kickstart/reg2.ks")).unwrap();
    let (status, body) = server.get(
        "/ks.cfg",
        &[
            "X-RHN-Provisioning-MAC-0: ib0 80:00:00:48:fe:80:00:00:00:00:00:00:f4:52:14:03:00:7b:cb:a1",
            "X-RHN-Provisioning-MAC-1: eth1 52:54:00:12:34:02",
        ],
    );
    assert_eq!((status, unfill(&body)), (200, reg2));
}

/// A server with many NICs sends one header per NIC beside curl's own:
/// 40 of them are answered, by the last one.
#[test]
fn serve_answers_a_machine_with_40_nics() {
    let t = Test::new().file("hosts.ini", INVENTORY);
    let server = Server::start(
        &t,
        &["kickstart", "--inventory", "hosts.ini", "--trust-mac"],
    );
    let mut headers: Vec<String> = [
        "User-Agent: curl/7.29.0",
        "Accept: */*",
        "X-Anaconda-Architecture: x86_64",
        "X-Anaconda-System-Release: CentOS Linux",
    ]
    .iter()
    .map(ToString::to_string)
    .collect();
    for i in 0..39 {
        headers.push(format!(
            "X-RHN-Provisioning-MAC-{i}: enp{i}s0f0 52:54:00:ee:00:{i:02x}"
        ));
    }
    headers.push("X-RHN-Provisioning-MAC-39: enp39s0f0 52:54:00:12:34:02".into());
    let refs: Vec<&str> = headers.iter().map(String::as_str).collect();
    let (status, body) = server.get("/ks.cfg", &refs);
    let reg2 = std::fs::read(t.path().join("out/kickstart/reg2.ks")).unwrap();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(unfill(&body), reg2);
    // Still bounded.
    let many: Vec<String> = (0..300).map(|i| format!("X-Pad-{i}: {i}")).collect();
    let refs: Vec<&str> = many.iter().map(String::as_str).collect();
    assert_eq!(server.get("/ks.cfg", &refs).0, 431);
}

/// Issue 18 §15: 50,000 nested groups overflowed the stack (exit 134).
/// They are read without recursion, and the vars of the nesting reach the
/// host with Ansible's precedence (a deeper group wins).
#[test]
fn fifty_thousand_nested_groups_are_read() {
    const DEPTH: usize = 50_000;
    let mut inv = String::from("[g0]\nh1\n");
    for i in 1..DEPTH {
        inv.push_str(&format!("[g{i}:children]\ng{}\n", i - 1));
    }
    inv.push_str(&format!(
        "[g{}:vars]\ndisk=vdb\ndata_size_gb=123\n[g1:vars]\ndisk=vdc\n",
        DEPTH - 1
    ));
    let t = Test::new()
        .file("hosts.ini", &inv)
        .args(&["kickstart", "--inventory", "hosts.ini"]);
    let o = t.success();
    assert!(o.stdout.contains("rendered 1 kickstarts"), "{}", o.stdout);
    let ks = t.read("out/kickstart/h1.ks");
    assert!(ks.contains("ignoredisk --only-use=vdc\n"), "{ks}");
    // 123 GiB in MiB.
    assert!(
        ks.contains("--name=data --fstype=xfs --size=125952\n"),
        "{ks}"
    );
}

/// Issue 18 §19: beside `regbake_ip`, a playbook's own `ip` (and
/// `gateway`) may hold anything: regbake reads only the prefixed ones.
#[test]
fn regbake_prefixed_vars_leave_the_bare_names_to_the_playbook() {
    let t = Test::new()
        .file(
            "hosts.ini",
            "[registries]\n\
             reg1 regbake_ip=192.0.2.11/24 regbake_gateway=192.0.2.1 ip=eth1 gateway=via-bastion\n\
             reg2 ip=10.0.0.0/8\n",
        )
        .args(&["kickstart", "--inventory", "hosts.ini"]);
    t.success();
    let ks = t.read("out/kickstart/reg1.ks");
    assert!(
        ks.contains("--ip=192.0.2.11 --netmask=255.255.255.0 --gateway=192.0.2.1 "),
        "{ks}"
    );
    let ks = t.read("out/kickstart/reg2.ks");
    assert!(ks.contains("network --bootproto=dhcp "), "{ks}");
}
