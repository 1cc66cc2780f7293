//! The testbeds' Docker network: internal (no way out), its own subnet.

use std::process::Command;

use super::{text, Env, SUBNET};

/// The network exists, and its subnet routes to it.
pub(super) fn ensure(env: &Env) -> Result<(), String> {
    // No route out: a pull fails at once, as on a machine without network.
    // Addresses below .128 are free for machines with a static address.
    if !env
        .docker(&["network", "inspect", &env.network])
        .status
        .success()
    {
        let o = env.docker(&[
            "network",
            "create",
            "--internal",
            "--subnet",
            &format!("{SUBNET}.0/24"),
            "--gateway",
            &format!("{SUBNET}.1"),
            "--ip-range",
            &format!("{SUBNET}.128/25"),
            &env.network,
        ]);
        if !o.status.success() && !text(&o).contains("already exists") {
            return Err(format!("docker network create: {}", text(&o)));
        }
    }
    clear_stale_bridges(env)
}

/// A bridge left by an earlier engine with the testbed's subnet (its data
/// root removed while its bridge stayed, e.g. `rm -rf ~/.cache/regbake-test`)
/// takes the route to the testbeds: "No route to host". One without ports
/// carries no one's traffic and goes; one with ports is another's, and an
/// error says so.
fn clear_stale_bridges(env: &Env) -> Result<(), String> {
    let o = env.docker(&["network", "inspect", "-f", "{{.Id}}", &env.network]);
    let id = text(&o).trim().to_string();
    let ours = format!("br-{}", id.get(..12).unwrap_or_default());
    let addrs = Command::new("ip")
        .args(["-o", "-4", "addr", "show"])
        .output()
        .map_err(|e| format!("ip addr: {e}"))?;
    let gateway = format!("inet {SUBNET}.1/");
    for line in String::from_utf8_lossy(&addrs.stdout).lines() {
        let Some(iface) = line.split_whitespace().nth(1) else {
            continue;
        };
        if !line.contains(&gateway) || iface == ours {
            continue;
        }
        let ports = Command::new("ip")
            .args(["-o", "link", "show", "master", iface])
            .output()
            .map_err(|e| format!("ip link: {e}"))?;
        if !String::from_utf8_lossy(&ports.stdout).trim().is_empty() {
            return Err(format!(
                "{iface} holds {SUBNET}.0/24 too and has ports: another network uses the testbed's subnet"
            ));
        }
        let del = Command::new("ip")
            .args(["link", "delete", iface])
            .output()
            .map_err(|e| format!("ip link delete: {e}"))?;
        if !del.status.success() {
            return Err(format!(
                "{iface}, a stale bridge with the testbed's subnet {SUBNET}.0/24, could not be removed: {}",
                String::from_utf8_lossy(&del.stderr).trim()
            ));
        }
        eprintln!("testbed: removed {iface}, a stale bridge with the testbed's subnet");
    }
    Ok(())
}
