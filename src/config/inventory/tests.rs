//! The inventory parser: groups, vars, precedence and its messages.

use super::*;

fn err(text: &str) -> String {
    parse("inv.ini", text).unwrap_err().to_string()
}

#[test]
fn groups_vars_children_and_precedence() {
    let inv = parse(
        "inv.ini",
        "# fleet\n\
         [all:vars]\n\
         dns = 10.0.0.2,10.0.0.3\n\
         gateway=10.0.0.1\n\
         [site]\n\
         [site:children]\n\
         web\n\
         [site:vars]\n\
         disk=vda\n\
         [web]\n\
         web1 ansible_host=10.0.0.11 ip=10.0.0.11/24 mac=52-54-00-AA-BB-01 # comment\n\
         web2:2222 ip=dhcp hostname=\"web2.example.com\" disk='/dev/disk/by-id/wwn-0x5000c500a1b2c3d4'\n\
         [web:vars]\n\
         data_size_gb=100\n\
         ansible_user=ansible\n\
         role_thing=anything\n",
    )
    .unwrap();
    assert_eq!(inv.hosts.len(), 2);
    let w1 = &inv.hosts[0];
    assert_eq!(w1.name, "web1");
    assert_eq!(w1.line, 11);
    let o = &w1.overrides;
    assert_eq!(
        o.get("ip").map(|a| &a.value),
        Some(&Value::Ip(Ip::Static("10.0.0.11/24".parse().unwrap())))
    );
    assert_eq!(o.text("mac"), Some("52:54:00:aa:bb:01"));
    assert_eq!(o.text("disk"), Some("vda"));
    assert_eq!(o.line_of("disk"), Some(9));
    assert_eq!(
        o.get("dns").map(|a| &a.value),
        Some(&Value::List(vec!["10.0.0.2".into(), "10.0.0.3".into()]))
    );
    assert_eq!(
        o.get("data_size_gb").map(|a| &a.value),
        Some(&Value::Number(100))
    );
    assert_eq!(w1.vars["ansible_host"].value, "10.0.0.11");
    let w2 = &inv.hosts[1].overrides;
    assert_eq!(inv.hosts[1].name, "web2");
    assert_eq!(w2.get("ip").map(|a| &a.value), Some(&Value::Ip(Ip::Dhcp)));
    assert_eq!(w2.text("hostname"), Some("web2.example.com"));
    assert_eq!(
        w2.text("disk"),
        Some("/dev/disk/by-id/wwn-0x5000c500a1b2c3d4")
    );
}

#[test]
fn host_in_two_groups_is_one_host() {
    let inv = parse("inv.ini", "[a]\nh1 ip=10.0.0.5/24\n[b]\nh1\n").unwrap();
    assert_eq!(inv.hosts.len(), 1);
}

#[test]
fn errors_name_line_and_problem() {
    assert_eq!(
        err("[web]\nh1 ip=10.0.0.300/24\n"),
        "inv.ini:2: host h1: ip=10.0.0.300/24: bad CIDR, expected an IPv4 address with its prefix length such as 192.0.2.10/24, or dhcp"
    );
    assert!(err("[web]\nh1 ip=10.0.0.3\n").starts_with("inv.ini:2: host h1: ip=10.0.0.3: bad CIDR"));
    assert!(err("[web]\nh1\nh1\n").starts_with("inv.ini:3: duplicate host h1"));
    assert!(err("[a]\nh1 ip=dhcp\n[b]\nh1 disk=sdb\n").starts_with("inv.ini:4: duplicate host h1"));
    assert!(err("[web\nh1\n").starts_with("inv.ini:1: unterminated section header"));
    assert!(err("[web:vas]\n").contains("unknown section type"));
    let e = err("[web]\nh1 gatway=10.0.0.1\n");
    assert!(
        e.starts_with("inv.ini:2: host h1: unknown regbake var gatway (did you mean gateway?)"),
        "{e}"
    );
    assert!(err("[web:vars]\nregbake_disks=sda\n")
        .contains("inv.ini:2: [web:vars]: unknown regbake var regbake_disks (did you mean disk?)"));
    assert!(err("[w]\nh1 IP=10.0.0.1/24\n").contains("did you mean ip?"));
    assert!(err("[w]\nh1 mac_address=52:54:00:00:00:01\n").contains("did you mean mac?"));
    assert!(err("[w]\nh1 mac=52:54:00:00:00\n")
        .contains("inv.ini:2: host h1: mac=52:54:00:00:00: bad MAC"));
    assert!(err("[w]\nh1 data_size_gb=ten\n").contains("whole number"));
    assert!(err("[w]\nh1 a b\n").contains("expected key=value"));
    assert!(err("[w]\nh1 x=\"open\n").contains("unterminated \" quote"));
    assert!(err("[w]\n../x\n").contains("not a safe file name"));
    assert!(err("[a:children]\nb\n[b:children]\na\n").contains("group cycle"));
    let two = err(
        "[w]\nh1 mac=52:54:00:00:00:01\nh2 mac=52:54:00:00:00:01 ip=1.2.3.4/8\nh3 ip=1.2.3.4/8\n",
    );
    assert!(two.starts_with("inv.ini: 2 problems:"), "{two}");
    assert!(
        two.contains("inv.ini:3: host h2: mac 52:54:00:00:00:01 is also host h1's (line 2)"),
        "{two}"
    );
    assert!(
        two.contains("inv.ini:4: host h3: ip 1.2.3.4 is also host h2's (line 3)"),
        "{two}"
    );
    assert_eq!(err("# nothing\n"), "inv.ini: the inventory lists no hosts");
}

#[test]
fn plain_ansible_vars_are_ignored() {
    let inv = parse(
        "inv.ini",
        "[w]\nh1 ansible_host=1.2.3.4 ansible_port=2222 ansible_user=a ansible_become=true http_port=80 disk_count=2 ipv6=::1 macro=1\n",
    )
    .unwrap();
    assert_eq!(inv.hosts[0].overrides, Overrides::default());
}

#[test]
fn regbake_prefix_is_an_alias() {
    let inv = parse("inv.ini", "[w]\nh1 regbake_ip=10.1.0.4/16\n").unwrap();
    assert!(inv.hosts[0].overrides.get("ip").is_some());
}
