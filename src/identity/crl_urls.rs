//! The CRL distribution point URLs of a certificate: where its issuer publishes CRLs. Read for
//! a CA's own certificates (`config`), and for an admitted client's leaf in the same parse as
//! its identity ([`super::CertIdentity::from_der_with_crl_urls`]).

use x509_parser::extensions::{DistributionPointName, GeneralName, ParsedExtension};
use x509_parser::prelude::{X509Certificate, parse_x509_certificate};

/// At most this many CRL URLs are taken from one CA's distribution points: each is fetched at
/// every refresh, and a bundle is 1 to 4 certificates.
pub const MAX_DISTRIBUTION_POINTS: usize = 8;

/// The http:// URLs of the CRL distribution point extensions of `certificates` (DER), first
/// seen first, without repeats, at most [`MAX_DISTRIBUTION_POINTS`]; and the URLs left out
/// because the proxy cannot fetch them (ldap://, https:// …), for a warning. Certificates that
/// do not parse are skipped.
pub fn crl_distribution_points<C: AsRef<[u8]>>(certificates: &[C]) -> (Vec<String>, Vec<String>) {
    let mut urls = Urls::default();
    for cert in certificates {
        if let Ok((_, parsed)) = parse_x509_certificate(cert.as_ref()) {
            urls.add(&parsed);
        }
    }
    urls.finish()
}

/// URLs collected over one or more parsed certificates.
#[derive(Default)]
pub(super) struct Urls {
    usable: Vec<String>,
    unusable: Vec<String>,
}

impl Urls {
    pub(super) fn add(&mut self, cert: &X509Certificate<'_>) {
        for ext in cert.extensions() {
            let ParsedExtension::CRLDistributionPoints(points) = ext.parsed_extension() else {
                continue;
            };
            for point in points.iter() {
                let Some(DistributionPointName::FullName(names)) = &point.distribution_point else {
                    continue;
                };
                for name in names {
                    let GeneralName::URI(uri) = name else {
                        continue;
                    };
                    let uri = uri.to_string();
                    let list = if uri.starts_with("http://") {
                        &mut self.usable
                    } else {
                        &mut self.unusable
                    };
                    if !list.contains(&uri) {
                        list.push(uri);
                    }
                }
            }
        }
    }

    /// (usable, left out), the usable ones capped at [`MAX_DISTRIBUTION_POINTS`].
    pub(super) fn finish(mut self) -> (Vec<String>, Vec<String>) {
        if self.usable.len() > MAX_DISTRIBUTION_POINTS {
            self.unusable
                .extend(self.usable.split_off(MAX_DISTRIBUTION_POINTS));
        }
        (self.usable, self.unusable)
    }
}
