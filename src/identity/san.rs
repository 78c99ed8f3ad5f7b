//! Subject alternative names, as strings.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::Serialize;
use x509_parser::extensions::GeneralName;

use super::DistinguishedName;

/// The subjectAltName entries of a certificate, as strings.
///
/// | entry type      | typed list | in `all`                                  |
/// |-----------------|------------|-------------------------------------------|
/// | dNSName         | `dns`      | as written                                |
/// | uniformResourceIdentifier | `uri` | as written                         |
/// | rfc822Name      | `email`    | as written                                |
/// | iPAddress       | `ip`       | `IpAddr` Display: `10.0.0.1`, `2001:db8::1` |
/// | directoryName   | —          | its RFC 4514 string                       |
/// | registeredID    | —          | its dotted OID                            |
/// | otherName, x400Address, ediPartyName | — | left out: they have no standard text form |
///
/// Entries x509-parser could not decode (a dNSName that is not UTF-8, an iPAddress that is
/// neither 4 nor 16 bytes) are left out too, rather than shown in a form nobody would write
/// in a filter.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SubjectAltNames {
    /// dNSName entries, in certificate order.
    pub dns: Vec<String>,
    /// URI entries (SPIFFE IDs live here), in certificate order.
    pub uri: Vec<String>,
    /// rfc822Name (email) entries, in certificate order.
    pub email: Vec<String>,
    /// iPAddress entries in `std::net::IpAddr` Display form (IPv6 canonical, compressed).
    pub ip: Vec<String>,
    /// Every entry we can write as a string (see the table above), in certificate order.
    pub all: Vec<String>,
}

impl SubjectAltNames {
    /// `all` joined with `,`: the string CEL filters see as `SAN`.
    pub fn joined(&self) -> String {
        self.all.join(",")
    }

    /// Collects the entries of a subjectAltName extension.
    pub(crate) fn from_general_names(names: &[GeneralName<'_>]) -> Self {
        let mut san = SubjectAltNames::default();
        for name in names {
            match name {
                GeneralName::DNSName(dns) => {
                    san.dns.push((*dns).to_owned());
                    san.all.push((*dns).to_owned());
                }
                GeneralName::URI(uri) => {
                    san.uri.push((*uri).to_owned());
                    san.all.push((*uri).to_owned());
                }
                GeneralName::RFC822Name(email) => {
                    san.email.push((*email).to_owned());
                    san.all.push((*email).to_owned());
                }
                GeneralName::IPAddress(bytes) => {
                    if let Some(ip) = ip_from_bytes(bytes) {
                        san.ip.push(ip.to_string());
                        san.all.push(ip.to_string());
                    }
                }
                GeneralName::DirectoryName(dn) => {
                    san.all.push(DistinguishedName::from_x509(dn).rfc4514);
                }
                GeneralName::RegisteredID(oid) => san.all.push(oid.to_id_string()),
                GeneralName::OtherName(..)
                | GeneralName::X400Address(_)
                | GeneralName::EDIPartyName(_)
                | GeneralName::Invalid(..) => {}
            }
        }
        san
    }
}

/// An iPAddress entry: 4 bytes are IPv4, 16 are IPv6; anything else (a name-constraint style
/// address/mask pair has no business in a SAN) is not an address.
fn ip_from_bytes(bytes: &[u8]) -> Option<IpAddr> {
    if let Ok(v4) = <[u8; 4]>::try_from(bytes) {
        return Some(IpAddr::V4(Ipv4Addr::from(v4)));
    }
    if let Ok(v6) = <[u8; 16]>::try_from(bytes) {
        return Some(IpAddr::V6(Ipv6Addr::from(v6)));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_addresses_use_std_display_forms() {
        let v6 = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
        let san = SubjectAltNames::from_general_names(&[
            GeneralName::IPAddress(&[10, 0, 0, 1]),
            GeneralName::IPAddress(&v6),
            GeneralName::IPAddress(&[1, 2, 3]),
        ]);
        assert_eq!(san.ip, ["10.0.0.1", "2001:db8::1"]);
        assert_eq!(san.all, ["10.0.0.1", "2001:db8::1"]);
    }

    #[test]
    fn joined_separates_entries_with_a_comma_in_certificate_order() {
        let san = SubjectAltNames::from_general_names(&[
            GeneralName::URI("spiffe://acme/payments"),
            GeneralName::DNSName("a.example"),
            GeneralName::RFC822Name("ops@example.com"),
        ]);
        assert_eq!(
            san.joined(),
            "spiffe://acme/payments,a.example,ops@example.com"
        );
        assert_eq!(SubjectAltNames::default().joined(), "");
    }
}
