//! PKCS#12 keystores: one per client identity, and the truststore Kafka clients use.

use p12_keystore::{KeyStore, KeyStoreEntry, PrivateKeyChain};
use sha1::{Digest, Sha1};

use super::PkiError;
use super::issue::{Ca, Leaf};

fn p12_cert(what: &str, der: &[u8]) -> Result<p12_keystore::Certificate, PkiError> {
    p12_keystore::Certificate::from_der(der).map_err(|source| PkiError::Keystore {
        what: what.to_owned(),
        source,
    })
}

/// A PKCS#12 keystore with one private-key entry, alias `name`, holding the key and the chain
/// leaf → issuer (the root stays out: the proxy has it, and sending it gains nothing).
pub(super) fn client_keystore(
    name: &str,
    leaf: &Leaf,
    issuer: &Ca,
    password: &str,
) -> Result<Vec<u8>, PkiError> {
    let what = format!("{name}.p12");
    let keystore_err = |source| PkiError::Keystore {
        what: what.clone(),
        source,
    };
    let key =
        p12_keystore::PrivateKey::from_der(leaf.key.serialized_der()).map_err(keystore_err)?;
    let chain = vec![
        p12_cert(&what, leaf.cert.der())?,
        p12_cert(&what, issuer.der())?,
    ];
    // The local key id ties the key bag to its certificate bag; the SHA-1 of the certificate is
    // what OpenSSL and Java use, and it is unique per certificate.
    let local_key_id = Sha1::digest(leaf.cert.der().as_ref()).to_vec();
    let mut keystore = KeyStore::new();
    keystore.add_entry(
        name,
        KeyStoreEntry::PrivateKeyChain(PrivateKeyChain::new(local_key_id, key, chain)),
    );
    keystore.writer(password).write().map_err(keystore_err)
}

/// A PKCS#12 truststore with `server-ca` as a trusted-certificate entry.
///
/// Java only treats a certificate bag in a PKCS#12 file as a trust anchor when the bag carries
/// Oracle's trusted-key-usage attribute (OID 2.16.840.1.113894.746875.1.1); without it the
/// store loads but holds no trustedCertEntry. p12-keystore 0.4 adds that attribute to every
/// certificate-only entry (`KeyStoreEntry::Certificate`), which is what this relies on; the
/// unit tests and `keytool -list` confirm it.
pub(super) fn truststore(server_ca: &Ca, password: &str) -> Result<Vec<u8>, PkiError> {
    let what = "truststore.p12";
    let mut keystore = KeyStore::new();
    keystore.add_entry(
        "server-ca",
        KeyStoreEntry::Certificate(p12_cert(what, server_ca.der())?),
    );
    keystore
        .writer(password)
        .write()
        .map_err(|source| PkiError::Keystore {
            what: what.to_owned(),
            source,
        })
}
