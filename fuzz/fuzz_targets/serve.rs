//! The kickstart server's request path: any bytes a client sends, answered
//! request by request as a connection would be.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use regbake::fleet::serve::{step, Kickstart, Site, Step, MAX_HEAD};

fn site() -> &'static Site {
    static SITE: OnceLock<Site> = OnceLock::new();
    SITE.get_or_init(|| {
        Site::new(vec![
            Kickstart {
                host: Some("reg1".into()),
                mac: Some("52:54:00:12:34:01".into()),
                data: b"text\n".to_vec().into(),
            },
            Kickstart {
                host: Some("reg2.example".into()),
                mac: None,
                data: b"text\n".to_vec().into(),
            },
        ])
    })
}

fuzz_target!(|data: &[u8]| {
    let mut buf = data;
    loop {
        match step(site(), buf) {
            Step::More => return,
            Step::Reply(r) => {
                assert!(r.consumed <= buf.len());
                assert!(r.out.starts_with(b"HTTP/1.1 "));
                // A head over the limit is refused, never answered.
                assert!(r.refused || r.consumed <= MAX_HEAD);
                if r.close || r.consumed == 0 {
                    return;
                }
                buf = &buf[r.consumed..];
            }
        }
    }
});
