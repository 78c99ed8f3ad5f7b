//! Compile-time checks on a parsed filter: known identifiers and fields, and obvious type errors.
//!
//! CEL itself only finds an unknown identifier when it evaluates it, which for a filter means
//! on a client's connection, as a silent non-match. Everything a filter can name is known in
//! advance (see [`super::attributes`]), so names are checked here, at config load. The type
//! checks are deliberately shallow: they reject what is certainly wrong (`CN && true`,
//! `"x" in CN`, a filter that is a string) and let anything uncertain through to the runtime,
//! where an error is a non-match and a warning.

use cel::common::ast::{
    ComprehensionExpr, EntryExpr, Expr, IdedExpr, LiteralValue, SourceInfo, operators,
};

use super::attributes::{
    CERT, CERT_NAME_FIELDS, CERT_SAN_FIELD, CERT_STRING_FIELDS, NAME_KEYS, SAN_KEYS,
    STRING_IDENTIFIERS, cert_fields, known_identifiers,
};
use super::filter::FilterError;

/// What is statically known about a sub-expression's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ty {
    Bool,
    Str,
    Int,
    Uint,
    Double,
    Bytes,
    Null,
    /// A list; `strings` when every element is known to be a string.
    List {
        strings: bool,
    },
    Map,
    /// `cert`.
    Cert,
    /// `cert.subject` or `cert.issuer`.
    Name,
    /// `cert.san`.
    San,
    /// Unknown until run time.
    Dyn,
}

impl Ty {
    fn describe(self) -> &'static str {
        match self {
            Ty::Bool => "bool",
            Ty::Str => "string",
            Ty::Int => "int",
            Ty::Uint => "uint",
            Ty::Double => "double",
            Ty::Bytes => "bytes",
            Ty::Null => "null",
            Ty::List { .. } => "list",
            Ty::Map | Ty::Cert | Ty::Name | Ty::San => "map",
            Ty::Dyn => "dyn",
        }
    }

    fn of_literal(literal: &LiteralValue) -> Ty {
        match literal {
            LiteralValue::Boolean(_) => Ty::Bool,
            LiteralValue::Bytes(_) => Ty::Bytes,
            LiteralValue::Double(_) => Ty::Double,
            LiteralValue::Int(_) => Ty::Int,
            LiteralValue::Null => Ty::Null,
            LiteralValue::String(_) => Ty::Str,
            LiteralValue::UInt(_) => Ty::Uint,
        }
    }

    /// May be a bool at run time.
    fn may_be_bool(self) -> bool {
        matches!(self, Ty::Bool | Ty::Dyn)
    }

    fn may_be_string(self) -> bool {
        matches!(self, Ty::Str | Ty::Dyn)
    }

    /// Something `in` can look into: a list or a map.
    fn may_contain(self) -> bool {
        matches!(
            self,
            Ty::List { .. } | Ty::Map | Ty::Cert | Ty::Name | Ty::San | Ty::Dyn
        )
    }
}

/// The methods of the Confluent subset, to catch `startswith` and friends at config load.
const STRING_METHODS: [&str; 4] = ["startsWith", "endsWith", "contains", "matches"];

/// Checks a parsed filter; `source` and `info` give error positions.
pub(crate) fn check(expr: &IdedExpr, info: &SourceInfo, source: &str) -> Result<(), FilterError> {
    let mut checker = Checker {
        info,
        source,
        scopes: Vec::new(),
    };
    let ty = checker.ty(expr)?;
    if ty.may_be_bool() {
        Ok(())
    } else {
        Err(FilterError::NotBool {
            found: ty.describe(),
        })
    }
}

struct Checker<'a> {
    info: &'a SourceInfo,
    source: &'a str,
    /// Comprehension variables in scope, innermost last.
    scopes: Vec<(String, Ty)>,
}

