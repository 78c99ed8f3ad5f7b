//! What the proxy reads from the certificates a configuration names, beyond trusting them: when
//! each one expires (the expiry gauges, and the warning `tls.expiry_warning_days` before it), and
//! where its issuer publishes CRLs (the CRL distribution point extension, used when a CA has
//! neither `crl_chain` nor `crl_url`, as Confluent Cloud does).

use rustls_pki_types::CertificateDer;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use x509_parser::prelude::parse_x509_certificate;

pub use crate::identity::{MAX_DISTRIBUTION_POINTS, crl_distribution_points};

/// Days before expiry a CA or server certificate is warned about, unless configured.
pub const DEFAULT_EXPIRY_WARNING_DAYS: u32 = 30;

const SECONDS_PER_DAY: i64 = 86_400;

/// One certificate's subject and the end of its validity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateExpiry {
    /// The subject DN as `openssl x509 -subject` would print it (RFC 4514 order).
    pub subject: String,
    /// `notAfter`, Unix seconds.
    pub not_after: i64,
}

impl CertificateExpiry {
    /// `None` when the DER does not parse (a loaded certificate always does).
    pub fn of(cert: &CertificateDer<'_>) -> Option<Self> {
        let (_, parsed) = parse_x509_certificate(cert.as_ref()).ok()?;
        Some(Self {
            subject: parsed.subject().to_string(),
            not_after: parsed.validity().not_after.timestamp(),
        })
    }

    /// What to warn about when this certificate expires within `days` of `now` (Unix seconds)
    /// or has expired; `None` otherwise, and always when `days` is 0 (warnings off).
    pub fn warning(&self, now: i64, days: u32) -> Option<String> {
        if days == 0 {
            return None;
        }
        let left = self.not_after.saturating_sub(now);
        let when = rfc3339(self.not_after);
        if left <= 0 {
            let ago = left.saturating_neg() / SECONDS_PER_DAY;
            return Some(format!(
                "certificate `{}` expired {} ({when})",
                self.subject,
                match ago {
                    0 => "less than a day ago".to_string(),
                    1 => "1 day ago".to_string(),
                    n => format!("{n} days ago"),
                }
            ));
        }
        if left > i64::from(days) * SECONDS_PER_DAY {
            return None;
        }
        Some(format!(
            "certificate `{}` expires in {} ({when})",
            self.subject,
            match left / SECONDS_PER_DAY {
                0 => "less than a day".to_string(),
                1 => "1 day".to_string(),
                n => format!("{n} days"),
            }
        ))
    }
}

/// Unix seconds as RFC 3339 in UTC; the number itself if out of range.
fn rfc3339(unix: i64) -> String {
    OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| format!("@{unix}"))
}

/// The current time, Unix seconds.
pub fn unix_now() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(days_left: i64, distribution_points: &[&str]) -> CertificateDer<'static> {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "Acme Issuing CA");
        params.not_before = OffsetDateTime::now_utc() - time::Duration::days(10);
        params.not_after = OffsetDateTime::now_utc() + time::Duration::days(days_left);
        params.crl_distribution_points = distribution_points
            .iter()
            .map(|u| rcgen::CrlDistributionPoint {
                uris: vec![u.to_string()],
            })
            .collect();
        let key = rcgen::KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().clone()
    }

    #[test]
    fn expiry_is_read_from_the_certificate() {
        let e = CertificateExpiry::of(&cert(40, &[])).unwrap();
        assert_eq!(e.subject, "CN=Acme Issuing CA");
        let left = e.not_after - unix_now();
        assert!((39 * SECONDS_PER_DAY..=40 * SECONDS_PER_DAY).contains(&left));
    }

    #[test]
    fn a_warning_comes_within_the_window_and_after_expiry_only() {
        let now = 1_800_000_000;
        let e = |days: i64| CertificateExpiry {
            subject: "CN=x".into(),
            not_after: now + days * SECONDS_PER_DAY + 60,
        };
        assert_eq!(e(31).warning(now, 30), None);
        let w = e(12).warning(now, 30).unwrap();
        assert!(
            w.starts_with("certificate `CN=x` expires in 12 days ("),
            "{w}"
        );
        assert!(w.contains("2027-"), "{w}");
        assert_eq!(
            e(1).warning(now, 30).unwrap().split(" (").next(),
            Some("certificate `CN=x` expires in 1 day")
        );
        assert!(
            e(-4)
                .warning(now, 30)
                .unwrap()
                .contains("expired 3 days ago")
        );
        assert_eq!(e(5).warning(now, 0), None, "0 turns the warning off");
        assert_eq!(e(-5).warning(now, 0), None);
    }

    #[test]
    fn http_distribution_points_are_taken_once_others_are_reported() {
        let a = cert(
            100,
            &[
                "http://crl.acme.test/root.crl",
                "ldap://dir.acme.test/cn=root",
            ],
        );
        let b = cert(
            100,
            &[
                "http://crl.acme.test/root.crl",
                "http://crl2.acme.test/x.crl",
            ],
        );
        let (usable, unusable) = crl_distribution_points(&[a, b]);
        assert_eq!(
            usable,
            [
                "http://crl.acme.test/root.crl",
                "http://crl2.acme.test/x.crl"
            ]
        );
        assert_eq!(unusable, ["ldap://dir.acme.test/cn=root"]);
        assert_eq!(crl_distribution_points(&[cert(100, &[])]).0.len(), 0);
    }

    #[test]
    fn distribution_points_are_bounded() {
        let urls: Vec<String> = (0..12).map(|i| format!("http://c{i}.test/x.crl")).collect();
        let refs: Vec<&str> = urls.iter().map(String::as_str).collect();
        let (usable, unusable) = crl_distribution_points(&[cert(100, &refs)]);
        assert_eq!(usable.len(), MAX_DISTRIBUTION_POINTS);
        assert_eq!(unusable.len(), 12 - MAX_DISTRIBUTION_POINTS);
    }
}
