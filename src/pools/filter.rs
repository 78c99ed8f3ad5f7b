//! Compiled identity-pool filters.
//!
//! [`Filter::compile`] parses with cel's own grammar (so syntax errors, and their line and
//! column, are CEL's), checks names and obvious type errors ([`super::check`]), then lowers the
//! filter to the allocation-free fast path ([`super::fast`]) when it stays inside the
//! Confluent subset. Other filters run in the cel interpreter, over the same values.

use std::fmt;
use std::sync::{Arc, LazyLock};

use cel::{Context, Env, Program, Value};
use serde::{Serialize, Serializer};

use super::attributes::{Attributes, known_identifiers};
use super::{check, fast};

/// The standard CEL environment, built once: building it costs ~45 µs, far more than a filter.
static ENV: LazyLock<Arc<Env>> = LazyLock::new(|| Arc::new(Env::stdlib()));

/// Why a filter does not compile. Messages give the line and column (1-based, in characters)
/// wherever the problem has a place in the source.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FilterError {
    /// Not valid CEL.
    #[error("syntax error at line {line}, column {column}: {message}")]
    Syntax {
        message: String,
        line: usize,
        column: usize,
    },
    /// An identifier that is not one of the certificate attributes.
    #[error(
        "unknown identifier `{name}` at line {line}, column {column}{}; known: {}",
        suggestion.as_ref().map(|s| format!(" (identifiers are case-sensitive: did you mean `{s}`?)")).unwrap_or_default(),
        known_identifiers().join(", ")
    )]
    UnknownIdentifier {
        name: String,
        line: usize,
        column: usize,
        /// The known identifier that differs only in case, if any.
        suggestion: Option<String>,
    },
    /// A field of `cert`, `cert.subject`, `cert.issuer` or `cert.san` that does not exist.
    #[error(
        "unknown field `{field}` of `{path}` at line {line}, column {column}; known: {}",
        known.join(", ")
    )]
    UnknownField {
        path: String,
        field: String,
        line: usize,
        column: usize,
        known: Vec<&'static str>,
    },
    /// An operation that cannot work on the values it is given.
    #[error("type error at line {line}, column {column}: {message}")]
    Type {
        message: String,
        line: usize,
        column: usize,
    },
    /// Nesting (parentheses, `!`, calls) deeper than the CEL parser allows.
    #[error("the filter nests more than {limit} levels deep, more than the CEL parser allows")]
    TooDeep { limit: usize },
    /// The CEL compiler itself failed (it should not); the message says how.
    #[error("the CEL compiler failed: {0}")]
    Compiler(String),
    /// The filter is valid CEL but evaluates to something other than true or false.
    #[error("a filter must be a condition (bool), but this one evaluates to a {found}")]
    NotBool { found: &'static str },
}

/// The result of one filter against one certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FilterOutcome {
    Match,
    NoMatch,
    /// The filter is blank, and a blank filter never matches (Confluent's rule).
    Empty,
    /// The filter failed at run time (e.g. `DN.matches` with an invalid regex); this is a
    /// non-match.
    Error(String),
}

impl FilterOutcome {
    /// Whether the pool this filter belongs to applies.
    pub fn is_match(&self) -> bool {
        matches!(self, FilterOutcome::Match)
    }
}

/// A compiled filter. Cheap to clone (shared), `Send + Sync`.
#[derive(Clone)]
pub struct Filter {
    inner: Arc<Compiled>,
}

struct Compiled {
    source: String,
    plan: Plan,
}

enum Plan {
    /// Blank source.
    Empty,
    /// Inside the Confluent subset. Tests keep the program to compare both paths.
    Fast {
        node: fast::Node,
        #[cfg(test)]
        program: Program,
    },
    /// Needs the interpreter.
    Interpreted(Program),
}

impl Filter {
    /// Compiles `source`. A blank source compiles to a filter that never matches.
    ///
    /// Compilation runs on a short-lived thread with a large stack, because cel's parser
    /// recurses deeply enough to overflow an ordinary one on a nested filter.
    pub fn compile(source: &str) -> Result<Filter, FilterError> {
        let plan = if source.trim().is_empty() {
            Plan::Empty
        } else {
            let owned = source.to_owned();
            std::thread::Builder::new()
                .name("cel-compile".to_owned())
                .stack_size(COMPILE_STACK_BYTES)
                .spawn(move || plan(&owned))
                .map_err(|error| FilterError::Compiler(format!("cannot start a thread: {error}")))?
                .join()
                .map_err(|_| FilterError::Compiler("the CEL parser panicked".to_owned()))??
        };
        Ok(Filter {
            inner: Arc::new(Compiled {
                source: source.to_owned(),
                plan,
            }),
        })
    }

    /// The filter as written in the configuration.
    pub fn source(&self) -> &str {
        &self.inner.source
    }

    /// Whether the source is blank (such a filter never matches).
    pub fn is_empty(&self) -> bool {
        matches!(self.inner.plan, Plan::Empty)
    }

