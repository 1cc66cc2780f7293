//! Bare metal at fleet scale: `regbake kickstart` for one machine or for
//! every host of an Ansible inventory (`out/kickstart/HOST.ks`), optionally
//! on OEMDRV images, optionally served over HTTP to the installers.
//!
//! Each host is the regbake.toml config with the host's overrides applied and
//! validated again, so an inventory value is checked exactly like the same
//! value in regbake.toml. The hosts share the http secret (nodes behind one
//! load balancer need it), the SSH key and the CA; each gets its own server
//! certificate (`out/secrets/tls/hosts/HOST.*`, reused across renders).

mod console;
mod page;
mod recorder;
mod routes;
pub mod serve;
mod server;
mod show;
mod site;
mod slots;
mod start;
pub mod status;
pub mod store;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};

use crate::config::inventory::{vars, Host, Inventory};
use crate::config::{self, BadInput, Config, NetworkMode, Parsed, Problem, TlsMode, Valid};
use crate::model::secrets::{SecretStore, Slot};
use crate::model::{Appliance, Facts};
use crate::output::{ksdir, Writer};
use crate::render::{self, Scope};
use crate::tree::Tree;
use crate::util::fsx;
pub use serve::Kickstart;

/// `regbake kickstart`
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Args {
    /// Ansible INI inventory: one kickstart per host, with per-host overrides from host vars
    #[arg(long, value_name = "FILE")]
    pub inventory: Option<PathBuf>,
    /// Serve the kickstarts over HTTP for inst.ks= on ADDR (e.g. 192.0.2.5:8080), and record each install's reports, until Ctrl-C
    #[arg(long, value_name = "ADDR")]
    pub serve: Option<String>,
    /// The URL the installers reach the server at, for their kickstarts and reports [default: http://ADDR of --serve; needed when it listens on every address]
    #[arg(long, value_name = "URL", requires = "serve")]
    pub report_url: Option<String>,
    /// Serve each host's kickstart only until its install has begun (reported from %pre)
    #[arg(long, requires = "serve")]
    pub serve_once: bool,
    /// Also serve /ks.cfg by the MAC that inst.ks.sendmac sends, without a token (any machine on the network can claim a MAC)
    #[arg(long, requires = "serve")]
    pub trust_mac: bool,
    /// Also write FAT images labelled OEMDRV holding ks.cfg (oemdrv.img, or HOST-oemdrv.img)
    #[arg(long)]
    pub oemdrv: bool,
    /// Print the install status of the hosts of the last --serve (from out/fleet/status.db) and exit
    #[arg(long, conflicts_with_all = ["serve", "inventory", "oemdrv", "reset"])]
    pub status: bool,
    /// The format of --status
    #[arg(long, value_enum, default_value = "text", requires = "status")]
    pub format: crate::util::Format,
    /// Forget the install status of these hosts (never contacted again: --serve-once serves them again)
    #[arg(long, value_name = "HOST", num_args = 1.., conflicts_with_all = ["serve", "inventory", "oemdrv"])]
    pub reset: Vec<String>,
}

