//! The configuration file as the IAM API's storage: read, render, write atomically.
//!
//! A write never leaves a half-written file behind: the new text goes to a temporary file in
//! the same directory, which is flushed to disk, renamed over the configuration (an atomic
//! replacement on POSIX file systems), and then the directory itself is flushed so the rename
//! survives a power cut. A crash at any point leaves either the old file or the new one.
//! Certificate chains posted as PEM text are written the same way, under names that carry a
//! digest of their content, so a new chain never overwrites the file the running
//! configuration points at: the configuration's rename is the one moment a change happens.

use std::fs;
use std::path::Path;

use crate::config::{self, raw::RawConfig};

// The chains the API writes and the configuration file itself: the same atomic writes as the
// shared store's chains (`crate::store`), so they live with the configuration.
pub use crate::config::files::{parent_dir, write_atomic, write_pem};

/// Where chains posted through the API are written: `cas/` next to the configuration file.
pub const CAS_DIR: &str = "cas";

/// What the API writes at the top of the configuration file.
pub const HEADER: &str = "\
# kafka-mtls-proxy configuration, written by the admin API (/iam/v2, `kafka-mtls-proxy pools`
# and `cas` commands). Every API write rewrites this whole file: comments and formatting of a
# hand-written file are not kept, the values are. Certificate chains uploaded through the API
# are in the `cas/` directory next to this file. Hand edits still work (SIGHUP or the file
# watch reloads them); the next API write keeps their values and drops their comments.
";

/// The file as it is now: its exact text (restored if a reload refuses the new one) and
/// its parsed content.
pub struct Snapshot {
    pub text: String,
    pub raw: RawConfig,
}

/// Read and parse the configuration file (shape only; [`config::from_raw`] checks the rest).
pub fn read(path: &Path) -> Result<Snapshot, String> {
    let text = fs::read_to_string(path).map_err(|e| {
        format!(
            "{}: cannot read the configuration file: {e}",
            path.display()
        )
    })?;
    let raw = config::parse_yaml(path, &text).map_err(|e| e.to_string())?;
    Ok(Snapshot { text, raw })
}

/// The YAML text the API writes for `raw`: [`HEADER`], then the values. The text is parsed
/// back and compared with `raw` before it is returned: what is written is exactly what was
/// validated.
pub fn render(path: &Path, raw: &RawConfig) -> Result<String, String> {
    let body = serde_saphyr::to_string(raw)
        .map_err(|e| format!("cannot serialize the configuration: {e}"))?;
    let text = format!("{HEADER}{}", drop_nulls(&body));
    let back = config::parse_yaml(path, &text).map_err(|e| {
        format!("the serialized configuration does not parse back ({e}); nothing was written")
    })?;
    let same = serde_json::to_value(raw).ok() == serde_json::to_value(&back).ok();
    if !same {
        return Err(
            "the serialized configuration does not read back as the same values; nothing was \
             written"
                .to_string(),
        );
    }
    Ok(text)
}

/// Remove `key: null` lines: every optional setting of the schema treats a missing key and a
/// null the same, and a file full of nulls is harder to read. Only whole lines that are a
/// plain key with the plain scalar `null` go (a string `"null"` is quoted by the serializer),
/// never a line inside a block scalar (`description: |`). A section left with no keys becomes
/// `{}`, so it stays a section. [`render`] checks the result reads back as the same values.
fn drop_nulls(yaml: &str) -> String {
    // Pass 1: drop null settings; remember which lines are block-scalar content.
    let mut kept: Vec<(&str, bool)> = Vec::new();
    let mut scalar_key_column: Option<usize> = None;
    for line in yaml.lines() {
        if let Some(column) = scalar_key_column {
            if line.trim().is_empty() || indent(line) > column {
                kept.push((line, true));
                continue;
            }
            scalar_key_column = None;
        }
        let (column, entry) = key_column(line);
        if let Some((key, value)) = entry.split_once(": ")
            && plain_key(key)
        {
            // Not the first key of a list item: the `- ` carries the item.
            if value == "null" && column == indent(line) {
                continue;
            }
            let style = value.trim_start_matches(['|', '>']);
            if style.len() < value.len()
                && style.chars().all(|c| matches!(c, '-' | '+' | '0'..='9'))
            {
                scalar_key_column = Some(column);
            }
        }
        kept.push((line, false));
    }
    // Pass 2: a `key:` whose block has no line left is an empty map.
    let mut out = String::with_capacity(yaml.len());
    for (i, (line, content)) in kept.iter().enumerate() {
        out.push_str(line);
        let (column, entry) = key_column(line);
        if !content && entry.strip_suffix(':').is_some_and(plain_key) {
            let has_block = kept.get(i + 1).is_some_and(|(next, _)| {
                indent(next) > column
                    || (indent(next) == column && next.trim_start().starts_with("- "))
            });
            if !has_block {
                out.push_str(" {}");
            }
        }
        out.push('\n');
    }
    out
}