impl Checker<'_> {
    fn ty(&mut self, expr: &IdedExpr) -> Result<Ty, FilterError> {
        match &expr.expr {
            Expr::Unspecified => Ok(Ty::Dyn),
            Expr::Literal(literal) => Ok(Ty::of_literal(literal)),
            Expr::Ident(name) => self.ident(expr, name),
            Expr::Select(select) => {
                let operand = self.ty(&select.operand)?;
                let field = self.field(expr, &select.operand, operand, &select.field)?;
                Ok(if select.test { Ty::Bool } else { field })
            }
            Expr::List(list) => {
                let mut strings = true;
                for element in &list.elements {
                    strings &= self.ty(element)? == Ty::Str;
                }
                Ok(Ty::List { strings })
            }
            Expr::Map(map) => {
                for entry in &map.entries {
                    if let EntryExpr::MapEntry(entry) = &entry.expr {
                        self.ty(&entry.key)?;
                        self.ty(&entry.value)?;
                    }
                }
                Ok(Ty::Map)
            }
            Expr::Struct(_) => Err(self.type_error(
                expr,
                "message construction is not supported in filters".to_owned(),
            )),
            Expr::Comprehension(comprehension) => self.comprehension(comprehension),
            Expr::Call(call) => {
                let target = match &call.target {
                    Some(target) => Some(self.ty(target)?),
                    None => None,
                };
                let mut args = Vec::with_capacity(call.args.len());
                for arg in &call.args {
                    args.push(self.ty(arg)?);
                }
                self.call(
                    expr,
                    &call.func_name,
                    call.target.as_deref(),
                    target,
                    &call.args,
                    &args,
                )
            }
        }
    }

    /// A comprehension (`all`, `exists`, `map`, …): its variables are in scope for the loop,
    /// and only the accumulator for the result.
    fn comprehension(&mut self, comprehension: &ComprehensionExpr) -> Result<Ty, FilterError> {
        let range = self.ty(&comprehension.iter_range)?;
        let element = match range {
            Ty::List { strings: true } => Ty::Str,
            // Iterating a map yields its keys, and ours are all strings.
            Ty::Cert | Ty::Name | Ty::San => Ty::Str,
            _ => Ty::Dyn,
        };
        let accumulator = self.ty(&comprehension.accu_init)?;
        let outer = self.scopes.len();
        match &comprehension.iter_var2 {
            // Two-variable form: index or key, then value.
            Some(second) => {
                self.scopes.push((comprehension.iter_var.clone(), Ty::Dyn));
                self.scopes.push((second.clone(), element));
            }
            None => self.scopes.push((comprehension.iter_var.clone(), element)),
        }
        self.scopes
            .push((comprehension.accu_var.clone(), accumulator));
        let steps = self
            .ty(&comprehension.loop_cond)
            .and_then(|_| self.ty(&comprehension.loop_step));
        // The result sees the accumulator but not the iteration variables.
        self.scopes.truncate(outer);
        steps?;
        self.scopes
            .push((comprehension.accu_var.clone(), accumulator));
        let result = self.ty(&comprehension.result);
        self.scopes.truncate(outer);
        result
    }

    fn ident(&self, expr: &IdedExpr, name: &str) -> Result<Ty, FilterError> {
        if let Some((_, ty)) = self.scopes.iter().rev().find(|(bound, _)| bound == name) {
            return Ok(*ty);
        }
        if STRING_IDENTIFIERS.iter().any(|(known, _)| *known == name) {
            return Ok(Ty::Str);
        }
        if name == CERT {
            return Ok(Ty::Cert);
        }
        let (line, column) = self.position(expr);
        let suggestion = known_identifiers()
            .into_iter()
            .find(|known| known.eq_ignore_ascii_case(name))
            .map(str::to_owned);
        Err(FilterError::UnknownIdentifier {
            name: name.to_owned(),
            line,
            column,
            suggestion,
        })
    }

    fn field(
        &self,
        expr: &IdedExpr,
        operand_expr: &IdedExpr,
        operand: Ty,
        field: &str,
    ) -> Result<Ty, FilterError> {
        let unknown = |known: Vec<&'static str>| {
            let (line, column) = self.position(expr);
            FilterError::UnknownField {
                path: path(operand_expr),
                field: field.to_owned(),
                line,
                column,
                known,
            }
        };
        match operand {
            Ty::Cert => {
                if CERT_NAME_FIELDS.contains(&field) {
                    Ok(Ty::Name)
                } else if field == CERT_SAN_FIELD {
                    Ok(Ty::San)
                } else if CERT_STRING_FIELDS.iter().any(|(name, _)| *name == field) {
                    Ok(Ty::Str)
                } else {
                    Err(unknown(cert_fields()))
                }
            }
            Ty::Name if NAME_KEYS.contains(&field) => Ok(Ty::List { strings: true }),
            Ty::Name => Err(unknown(NAME_KEYS.to_vec())),
            Ty::San if SAN_KEYS.contains(&field) => Ok(Ty::List { strings: true }),
            Ty::San => Err(unknown(SAN_KEYS.to_vec())),
            Ty::Map | Ty::Dyn => Ok(Ty::Dyn),
            other => Err(self.type_error(
                expr,
                format!(
                    "`{}` is a {} and has no field `{field}`",
                    path(operand_expr),
                    other.describe()
                ),
            )),
        }
    }

    fn call(
        &self,
        expr: &IdedExpr,
        function: &str,
        target_expr: Option<&IdedExpr>,
        target: Option<Ty>,
        arg_exprs: &[IdedExpr],
        args: &[Ty],
    ) -> Result<Ty, FilterError> {
        match (function, target, args) {
            (operators::LOGICAL_AND | operators::LOGICAL_OR | operators::LOGICAL_NOT, None, _) => {
                for (arg_expr, arg) in arg_exprs.iter().zip(args) {
                    self.expect_bool(arg_expr, *arg)?;
                }
                Ok(Ty::Bool)
            }
            (operators::NOT_STRICTLY_FALSE, None, _)
            | (operators::EQUALS | operators::NOT_EQUALS, None, _)
            | (
                operators::LESS
                | operators::LESS_EQUALS
                | operators::GREATER
                | operators::GREATER_EQUALS,
                None,
                _,
            ) => Ok(Ty::Bool),
            (operators::IN, None, [_, container]) => self.membership(&arg_exprs[1], *container),
            (operators::CONDITIONAL, None, [condition, then, otherwise]) => {
                self.expect_bool(&arg_exprs[0], *condition)?;
                Ok(if then == otherwise { *then } else { Ty::Dyn })
            }
            (operators::INDEX, None, [container, _]) => {
                self.index(expr, &arg_exprs[0], *container, &arg_exprs[1])
            }
            (operators::ADD, None, [a, b]) if a == b => Ok(*a),
            ("size", _, _) => Ok(Ty::Int),
            (method, Some(target), _) if STRING_METHODS.contains(&method) => {
                let receiver = target_expr.unwrap_or(expr);
                self.string_method(expr, method, receiver, target, arg_exprs, args)
            }
            (name, _, _) => self.other_function(expr, name),
        }
    }

    /// `x in container`: the right side must be something `in` can look into.
    fn membership(&self, container_expr: &IdedExpr, container: Ty) -> Result<Ty, FilterError> {
        if container.may_contain() {
            Ok(Ty::Bool)
        } else {
            Err(self.type_error(
                container_expr,
                format!(
                    "`in` needs a list or a map on its right, found a {}",
                    container.describe()
                ),
            ))
        }
    }

    /// `receiver.method(arg)` for one of [`STRING_METHODS`]: a string receiver and one
    /// string argument.
    fn string_method(
        &self,
        expr: &IdedExpr,
        method: &str,
        receiver: &IdedExpr,
        target: Ty,
        arg_exprs: &[IdedExpr],
        args: &[Ty],
    ) -> Result<Ty, FilterError> {
        if !target.may_be_string() {
            return Err(self.type_error(
                receiver,
                format!(
                    "`.{method}()` applies to strings, but `{}` is a {}",
                    path(receiver),
                    target.describe()
                ),
            ));
        }
        match args {
            [arg] if arg.may_be_string() => Ok(Ty::Bool),
            [arg] => Err(self.type_error(
                &arg_exprs[0],
                format!("`.{method}()` takes a string, found a {}", arg.describe()),
            )),
            _ => Err(self.type_error(
                expr,
                format!("`.{method}()` takes one argument, found {}", args.len()),
            )),
        }
    }

    /// Any other function: unknown until run time, unless it is a likely typo of a method
    /// filters use, e.g. `startswith`.
    fn other_function(&self, expr: &IdedExpr, name: &str) -> Result<Ty, FilterError> {
        if let Some(known) = STRING_METHODS
            .iter()
            .find(|known| known.eq_ignore_ascii_case(name))
        {
            return Err(self.type_error(
                expr,
                format!("unknown function `{name}`; did you mean `{known}`?"),
            ));
        }
        Ok(Ty::Dyn)
    }

    fn index(
        &self,
        expr: &IdedExpr,
        container_expr: &IdedExpr,
        container: Ty,
        key_expr: &IdedExpr,
    ) -> Result<Ty, FilterError> {
        match (container, &key_expr.expr) {
            (Ty::List { strings: true }, _) => Ok(Ty::Str),
            (Ty::Cert | Ty::Name | Ty::San, Expr::Literal(LiteralValue::String(key))) => {
                self.field(expr, container_expr, container, key.inner())
            }
            (Ty::Str | Ty::Bool | Ty::Int | Ty::Uint | Ty::Double | Ty::Null, _) => Err(self
                .type_error(
                    expr,
                    format!("a {} cannot be indexed", container.describe()),
                )),
            _ => Ok(Ty::Dyn),
        }
    }

    fn expect_bool(&self, expr: &IdedExpr, ty: Ty) -> Result<(), FilterError> {
        if ty.may_be_bool() {
            Ok(())
        } else {
            Err(self.type_error(
                expr,
                format!(
                    "expected a condition (bool), but `{}` is a {}",
                    path(expr),
                    ty.describe()
                ),
            ))
        }
    }

    fn type_error(&self, expr: &IdedExpr, message: String) -> FilterError {
        let (line, column) = self.position(expr);
        FilterError::Type {
            message,
            line,
            column,
        }
    }

    /// 1-based line and column (in characters) of `expr` in the source.
    fn position(&self, expr: &IdedExpr) -> (usize, usize) {
        let offset = self
            .info
            .offset_for(expr.id)
            .map_or(0, |(start, _)| start as usize);
        line_column(self.source, offset)
    }
}

/// 1-based line and column, in characters, of byte `offset` in `source`.
pub(crate) fn line_column(source: &str, offset: usize) -> (usize, usize) {
    let before = source.get(..offset).unwrap_or(source);
    let line_start = before.rfind('\n').map_or(0, |newline| newline + 1);
    let line = before.matches('\n').count() + 1;
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

/// A short rendering of an expression for messages: the dotted name when it is one.
fn path(expr: &IdedExpr) -> String {
    match &expr.expr {
        Expr::Ident(name) => name.clone(),
        Expr::Select(select) if !select.test => {
            format!("{}.{}", path(&select.operand), select.field)
        }
        Expr::Literal(LiteralValue::String(value)) => format!("{:?}", value.inner()),
        Expr::Literal(LiteralValue::Int(value)) => value.inner().to_string(),
        Expr::Literal(LiteralValue::Boolean(value)) => value.inner().to_string(),
        _ => "this expression".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_count_characters_not_bytes() {
        assert_eq!(line_column("é == x", 3), (1, 3));
        assert_eq!(line_column("é == x", 6), (1, 6));
        assert_eq!(line_column("a &&\n  b", 7), (2, 3));
        assert_eq!(line_column("", 0), (1, 1));
    }
}
