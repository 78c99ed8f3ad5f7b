//! What `pools` and `cas` print: a table (`--output human`), or the API's resources as `json`
//! or `yaml`.

use serde_json::{Value, json};

use super::args::Output;
use super::table;

pub(super) const POOL_COLUMNS: [table::Column; 6] = [
    ("ID", "id"),
    ("Display Name", "display_name"),
    ("Description", "description"),
    ("External Identifier", "external_identifier"),
    ("Filter", "filter"),
    ("Principal", "principal"),
];

pub(super) const CA_LIST_COLUMNS: [table::Column; 6] = [
    ("ID", "id"),
    ("Display Name", "display_name"),
    ("Description", "description"),
    ("Certificate Chain Filename", "certificate_chain_filename"),
    ("Fingerprints", "fingerprints"),
    ("Expiration Dates", "expiration_dates"),
];

pub(super) const CA_FIELDS: [table::Column; 11] = [
    ("ID", "id"),
    ("Display Name", "display_name"),
    ("Description", "description"),
    ("Certificate Chain Filename", "certificate_chain_filename"),
    ("Fingerprints", "fingerprints"),
    ("Expiration Dates", "expiration_dates"),
    ("Serial Numbers", "serial_numbers"),
    ("CRL Source", "crl_source"),
    ("CRL URL", "crl_url"),
    ("Require CRL", "require_crl_on_client_certificate"),
    ("State", "state"),
];

pub(super) const POOL_FIELDS: [table::Column; 8] = [
    ("ID", "id"),
    ("Display Name", "display_name"),
    ("Description", "description"),
    ("External Identifier", "external_identifier"),
    ("Filter", "filter"),
    ("Principal", "principal"),
    ("Certificate Authority", "_provider"),
    ("State", "state"),
];

pub(super) fn render_list(out: Output, list: &Value, columns: &[table::Column]) -> String {
    let data = list["data"].as_array().cloned().unwrap_or_default();
    match out {
        Output::Human => table::list(columns, &data),
        Output::Json => pretty_json(&Value::Array(data)),
        Output::Yaml => yaml(&Value::Array(data)),
    }
}

pub(super) fn render_one(out: Output, mut resource: Value, fields: &[table::Column]) -> String {
    match out {
        Output::Human => {
            let shown: Vec<table::Column> = fields
                .iter()
                .copied()
                .filter(|(_, f)| !resource[*f].is_null())
                .collect();
            table::describe(&shown, &resource)
        }
        Output::Json | Output::Yaml => {
            if let Some(obj) = resource.as_object_mut() {
                obj.remove("_provider");
            }
            if out == Output::Json {
                pretty_json(&resource)
            } else {
                yaml(&resource)
            }
        }
    }
}

pub(super) fn deleted(out: Output, what: &str, id: &str) -> String {
    match out {
        Output::Human => format!("Deleted {what} \"{id}\".\n"),
        Output::Json => format!("{}\n", json!({ "id": id, "deleted": true })),
        Output::Yaml => format!("id: {id}\ndeleted: true\n"),
    }
}

fn pretty_json(v: &Value) -> String {
    format!(
        "{}\n",
        serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
    )
}

fn yaml(v: &Value) -> String {
    serde_saphyr::to_string(v).unwrap_or_else(|_| pretty_json(v))
}
