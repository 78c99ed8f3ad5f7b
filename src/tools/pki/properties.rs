//! Kafka client `.properties` files, one per identity and keystore format.

use std::path::Path;

use super::clients::ClientSpec;

/// A Kafka client configuration that `--command-config` accepts unchanged; `store_type` is
/// `PKCS12` or `JKS`, for both stores.
pub(super) fn client_properties(
    spec: &ClientSpec,
    keystore: &Path,
    truststore: &Path,
    password: &str,
    store_type: &str,
) -> String {
    let keystore = properties_value(&keystore.to_string_lossy());
    let truststore = properties_value(&truststore.to_string_lossy());
    let password = properties_value(password);
    format!(
        "# Kafka client config for the development identity \"{name}\" (kafka-mtls-proxy pki).\n\
         # {intent}.\n\
         # Development certificates only. Regenerate with: kafka-mtls-proxy pki --force\n\
         security.protocol=SSL\n\
         ssl.keystore.type={store_type}\n\
         ssl.keystore.location={keystore}\n\
         ssl.keystore.password={password}\n\
         ssl.key.password={password}\n\
         ssl.truststore.type={store_type}\n\
         ssl.truststore.location={truststore}\n\
         ssl.truststore.password={password}\n",
        name = spec.name,
        intent = spec.intent,
    )
}

/// Escapes a value for a Java `.properties` file.
///
/// Kafka's command-line tools load these with `Properties.load(InputStream)`, which reads
/// ISO-8859-1 and treats `\` as an escape and leading blanks as separators; so backslashes are
/// doubled, a leading space is escaped, and anything outside printable ASCII becomes `\uXXXX`
/// (UTF-16 code units). Paths and generated passwords are plain ASCII and pass unchanged.
pub(super) fn properties_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for (i, c) in value.chars().enumerate() {
        match c {
            '\\' => out.push_str("\\\\"),
            ' ' if i == 0 => out.push_str("\\ "),
            ' '..='~' => out.push(c),
            _ => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{unit:04X}"));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn properties_values_are_escaped_for_java() {
        assert_eq!(properties_value("/tmp/certs/a.p12"), "/tmp/certs/a.p12");
        assert_eq!(properties_value(r"C:\certs"), r"C:\\certs");
        assert_eq!(properties_value(" x y"), r"\ x y");
        assert_eq!(properties_value("é😀"), r"\u00E9\uD83D\uDE00");
    }
}