fn indent(line: &str) -> usize {
    line.len() - line.trim_start_matches(' ').len()
}

/// The column of a line's key (after any `- ` of a list item) and the text from there.
fn key_column(line: &str) -> (usize, &str) {
    let mut column = indent(line);
    let mut rest = &line[column..];
    while let Some(r) = rest.strip_prefix("- ") {
        rest = r;
        column += 2;
    }
    (column, rest)
}

fn plain_key(key: &str) -> bool {
    !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Whether `file` is directly inside `dir` (compared after resolving both, when they exist).
pub fn is_inside(file: &Path, dir: &Path) -> bool {
    let canon = |p: &Path| fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    match file.parent() {
        Some(parent) => canon(parent) == canon(dir),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_atomic_write_replaces_the_file_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("proxy.yaml");
        fs::write(&path, "old").unwrap();
        write_atomic(&path, b"new").unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "new");
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("proxy.yaml")]);
    }

    #[test]
    fn a_failed_atomic_write_leaves_the_old_file_whole() {
        let dir = tempfile::tempdir().unwrap();
        // The rename cannot replace a non-empty directory: the write fails after the
        // temporary file was written, as a crash between the two would.
        let target = dir.path().join("proxy.yaml");
        fs::create_dir(&target).unwrap();
        fs::write(target.join("keep"), "old").unwrap();
        assert!(write_atomic(&target, b"new").is_err());
        assert_eq!(fs::read_to_string(target.join("keep")).unwrap(), "old");
        let leftovers: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .filter(|n| n != "proxy.yaml")
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    #[test]
    fn only_plain_null_settings_are_dropped() {
        let yaml = "a:\n  listen: null\n  name: 'null'\n  x: nullish\nb:\n- key: null\n  k: 1\n\
                    c: |\n  d: null\n  e:\nf:\n  g: null\nh:\n- 1\n";
        assert_eq!(
            drop_nulls(yaml),
            "a:\n  name: 'null'\n  x: nullish\nb:\n- key: null\n  k: 1\n\
             c: |\n  d: null\n  e:\nf: {}\nh:\n- 1\n"
        );
    }

    #[test]
    fn pem_files_are_named_by_content() {
        let dir = tempfile::tempdir().unwrap();
        let (a, new_a) = write_pem(dir.path(), "op-1", "certificate_chain", "A").unwrap();
        let (b, new_b) = write_pem(dir.path(), "op-1", "certificate_chain", "A").unwrap();
        let (c, _) = write_pem(dir.path(), "op-1", "crl_chain", "A").unwrap();
        assert_eq!(a, b);
        assert!(new_a && !new_b);
        assert_ne!(a, c);
        assert!(
            c.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("op-1.crl-chain.")
        );
        let (d, _) = write_pem(dir.path(), "../../x", "certificate_chain", "A").unwrap();
        assert_eq!(d.parent(), Some(dir.path()));
    }
}

#[cfg(test)]
mod render_tests {
    use super::*;

    const FULL: &str = r#"
listener:
  bootstrap: 127.0.0.1:9092
  advertised_host: localhost
  broker_ports:
    first_port: 9093
    node_ports:
      1001: 9201
tls:
  certificate_chain: certs/server.pem
  private_key: certs/server.key
upstream:
  bootstrap_servers: [127.0.0.1:19092]
limits:
  pools_per_ca: 3
admin: {}
certificate_authorities:
  - id: ca-acme
    display_name: "Acme: internal"
    description: ""
    certificate_chain: certs/acme.pem
    identity_pools:
      - id: pool-a
        display_name: A
        external_identifier: CN
        filter: 'CN == "a" && OU in ["x", "y"]'
      - id: pool-b
        display_name: "null"
        description: |
          two
          lines
        external_identifier: SHA1
        filter: ""
"#;

    #[test]
    fn rendering_round_trips_every_setting() {
        let path = Path::new("proxy.yaml");
        let raw = config::parse_yaml(path, FULL).unwrap();
        let text = render(path, &raw).unwrap();
        assert!(text.starts_with(HEADER), "{text}");
        let back = config::parse_yaml(path, &text).unwrap();
        assert_eq!(
            serde_json::to_value(&raw).unwrap(),
            serde_json::to_value(&back).unwrap(),
            "{text}"
        );
        // An empty `admin: {}` is still an admin section after the nulls are dropped.
        assert!(back.admin.is_some(), "{text}");
        assert!(!text.contains(": null"), "{text}");
    }
}
