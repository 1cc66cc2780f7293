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
        "inv.ini:2: host h1: ip = \"10.0.0.300/24\": bad CIDR, expected an IPv4 address with its prefix length such as 192.0.2.10/24, or dhcp"
    );
    assert!(err("[web]\nh1 ip=10.0.0.3\n")
        .starts_with("inv.ini:2: host h1: ip = \"10.0.0.3\": bad CIDR"));
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
        .contains("inv.ini:2: host h1: mac = \"52:54:00:00:00\": bad MAC"));
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
        two.contains("inv.ini:3: host h2: mac = \"52:54:00:00:00:01\": also host h1's (line 2)"),
        "{two}"
    );
    assert!(
        two.contains("inv.ini:4: host h3: ip = \"1.2.3.4\": also host h2's (line 3)"),
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

/// Issue 18 §19: once an inventory writes `regbake_ip`, every bare `ip` in
/// it is the playbook's: not read (on any host) and not checked, nor are
/// slips of it; other vars are unaffected.
#[test]
fn a_prefixed_var_leaves_the_bare_name_to_the_playbook() {
    let inv = parse(
        "inv.ini",
        "[w]\nh1 regbake_ip=10.0.0.5/24 ip=eth0:10.9.9.9 gateway=10.0.0.1\n\
         h2 ip=dhcp\n[w:vars]\nIP=anything\nips=1,2\n[all:vars]\nip=not-an-address\n",
    )
    .unwrap();
    let ip = |h: usize| inv.hosts[h].overrides.get("ip").map(|a| a.value.clone());
    assert_eq!(
        ip(0),
        Some(Value::Ip(Ip::Static("10.0.0.5/24".parse().unwrap())))
    );
    assert_eq!(ip(1), None, "h2's bare ip is the playbook's too");
    assert_eq!(inv.hosts[0].overrides.text("gateway"), Some("10.0.0.1"));
    assert_eq!(inv.hosts[0].vars["ip"].value, "eth0:10.9.9.9");
    // The prefixed spelling is still checked, and other vars still are.
    assert!(err("[w]\nh1 regbake_ip=10.0.0.5 ip=x\n")
        .contains("inv.ini:2: host h1: regbake_ip = \"10.0.0.5\": bad CIDR"));
    assert!(err("[w]\nh1 regbake_ip=dhcp ip=x gatway=1.2.3.4\n").contains("did you mean gateway?"));
    assert!(
        err("[w]\nh1 regbake_ip=dhcp regbake_ips=x\n").contains("unknown regbake var regbake_ips")
    );
}

#[test]
fn depth_is_the_longest_parent_chain() {
    // site > dc > rack > web, and site > web directly: web is at depth 4,
    // so rack's vars beat site's, and web's beat rack's.
    let inv = parse(
        "inv.ini",
        "[site:children]\ndc\nweb\n[dc:children]\nrack\n[rack:children]\nweb\n\
         [web]\nh1\n[site:vars]\ndisk=sda\ndns=192.0.2.1\ndata_size_gb=1\n\
         [rack:vars]\ndisk=sdb\ndns=192.0.2.2\n[web:vars]\ndisk=sdc\n\
         [all:vars]\ndata_size_gb=9\ngateway=192.0.2.254\n",
    )
    .unwrap();
    let o = &inv.hosts[0].overrides;
    assert_eq!(o.text("disk"), Some("sdc"));
    assert_eq!(
        o.get("dns").map(|a| &a.value),
        Some(&Value::List(vec!["192.0.2.2".into()]))
    );
    assert_eq!(
        o.get("data_size_gb").map(|a| &a.value),
        Some(&Value::Number(1))
    );
    assert_eq!(o.text("gateway"), Some("192.0.2.254"));
    // Two groups of one depth: the later name wins, as in Ansible.
    let inv = parse(
        "inv.ini",
        "[b]\nh1\n[a]\nh1\n[a:vars]\ndisk=sda\n[b:vars]\ndisk=sdb\n",
    )
    .unwrap();
    assert_eq!(inv.hosts[0].overrides.text("disk"), Some("sdb"));
}

#[test]
fn long_cycles_are_named_short() {
    let mut text = String::from("[g0]\nh1\n");
    for i in 1..100 {
        text.push_str(&format!("[g{i}:children]\ng{}\n", i - 1));
    }
    text.push_str("[g0:children]\ng99\n");
    assert_eq!(
        err(&text),
        "inv.ini:0: group cycle in [..:children]: g0 > g1 > g2 > g3 > … > g99 > g0 (100 groups)"
    );
}

/// The grouping's work (group and link visits, var merges), counted.
fn steps(text: &str) -> usize {
    super::groups::STEPS.with(|s| s.set(0));
    let inv = parse("inv.ini", text).unwrap();
    assert!(!inv.hosts.is_empty());
    super::groups::STEPS.with(std::cell::Cell::get)
}

/// Issue 18 §17: one group per host took time quadratic in the hosts (each
/// host scanned every group: 40,000 hosts, 54 s). The work now grows with
/// the inventory: about the same per line at 5,000 and 20,000 hosts, and a
/// few steps per host, where a scan of every group per host would be
/// thousands. The same for hosts under a deep nesting.
#[test]
fn grouping_work_is_linear_in_the_inventory() {
    let one_group_per_host = |n: usize| -> String {
        (0..n)
            .map(|i| format!("[g{i}]\nh{i} data_size_gb={i}\n[g{i}:vars]\ndisk=sd{i}\n"))
            .collect()
    };
    let small = steps(&one_group_per_host(5_000));
    let large = steps(&one_group_per_host(20_000));
    assert!(large <= 20 * 20_000, "{large} steps for 20,000 hosts");
    assert!(
        large * 10 <= small * 4 * 11,
        "{small} steps, then {large} for 4x the hosts"
    );

    let nested = |n: usize| -> String {
        let mut text = String::from("[g0:vars]\ndisk=sda\n[g0]\n");
        for i in 0..n {
            text.push_str(&format!("h{i}\n"));
        }
        for i in 1..n {
            text.push_str(&format!("[g{i}:children]\ng{}\n", i - 1));
        }
        text
    };
    let small = steps(&nested(5_000));
    let large = steps(&nested(20_000));
    assert!(large <= 20 * 20_000, "{large} steps for 20,000 hosts");
    assert!(
        large * 10 <= small * 4 * 11,
        "{small} steps, then {large} for 4x the hosts"
    );
}
