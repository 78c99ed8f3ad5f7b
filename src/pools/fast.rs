//! The fast path: Confluent-style filters lowered to a tree that evaluates without allocating.
//!
//! The cel interpreter is general but costs 5–10 µs for a four-clause rule; a connection
//! evaluates every pool of its CA, and a CA can have a hundred pools. Almost every real filter
//! is in the small language Confluent Cloud documents, which this module evaluates directly:
//!
//! - string operands: the top-level string identifiers (`CN`, `DN`, `SAN`, ...), the string
//!   fields of `cert` (`cert.dn`, ...), and string literals;
//! - `a == b`, `a != b`, `a in ["x", "y"]` (a list of string literals),
//!   `a.startsWith("x")`, `a.endsWith("x")`, `a.contains("x")` (a string-literal argument);
//! - `!`, `&&`, `||`, `true`, `false`, and parentheses (which the parser already resolved).
//!
//! Lowering is all or nothing: a filter with any other construct is left whole to the
//! interpreter, so there is one evaluator per filter and no question of how errors in one
//! half would combine with the other.
//!
//! Every operation here is total on strings, so the fast path cannot fail; CEL's `&&`/`||`
//! only differ from Rust's short-circuit operators when an operand is an error, so evaluation
//! order does not change the answer. The differential test in `filter.rs` holds both paths to
//! the same answers.

use cel::common::ast::{Expr, IdedExpr, LiteralValue, operators};

use super::attributes::{Attr, Attributes, CERT, CERT_STRING_FIELDS, STRING_IDENTIFIERS};

/// A string operand.
#[derive(Debug)]
pub(crate) enum Operand {
    /// An attribute of the certificate.
    Attr(Attr),
    /// A string literal from the filter.
    Literal(Box<str>),
}

impl Operand {
    #[inline]
    fn get<'a>(&'a self, attrs: &'a Attributes) -> &'a str {
        match self {
            Operand::Attr(attr) => attrs.get(*attr),
            Operand::Literal(literal) => literal,
        }
    }
}

/// A lowered boolean expression.
#[derive(Debug)]
pub(crate) enum Node {
    Const(bool),
    Not(Box<Node>),
    /// `a && b && ...`, flattened.
    All(Box<[Node]>),
    /// `a || b || ...`, flattened.
    Any(Box<[Node]>),
    Equals(Operand, Operand),
    NotEquals(Operand, Operand),
    In(Operand, Box<[Box<str>]>),
    StartsWith(Operand, Box<str>),
    EndsWith(Operand, Box<str>),
    Contains(Operand, Box<str>),
}

impl Node {
    /// Evaluates against one certificate's attributes. Never allocates.
    pub(crate) fn eval(&self, attrs: &Attributes) -> bool {
        match self {
            Node::Const(value) => *value,
            Node::Not(inner) => !inner.eval(attrs),
            Node::All(nodes) => nodes.iter().all(|node| node.eval(attrs)),
            Node::Any(nodes) => nodes.iter().any(|node| node.eval(attrs)),
            Node::Equals(a, b) => a.get(attrs) == b.get(attrs),
            Node::NotEquals(a, b) => a.get(attrs) != b.get(attrs),
            Node::In(needle, list) => {
                let needle = needle.get(attrs);
                list.iter().any(|item| **item == *needle)
            }
            Node::StartsWith(subject, prefix) => subject.get(attrs).starts_with(&**prefix),
            Node::EndsWith(subject, suffix) => subject.get(attrs).ends_with(&**suffix),
            Node::Contains(subject, part) => subject.get(attrs).contains(&**part),
        }
    }
}

/// Lowers a checked expression, or `None` if it uses anything outside the fast subset.
pub(crate) fn lower(expr: &IdedExpr) -> Option<Node> {
    match &expr.expr {
        Expr::Literal(LiteralValue::Boolean(value)) => Some(Node::Const(*value.inner())),
        Expr::Call(call) => {
            let args = call.args.as_slice();
            match (call.func_name.as_str(), call.target.as_deref(), args) {
                (operators::LOGICAL_NOT, None, [inner]) => Some(Node::Not(Box::new(lower(inner)?))),
                (operators::LOGICAL_AND, None, [_, _]) => {
                    let mut nodes = Vec::new();
                    flatten(expr, operators::LOGICAL_AND, &mut nodes)?;
                    Some(Node::All(nodes.into_boxed_slice()))
                }
                (operators::LOGICAL_OR, None, [_, _]) => {
                    let mut nodes = Vec::new();
                    flatten(expr, operators::LOGICAL_OR, &mut nodes)?;
                    Some(Node::Any(nodes.into_boxed_slice()))
                }
                (operators::EQUALS, None, [a, b]) => Some(Node::Equals(operand(a)?, operand(b)?)),
                (operators::NOT_EQUALS, None, [a, b]) => {
                    Some(Node::NotEquals(operand(a)?, operand(b)?))
                }
                (operators::IN, None, [needle, list]) => {
                    Some(Node::In(operand(needle)?, literal_list(list)?))
                }
                ("startsWith", Some(subject), [arg]) => {
                    Some(Node::StartsWith(operand(subject)?, literal(arg)?))
                }
                ("endsWith", Some(subject), [arg]) => {
                    Some(Node::EndsWith(operand(subject)?, literal(arg)?))
                }
                ("contains", Some(subject), [arg]) => {
                    Some(Node::Contains(operand(subject)?, literal(arg)?))
                }
                _ => None,
            }
        }
        _ => None,
    }
}

