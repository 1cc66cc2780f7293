//! The kickstart server's request path: any bytes a client sends, answered
//! request by request as a connection would be: kickstart fetches with and
//! without tokens, by MAC, reports with bodies, the status page.
#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use regbake::fleet::serve::{step, Action, Kickstart, Options, Site, Step, MAX_BODY, MAX_HEAD};
use regbake::fleet::status::{Event, HostStatus, Live};

fn site() -> &'static Site {
    static SITE: OnceLock<Site> = OnceLock::new();
    SITE.get_or_init(|| {
        let live = Arc::new(Live::new(vec![
            HostStatus::new("reg1"),
            HostStatus::new("reg2.example"),
        ]));
        // A failure with a log, so the page and JSON render one.
        live.apply([(1, Event::PostFailed, 1, "192.0.2.9", Some("<x>\u{1b}[31m FAILED\n"))]);
        Site::new(
            vec![
                Kickstart {
                    host: Some("reg1".into()),
                    mac: Some("52:54:00:12:34:01".into()),
                    data: b"REGBAKE_REPORT_URL=''\nREGBAKE_REPORT_TOKEN=''\n".to_vec().into(),
                },
                Kickstart {
                    host: Some("reg2.example".into()),
                    mac: None,
                    data: b"text\n".to_vec().into(),
                },
            ],
            &[
                "00000000000000000000000000000001".into(),
                "00000000000000000000000000000002".into(),
            ],
            live,
            Options {
                base_url: "http://192.0.2.5:8080".into(),
                trust_mac: true,
                serve_once: true,
            },
        )
    })
}

fuzz_target!(|data: &[u8]| {
    let mut buf = data;
    loop {
        match step(site(), buf) {
            Step::More | Step::Continue => return,
            Step::Reply(r) => {
                assert!(r.consumed <= buf.len());
                assert!(r.out.starts_with(b"HTTP/1.1 "));
                // A head over the limit is refused, never answered; a
                // report's body is bounded too.
                assert!(r.refused || r.consumed <= MAX_HEAD + MAX_BODY);
                if let Some(Action::Report { body, .. }) = &r.action {
                    assert!(body.len() <= MAX_BODY * 3);
                }
                // No token in what is logged.
                assert!(!r.path.contains("00000000000000000000000000000001"));
                if r.close || r.consumed == 0 {
                    return;
                }
                buf = &buf[r.consumed..];
            }
        }
    }
});