pub fn run(config: Option<&Path>, out: &Path, ko: &Args) -> Result<()> {
    if ko.status {
        return show::status(out, ko.format);
    }
    if !ko.reset.is_empty() {
        return show::reset(out, &ko.reset);
    }
    // Bad serving flags are refused before anything renders.
    let plan = start::plan(
        ko.serve.as_deref(),
        ko.report_url.as_deref(),
        ko.trust_mac,
        ko.serve_once,
    )?;
    let started = Instant::now();
    // Ctrl-C, SIGTERM or SIGHUP stops a fleet render between hosts, and the staged
    // files (full kickstarts) are removed on the way out. Before the lock,
    // so they also end a wait for it.
    crate::util::interrupt::catch_interrupts();
    let lock = crate::output::lock(out)?;
    let kickstarts = match &ko.inventory {
        None => {
            let (valid, _) = config::load(config)?;
            // Only the kickstart: Packer's needs do not matter.
            let facts = Facts::new(out)?;
            let (_, tree) = crate::output::render_to(
                &valid,
                &facts,
                Scope::Kickstart,
                out,
                &lock,
                |_, tree| {
                    if ko.oemdrv {
                        let image = render::oemdrv::image(&kickstart(tree)?.data)?;
                        tree.add("kickstart/oemdrv.img", image, 0o600);
                    }
                    Ok(())
                },
            )?;
            let ks = kickstart(&tree)?.data.clone();
            println!("{}", out.join("kickstart/ks.cfg").display());
            if ko.oemdrv {
                println!("{}", out.join("kickstart/oemdrv.img").display());
            }
            vec![Kickstart {
                host: None,
                mac: None,
                data: ks.into(),
            }]
        }
        Some(path) => {
            let (valid, _) = config::load(config)?;
            let inv = Inventory::load(path)?;
            let mut w = Writer::new(out, crate::output::ksdir::Owner::Inventory, &lock)?;
            let kept = render_fleet(
                &valid.config,
                &inv,
                out,
                ko.oemdrv,
                ko.serve.is_some(),
                &mut w,
            )?;
            w.commit().context("writing the output")?;
            println!(
                "rendered {} kickstarts{} from {} into {} in {} ms",
                inv.hosts.len(),
                if ko.oemdrv { " and OEMDRV images" } else { "" },
                inv.file,
                out.join("kickstart").display(),
                started.elapsed().as_millis()
            );
            kept
        }
    };
    if ko.serve.is_some() {
        // A stop asked for while writing ends the run before serving.
        crate::util::interrupt::check()?;
    }
    match plan {
        // Serving only reads what is in memory: the lock is let go once
        // the boot parameters are written.
        Some(plan) => start::run(out, plan, kickstarts, lock),
        None => Ok(()),
    }
}

/// The render's kickstart.
fn kickstart(tree: &Tree) -> Result<&crate::tree::Entry> {
    tree.get("kickstart/ks.cfg")
        .context("the render has a kickstart")
}

/// The config for one host: the inventory's overrides on a copy of `base`.
pub fn host_config(base: &Config, host: &Host) -> Config {
    let mut c = base.clone();
    // Inventories usually name hosts by their host name.
    c.appliance.hostname = host.name.clone();
    host.overrides.apply(&mut c);
    c
}

/// Validate every host's config; problems name the inventory line, the
/// host, the var and the config field. Only what the validation parsed is
/// kept, a host's in its place: the render makes each host's config again
/// as it goes.
fn validate_hosts(base: &Config, inv: &Inventory) -> Result<Vec<Parsed>, BadInput> {
    let mut problems = vec![];
    let mut parsed = Vec::with_capacity(inv.hosts.len());
    // Hosts left with the address or host name of regbake.toml would clash.
    let mut seen: HashMap<(&str, String), &Host> = HashMap::new();
    for h in &inv.hosts {
        let c = host_config(base, h);
        let found = match config::validate(&c) {
            Ok(p) => {
                parsed.push(p);
                vec![]
            }
            Err(found) => found,
        };
        for p in found {
            let var = vars::var_of_field(&p.path).map(|v| v.name);
            let line = var.and_then(|v| h.overrides.line_of(v)).unwrap_or(h.line);
            let what = match var {
                Some(v) if h.overrides.line_of(v).is_some() || v == "hostname" => {
                    format!("{v} ({})", p.path)
                }
                _ => p.path.clone(),
            };
            problems.push(
                Problem {
                    path: format!("host {}: {what}", h.name),
                    ..p
                }
                .at(&inv.file, line),
            );
        }
        let mut keys = vec![("hostname", c.appliance.hostname.to_ascii_lowercase())];
        if c.network.mode == NetworkMode::Static {
            let addr = c.network.address.split('/').next().unwrap_or_default();
            keys.push(("ip", addr.to_string()));
        }
        for (var, value) in keys {
            if let Some(prev) = seen.insert((var, value.clone()), h) {
                let line = h.overrides.line_of(var).unwrap_or(h.line);
                problems.push(
                    Problem::new(
                        format!("host {}: {var}", h.name),
                        &value,
                        format!(
                            "also host {}'s (line {}); give each host its own {var}",
                            prev.name, prev.line
                        ),
                    )
                    .at(&inv.file, line),
                );
            }
        }
    }
    if problems.is_empty() {
        Ok(parsed)
    } else {
        Err(BadInput::Invalid(problems))
    }
}

