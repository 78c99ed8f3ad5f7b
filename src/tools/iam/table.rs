//! Human output, in the Confluent CLI's two shapes: a list is a table with a header row, one
//! resource is a two-column table of field and value.

use serde_json::Value;

/// One column: its heading and the resource field it shows.
pub type Column = (&'static str, &'static str);

/// A field's value as text: strings as they are, lists joined with `, `, absent as empty.
pub fn cell(resource: &Value, field: &str) -> String {
    match &resource[field] {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Array(items) => items
            .iter()
            .map(|v| match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect::<Vec<_>>()
            .join(", "),
        other => other.to_string(),
    }
}

fn width(s: &str) -> usize {
    s.chars().count()
}

fn pad(s: &str, w: usize) -> String {
    format!("{s}{}", " ".repeat(w.saturating_sub(width(s))))
}

/// ```text
///        ID      | Display Name
/// ---------------+---------------
///   pool-payments | Payments
/// ```
pub fn list(columns: &[Column], rows: &[Value]) -> String {
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| columns.iter().map(|(_, f)| cell(r, f)).collect())
        .collect();
    let widths: Vec<usize> = columns
        .iter()
        .enumerate()
        .map(|(i, (h, _))| {
            cells
                .iter()
                .map(|row| width(&row[i]))
                .chain(std::iter::once(width(h)))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |values: Vec<String>| {
        let joined = values
            .iter()
            .zip(&widths)
            .map(|(v, w)| format!(" {} ", pad(v, *w)))
            .collect::<Vec<_>>()
            .join("|");
        format!("{}\n", joined.trim_end())
    };
    let mut out = line(columns.iter().map(|(h, _)| h.to_string()).collect());
    out.push_str(
        &widths
            .iter()
            .map(|w| "-".repeat(w + 2))
            .collect::<Vec<_>>()
            .join("+"),
    );
    out.push('\n');
    for row in cells {
        out.push_str(&line(row));
    }
    out
}

/// ```text
/// +--------------+---------------+
/// | ID           | pool-payments |
/// | Display Name | Payments      |
/// +--------------+---------------+
/// ```
pub fn describe(fields: &[Column], resource: &Value) -> String {
    let rows: Vec<(&str, String)> = fields
        .iter()
        .map(|(h, f)| (*h, cell(resource, f)))
        .collect();
    let w1 = rows.iter().map(|(h, _)| width(h)).max().unwrap_or(0);
    let w2 = rows.iter().map(|(_, v)| width(v)).max().unwrap_or(0);
    let rule = format!("+{}+{}+\n", "-".repeat(w1 + 2), "-".repeat(w2 + 2));
    let mut out = rule.clone();
    for (h, v) in &rows {
        out.push_str(&format!("| {} | {} |\n", pad(h, w1), pad(v, w2)));
    }
    out.push_str(&rule);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_list_aligns_its_columns() {
        let rows = [
            json!({"id": "pool-payments", "display_name": "Payments"}),
            json!({"id": "p", "display_name": "Ü"}),
        ];
        let text = list(&[("ID", "id"), ("Display Name", "display_name")], &rows);
        assert_eq!(
            text,
            " ID            | Display Name\n\
             ---------------+--------------\n \
             pool-payments | Payments\n \
             p             | Ü\n"
        );
    }

    #[test]
    fn describe_is_field_and_value() {
        let text = describe(
            &[("ID", "id"), ("Fingerprints", "fingerprints")],
            &json!({"id": "op-1", "fingerprints": ["AA", "BB"]}),
        );
        assert_eq!(
            text,
            "+--------------+--------+\n\
             | ID           | op-1   |\n\
             | Fingerprints | AA, BB |\n\
             +--------------+--------+\n"
        );
    }
}