/// Collects the operands of a chain of the same binary operator (`a && b && c`).
fn flatten(expr: &IdedExpr, operator: &str, out: &mut Vec<Node>) -> Option<()> {
    match &expr.expr {
        Expr::Call(call)
            if call.func_name == operator && call.target.is_none() && call.args.len() == 2 =>
        {
            for arg in &call.args {
                flatten(arg, operator, out)?;
            }
            Some(())
        }
        _ => {
            out.push(lower(expr)?);
            Some(())
        }
    }
}

fn operand(expr: &IdedExpr) -> Option<Operand> {
    match &expr.expr {
        Expr::Ident(name) => STRING_IDENTIFIERS
            .iter()
            .find(|(known, _)| known == name)
            .map(|(_, attr)| Operand::Attr(*attr)),
        Expr::Select(select) if !select.test => match &select.operand.expr {
            Expr::Ident(root) if root == CERT => CERT_STRING_FIELDS
                .iter()
                .find(|(field, _)| *field == select.field)
                .map(|(_, attr)| Operand::Attr(*attr)),
            _ => None,
        },
        Expr::Literal(LiteralValue::String(_)) => literal(expr).map(Operand::Literal),
        _ => None,
    }
}

fn literal(expr: &IdedExpr) -> Option<Box<str>> {
    match &expr.expr {
        Expr::Literal(LiteralValue::String(value)) => Some(value.inner().into()),
        _ => None,
    }
}

fn literal_list(expr: &IdedExpr) -> Option<Box<[Box<str>]>> {
    match &expr.expr {
        // Optional elements (`[?x]`) are not literals; leave them to the interpreter.
        Expr::List(list) if list.optional_indices.is_empty() => {
            list.elements.iter().map(literal).collect()
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lowered(source: &str) -> Option<Node> {
        let program = cel::Env::stdlib().compile(source).unwrap();
        lower(program.expression())
    }

    #[test]
    fn the_confluent_subset_is_lowered() {
        for source in [
            r#"CN == "a""#,
            r#"CN != "a""#,
            r#"OU in ["a", "b"]"#,
            r#"OU in []"#,
            r#"SAN.startsWith("spiffe://")"#,
            r#"DN.endsWith(",O=Acme")"#,
            r#"SAN.contains("payments")"#,
            r#"!(CN == "a") && (O == "b" || true) && !false"#,
            r#"cert.dn == DN"#,
            r#""a" == "a""#,
        ] {
            assert!(lowered(source).is_some(), "{source} should be fast");
        }
    }

    #[test]
    fn anything_else_is_left_to_the_interpreter() {
        for source in [
            r#""payments" in cert.subject.OU"#,
            r#"cert.san.uri.exists(u, u.startsWith("spiffe://"))"#,
            r#"DN.matches("^CN=")"#,
            r#"CN.startsWith(OU)"#,
            r#"CN in ["a", 1]"#,
            r#"CN in [OU]"#,
            r#"size(CN) > 2"#,
            r#"CN == "a" && size(CN) > 0"#,
            r#"(CN == "a") == true"#,
        ] {
            assert!(lowered(source).is_none(), "{source} should not be fast");
        }
    }

    #[test]
    fn and_or_chains_are_flattened() {
        let Some(Node::All(nodes)) = lowered(r#"CN == "a" && O == "b" && OU == "c""#) else {
            panic!("expected a flattened &&");
        };
        assert_eq!(nodes.len(), 3);
        let Some(Node::Any(nodes)) = lowered(r#"CN == "a" || (O == "b" || OU == "c")"#) else {
            panic!("expected a flattened ||");
        };
        assert_eq!(nodes.len(), 3);
    }
}