    /// Whether this filter needs the CEL interpreter (it is outside the fast subset).
    pub fn uses_interpreter(&self) -> bool {
        matches!(self.inner.plan, Plan::Interpreted(_))
    }

    /// Evaluates against one certificate.
    ///
    /// To evaluate many filters against the same certificate, use [`super::evaluate`], which
    /// shares the interpreter's context between them.
    pub fn evaluate(&self, attrs: &Attributes) -> FilterOutcome {
        self.evaluate_with(&mut Interpreter::new(attrs))
    }

    pub(crate) fn evaluate_with(&self, interpreter: &mut Interpreter<'_>) -> FilterOutcome {
        match &self.inner.plan {
            Plan::Empty => FilterOutcome::Empty,
            Plan::Fast { node, .. } => {
                if node.eval(interpreter.attrs) {
                    FilterOutcome::Match
                } else {
                    FilterOutcome::NoMatch
                }
            }
            Plan::Interpreted(program) => interpreter.run(program),
        }
    }

    /// Runs the filter in the interpreter even when it has a fast path (differential tests).
    #[cfg(test)]
    pub(crate) fn evaluate_interpreted(&self, attrs: &Attributes) -> FilterOutcome {
        let mut interpreter = Interpreter::new(attrs);
        match &self.inner.plan {
            Plan::Empty => FilterOutcome::Empty,
            Plan::Fast { program, .. } | Plan::Interpreted(program) => interpreter.run(program),
        }
    }
}

impl fmt::Debug for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let plan = match self.inner.plan {
            Plan::Empty => "empty",
            Plan::Fast { .. } => "fast",
            Plan::Interpreted(_) => "interpreter",
        };
        f.debug_struct("Filter")
            .field("source", &self.inner.source)
            .field("plan", &plan)
            .finish()
    }
}

/// Two filters are equal when their sources are: compilation is deterministic.
impl PartialEq for Filter {
    fn eq(&self, other: &Self) -> bool {
        self.inner.source == other.inner.source
    }
}

impl Eq for Filter {}

/// A filter serializes as its source.
impl Serialize for Filter {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.inner.source)
    }
}

/// The interpreter side of one certificate's evaluation: a cel context over the certificate's
/// variables, created on first use and reused for every later filter of the same evaluation.
pub(crate) struct Interpreter<'a> {
    attrs: &'a Attributes,
    context: Option<Context<'a, 'a>>,
}

impl<'a> Interpreter<'a> {
    pub(crate) fn new(attrs: &'a Attributes) -> Self {
        Interpreter {
            attrs,
            context: None,
        }
    }

    fn run(&mut self, program: &Program) -> FilterOutcome {
        let attrs = self.attrs;
        let context = self.context.get_or_insert_with(|| {
            let mut context = Context::with_env(Arc::clone(&ENV));
            context.set_variable_resolver(attrs.cel_variables());
            context
        });
        match program.execute(context) {
            Ok(Value::Bool(true)) => FilterOutcome::Match,
            Ok(Value::Bool(false)) => FilterOutcome::NoMatch,
            Ok(other) => FilterOutcome::Error(format!(
                "the filter evaluated to {}, not to true or false",
                other.type_of()
            )),
            Err(error) => FilterOutcome::Error(error.to_string()),
        }
    }
}

/// Stack for compiling one filter.
///
/// cel's ANTLR parser recurses once per nesting level and its frames are large: about 115 KiB
/// per level in a debug build, so 70 nested parentheses overflow an 8 MiB main thread (and a
/// 2 MiB tokio worker far sooner), aborting the process. Its own limit, 96 levels, only helps
/// if the stack can hold 96 levels. Only the pages actually touched are ever committed.
const COMPILE_STACK_BYTES: usize = 64 * 1024 * 1024;

/// cel's default parser recursion limit.
const CEL_MAX_NESTING: usize = 96;

/// Parse, check, lower.
fn plan(source: &str) -> Result<Plan, FilterError> {
    let program = ENV.compile(source).map_err(syntax_error)?;
    check::check(program.expression(), program.source_info(), source)?;
    Ok(match fast::lower(program.expression()) {
        Some(node) => Plan::Fast {
            node,
            #[cfg(test)]
            program,
        },
        None => Plan::Interpreted(program),
    })
}

fn syntax_error(errors: cel::ParseErrors) -> FilterError {
    if errors
        .errors
        .iter()
        .any(|error| error.msg.contains("Recursion limit"))
    {
        return FilterError::TooDeep {
            limit: CEL_MAX_NESTING,
        };
    }
    // Later errors are usually the parser recovering from the first one; report the first.
    match errors.errors.first() {
        Some(first) => FilterError::Syntax {
            message: first
                .msg
                .strip_prefix("Syntax error: ")
                .unwrap_or(&first.msg)
                .to_owned(),
            line: usize::try_from(first.pos.0).unwrap_or(0).max(1),
            column: usize::try_from(first.pos.1).unwrap_or(0).max(1),
        },
        None => FilterError::Syntax {
            message: "the CEL parser rejected the filter without saying why".to_owned(),
            line: 1,
            column: 1,
        },
    }
}
