//! The store's one writer while serving: connection threads hand it
//! events; it commits whatever has queued up in one transaction (one
//! fsync for many concurrent reports), then updates the live rows and
//! answers each report. A report is answered only once it is on disk.

use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;

use anyhow::{Context, Result};

use super::status::{Event, Live};
use super::store::{Record, Store};

/// How many events one transaction takes at most.
const BATCH: usize = 1024;
/// Events queued at most; senders wait beyond it.
const QUEUE: usize = 4096;

struct Msg {
    host: usize,
    record: Record,
    ack: Option<SyncSender<Result<(), String>>>,
}

/// A handle to the writer; cloned into every connection.
#[derive(Clone)]
pub(super) struct Recorder {
    tx: SyncSender<Msg>,
    names: Arc<[String]>,
}

impl Recorder {
    /// Start the writer of `store` for the hosts `names` (by index, as in
    /// `live`).
    pub(super) fn start(store: Store, live: Arc<Live>, names: Vec<String>) -> Result<Self> {
        let (tx, rx) = sync_channel(QUEUE);
        std::thread::Builder::new()
            .name("recorder".into())
            .spawn(move || write_loop(store, &live, &rx))
            .context("starting the status writer")?;
        Ok(Self {
            tx,
            names: names.into(),
        })
    }

    fn msg(&self, host: usize, event: Event, peer: &str, log: Option<String>) -> Option<Msg> {
        Some(Msg {
            host,
            record: Record {
                host: self.names.get(host)?.clone(),
                event,
                at: super::status::now_ms(),
                peer: peer.to_string(),
                log,
            },
            ack: None,
        })
    }

    /// Record `event` and wait until it is committed.
    pub(super) fn record(
        &self,
        host: usize,
        event: Event,
        peer: &str,
        log: Option<String>,
    ) -> Result<()> {
        let mut m = self.msg(host, event, peer, log).context("no such host")?;
        let (ack, done) = sync_channel(1);
        m.ack = Some(ack);
        self.tx
            .send(m)
            .map_err(|_| anyhow::anyhow!("the status writer has stopped"))?;
        done.recv()
            .map_err(|_| anyhow::anyhow!("the status writer has stopped"))?
            .map_err(|e| anyhow::anyhow!(e))
    }

    /// Record `event` without waiting (a kickstart fetch: its answer does
    /// not depend on it).
    pub(super) fn note(&self, host: usize, event: Event, peer: &str) {
        if let Some(m) = self.msg(host, event, peer, None) {
            let _ = self.tx.send(m);
        }
    }
}

fn write_loop(mut store: Store, live: &Live, rx: &Receiver<Msg>) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < BATCH {
            match rx.try_recv() {
                Ok(m) => batch.push(m),
                Err(_) => break,
            }
        }
        let records: Vec<Record> = batch.iter().map(|m| m.record.clone()).collect();
        let result = store.record(&records).map_err(|e| format!("{e:#}"));
        match &result {
            Ok(()) => live.apply(batch.iter().map(|m| {
                (
                    m.host,
                    m.record.event,
                    m.record.at,
                    m.record.peer.as_str(),
                    m.record.log.as_deref(),
                )
            })),
            Err(e) => super::console::line(&format!(
                "error: recording {} install reports failed: {e}",
                batch.len()
            )),
        }
        for m in batch {
            if let Some(ack) = m.ack {
                let _ = ack.send(result.clone());
            }
        }
    }
}