/// How many hosts are resolved and rendered at a time: enough to keep every
/// core busy, few enough that memory stays flat for any inventory.
const CHUNK: usize = 256;

/// Render every host of the inventory into `w` (kickstarts, images, state),
/// a chunk of hosts at a time; the kickstarts are also returned when `keep`
/// (to serve them), else only their host names.
pub fn render_fleet(
    base: &Config,
    inv: &Inventory,
    out: &Path,
    oemdrv: bool,
    keep: bool,
    w: &mut Writer,
) -> Result<Vec<Kickstart>> {
    let started = Instant::now();
    let parsed = validate_hosts(base, inv)?;
    crate::util::interrupt::check()?;
    crate::util::log::debug(&format!(
        "validated {} hosts in {} ms",
        inv.hosts.len(),
        started.elapsed().as_millis()
    ));
    let mut store = SecretStore::load(out).context("reading stored secrets")?;
    if base.registry.tls.mode != TlsMode::Off {
        store.index_hosts()?;
    }
    let facts = Facts::new(out)?;
    let resolve_host = |config: Config, parsed: Parsed, h: &Host, store: &mut SecretStore| {
        Appliance::resolve(
            &Valid { config, parsed },
            store,
            &facts,
            Slot::Host(&h.name),
        )
        .with_context(|| format!("host {}", h.name))
    };
    // The first host settles what all share (SSH keys, http secret, CA,
    // htpasswd): it goes first, alone, through the one store.
    let h0 = &inv.hosts[0];
    let first = resolve_host(host_config(base, h0), parsed[0].clone(), h0, &mut store)?;
    let keys = first.user.authorized_keys.clone();
    let hashes = htpasswd_hashes(&first);
    let config_of = |h: &Host| -> Config {
        let mut c = host_config(base, h);
        // Key files were read for the first host; don't read them 100,000 times.
        c.user.ssh_keys.clone_from(&keys);
        c.user.ssh_key_files.clear();
        for u in &mut c.registry.auth.users {
            if let Some(hash) = hashes.get(&u.name) {
                u.password_hash.clone_from(hash);
                u.password_env.clear();
            }
        }
        c
    };

    let mut kickstarts = Vec::with_capacity(if keep { inv.hosts.len() } else { 0 });
    let mut first = Some(first);
    let dir = w.kickstarts()?.dir().to_path_buf();
    // A chunk renders on the other threads while this one resolves the
    // next: resolving (one secret store) is the part that cannot be shared.
    std::thread::scope(|s| -> Result<()> {
        let mut rendering = None;
        for (hosts, parsed) in inv.hosts.chunks(CHUNK).zip(parsed.chunks(CHUNK)) {
            crate::util::interrupt::check()?;
            let mut jobs = Vec::with_capacity(hosts.len());
            for (h, parsed) in hosts.iter().zip(parsed) {
                jobs.push(match first.take() {
                    Some(app) => app,
                    None => resolve_host(config_of(h), parsed.clone(), h, &mut store)?,
                });
            }
            if let Some((hosts, job)) = rendering.take() {
                record(hosts, join(job)?, w, &mut kickstarts)?;
            }
            let dir = &dir;
            let job = s.spawn(move || render_all(hosts, &jobs, dir, oemdrv, keep));
            rendering = Some((hosts, job));
        }
        if let Some((hosts, job)) = rendering.take() {
            record(hosts, join(job)?, w, &mut kickstarts)?;
        }
        Ok(())
    })?;
    crate::util::interrupt::check()?;
    let mut state = Tree::default();
    store.write_into(&mut state);
    for (rel, e) in &state.files {
        w.add(rel, e)?;
    }
    Ok(kickstarts)
}

