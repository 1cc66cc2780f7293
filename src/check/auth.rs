//! The CPU a supplied htpasswd hash costs the registry: it verifies the
//! bcrypt hash on every request that carries credentials, and a docker
//! client sends them with every request.

use crate::model::registry::SuppliedHash;

use super::outcome::{Check, Outcome};

/// From this cost on a request costs more than about 50 ms of CPU: bcrypt
/// took the Debian docker-registry 2.8 1.9 ms per request at cost 5, 31 ms
/// at cost 9 and 60 ms at cost 10 on a busy 2-CPU machine
/// (`scripts/bench-auth`); each step doubles it.
const WARN_COST: u32 = 10;

/// Milliseconds of CPU per request at `cost`, from cost 5's 1.6 ms (an idle
/// machine, issue 14).
fn estimated_ms(cost: u32) -> f64 {
    1.6 * 2f64.powi(i32::try_from(cost).unwrap_or(i32::MAX) - 5)
}

/// One `bcrypt cost` line per supplied hash, on the rendered htpasswd
/// `file`; a costly one is a warning, a failure when `strict`.
pub(super) fn bcrypt_costs(hashes: &[SuppliedHash], file: &str, strict: bool) -> Vec<Check> {
    hashes
        .iter()
        .map(|h| {
            let outcome = if h.cost < WARN_COST {
                Outcome::Passed
            } else {
                let msg = format!(
                    "{} ({}) has bcrypt cost {}: the registry verifies it on every request, \
                     roughly {:.0} ms of CPU each (cost 5: about 2 ms). Re-hash it with \
                     `htpasswd -nbB -C 5 {}`, or give the password with password_env \
                     (hashed at registry.auth.bcrypt_cost).",
                    h.path,
                    h.user,
                    h.cost,
                    estimated_ms(h.cost),
                    h.user
                );
                if strict {
                    Outcome::Failed(format!("warnings (strict): {msg}"))
                } else {
                    Outcome::Warning(msg)
                }
            };
            Check {
                check: "bcrypt cost".into(),
                file: file.to_string(),
                outcome,
                like: None,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(cost: u32) -> SuppliedHash {
        SuppliedHash {
            path: "registry.auth.users[0].password_hash".into(),
            user: "alice".into(),
            cost,
        }
    }

    #[test]
    fn a_costly_hash_warns_and_fails_when_strict() {
        let f = "overlay/opt/docker/auth/htpasswd";
        let cheap = bcrypt_costs(&[hash(5), hash(9)], f, true);
        assert!(cheap.iter().all(|c| c.outcome == Outcome::Passed));
        let costly = bcrypt_costs(&[hash(12)], f, false);
        let Outcome::Warning(m) = &costly[0].outcome else {
            panic!("{costly:?}");
        };
        assert!(m.contains("users[0].password_hash (alice) has bcrypt cost 12"));
        assert!(m.contains("roughly 205 ms"), "{m}");
        let strict = bcrypt_costs(&[hash(10)], f, true);
        assert!(
            matches!(&strict[0].outcome, Outcome::Failed(m) if m.starts_with("warnings (strict)"))
        );
    }
}
