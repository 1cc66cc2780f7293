//! `regbake probe URL`: smoke-test a running registry through the
//! Distribution HTTP API. `GET /v2/` always; with `push`, a tiny deterministic
//! OCI image is pushed, pulled back with every digest verified, and deleted
//! again when the registry allows it. One line per step with its timing.
//! Every request is bounded by `--timeout`; credentials go only to the
//! origin of the URL given.

mod args;
mod client;
mod fail;
mod oci;
mod report;
mod wire;

use std::time::Instant;

use anyhow::{anyhow, Context, Result};

use crate::util::Format;
pub use args::{parse_repo, parse_tag, parse_url, Args};
use client::Client;
use oci::Image;
use report::{timed, Done, Report};

/// Run the probe; prints the steps and fails (exit 1) on the first failed step.
pub fn run(opts: &Args) -> Result<()> {
    let mut report = Report {
        json: opts.format == Format::Json,
        steps: vec![],
    };
    let started = Instant::now();
    let result = probe(opts, &mut report);
    if opts.format == Format::Json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report.steps).context("printing steps")?
        );
    } else if result.is_ok() {
        println!(
            "probe of {} passed: {} steps in {} ms",
            opts.url,
            report.steps.len(),
            started.elapsed().as_millis()
        );
    }
    result
}

fn probe(opts: &Args, report: &mut Report) -> Result<()> {
    let client = Client::new(opts)?;
    if client.auth.is_some() && client.base.scheme() == "http" {
        eprintln!("warning: sending credentials over plain http");
    }

    let needs_auth = report.step("GET /v2/", || client.check_v2(false))?;
    if client.auth.is_some() {
        report.step("GET /v2/ (credentials)", || client.check_v2(true))?;
    }
    if !opts.push {
        return Ok(());
    }
    // Without credentials a push to a registry that asked for them fails
    // below with the registry's own 401 answer; say why up front.
    let hint = if needs_auth && client.auth.is_none() {
        " (the registry wants credentials: --username and --password-env)"
    } else {
        ""
    };
    let with_hint = |e: anyhow::Error| anyhow!("{e:#}{hint}");

    let repo = &opts.repo;
    // The layer first: the config names its digests. It is generated while
    // it uploads, so the registry works in parallel with the generator.
    let layer = report.step("push layer", || {
        client
            .push_layer(repo, opts.layer_size)
            .map(|(layer, m)| (layer, Done::Passed(m)))
            .map_err(with_hint)
    })?;
    let image = Image::new(layer)?;
    if let Some(dir) = &opts.save_oci {
        report.step("save OCI layout", || {
            image.save_oci(dir, &opts.tag, opts.layer_size)?;
            Ok(((), Done::Passed(dir.display().to_string())))
        })?;
    }
    // The big download runs beside the small steps instead of after them.
    // The manifest delete is among them: a blob stays fetchable by digest
    // when the manifest naming it goes, and its line still prints last.
    std::thread::scope(|scope| -> Result<()> {
        let pull_layer = scope.spawn(|| {
            timed(|| {
                let m = client.pull_layer(repo, &image.layer, opts.layer_size)?;
                Ok(((), Done::Passed(m)))
            })
        });
        let small = small_steps(&client, report, opts, &image, &with_hint);
        let deleted = small.as_ref().ok().map(|()| {
            timed(|| {
                if opts.keep {
                    return Ok(((), Done::Skipped(format!("kept {repo}:{}", opts.tag))));
                }
                Ok(((), client.delete_manifest(repo, &image.manifest)?))
            })
        });
        let (ms, pulled) = pull_layer
            .join()
            .map_err(|_| anyhow!("the layer download panicked"))?;
        small?;
        report.record("pull layer", ms, pulled)?;
        if let Some((ms, deleted)) = deleted {
            report.record("delete manifest", ms, deleted)?;
        }
        Ok(())
    })
}

fn small_steps(
    client: &Client,
    report: &mut Report,
    opts: &Args,
    image: &Image,
    with_hint: &dyn Fn(anyhow::Error) -> anyhow::Error,
) -> Result<()> {
    let repo = &opts.repo;
    report.step("push config", || {
        client
            .push_blob(repo, &image.config)
            .map(|m| ((), Done::Passed(m)))
            .map_err(with_hint)
    })?;
    report.step("push manifest", || {
        client
            .push_manifest(repo, &opts.tag, &image.manifest)
            .map(|m| ((), Done::Passed(m)))
            .map_err(with_hint)
    })?;
    report.step("pull manifest", || {
        let m = client.pull_manifest(repo, &opts.tag, &image.manifest)?;
        Ok(((), Done::Passed(m)))
    })?;
    report.step("pull config", || {
        let m = client.pull_blob(repo, "config", &image.config.digest, image.config.size())?;
        Ok(((), Done::Passed(m)))
    })?;
    Ok(())
}