/// The bcrypt hash of each user of `app`'s htpasswd: the first host's, so
/// env passwords are hashed (or verified: ms at cost 5, ~0.25 s at cost 12)
/// once, not once per host.
fn htpasswd_hashes(app: &Appliance) -> BTreeMap<String, String> {
    app.registry_files
        .htpasswd
        .as_deref()
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(u, h)| (u.to_string(), h.to_string()))
        .collect()
}

/// One host's files by name, staged in `out/kickstart` (`None`: there
/// already as they are), and its kickstart when it is to be served.
struct Staged {
    files: Vec<(String, Option<fsx::Closed>)>,
    kept: Option<Vec<u8>>,
}

fn join<T>(job: std::thread::ScopedJoinHandle<'_, Result<T>>) -> Result<T> {
    job.join()
        .map_err(|_| anyhow::anyhow!("a render thread panicked"))?
}

/// What `hosts` rendered, into the plan of `out/kickstart` (and the
/// kickstarts to serve).
fn record(
    hosts: &[Host],
    done: Vec<Staged>,
    w: &mut Writer,
    kickstarts: &mut Vec<Kickstart>,
) -> Result<()> {
    let plan = w.kickstarts()?;
    for (h, staged) in hosts.iter().zip(done) {
        for (name, file) in staged.files {
            plan.add_staged(&name, file, 0o600);
        }
        if let Some(ks) = staged.kept {
            kickstarts.push(Kickstart {
                host: Some(h.name.clone()),
                mac: h.overrides.text("mac").map(str::to_string),
                data: ks.into(),
            });
        }
    }
    Ok(())
}

/// Render the hosts' kickstarts (and images) and stage them in `dir`, on
/// every core, each exactly as `regbake kickstart` renders one appliance.
fn render_all(
    hosts: &[Host],
    apps: &[Appliance],
    dir: &Path,
    oemdrv: bool,
    keep: bool,
) -> Result<Vec<Staged>> {
    let apps: Vec<(&Host, &Appliance)> = hosts.iter().zip(apps).collect();
    let one = |(h, app): &(&Host, &Appliance)| -> Result<Staged> {
        crate::util::interrupt::check()?;
        let mut tree = render::render(app, Scope::Kickstart)?;
        let ks = tree
            .files
            .remove("kickstart/ks.cfg")
            .context("the render has a kickstart")?
            .data;
        let mut files = vec![];
        if oemdrv {
            let name = format!("{}-oemdrv.img", h.name);
            let img = render::oemdrv::image(&ks)?;
            let staged = ksdir::stage(dir, &name, &img, 0o600)?;
            files.push((name, staged));
        }
        let name = format!("{}.ks", h.name);
        let staged = ksdir::stage(dir, &name, &ks, 0o600)?;
        files.push((name, staged));
        Ok(Staged {
            files,
            kept: keep.then_some(ks),
        })
    };
    let threads = std::thread::available_parallelism()
        .map_or(1, std::num::NonZero::get)
        .min(apps.len().max(1));
    if threads <= 1 {
        return apps.iter().map(one).collect();
    }
    let chunk = apps.len().div_ceil(threads);
    std::thread::scope(|s| {
        let handles: Vec<_> = apps
            .chunks(chunk)
            .map(|part| s.spawn(move || part.iter().map(one).collect::<Result<Vec<_>>>()))
            .collect();
        let mut all = Vec::with_capacity(apps.len());
        for h in handles {
            all.extend(join(h)?);
        }
        Ok(all)
    })
}
