//! Kafka error codes as an open newtype: the codes the proxy writes or reads have named
//! constants, and any other code round-trips and prints as Kafka names it.

use std::fmt;

use kafka_protocol::ResponseError;

/// An `error_code` field of a Kafka response (`ErrorCode::TOPIC_AUTHORIZATION_FAILED`).
///
/// kafka-protocol's message fields are plain `i16`: convert at that boundary (`.0`, `into()`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ErrorCode(pub i16);

macro_rules! error_codes {
    ($($(#[$doc:meta])* $constant:ident = $value:literal,)+) => {
        impl ErrorCode {
            $(
                $(#[$doc])*
                pub const $constant: ErrorCode = ErrorCode($value);
            )+

            /// The name of a code this module names (`TOPIC_AUTHORIZATION_FAILED`).
            fn own_name(self) -> Option<&'static str> {
                match self {
                    $(Self::$constant => Some(stringify!($constant)),)+
                    _ => None,
                }
            }
        }
    };
}

error_codes! {
    NONE = 0,
    /// Comes with a KIP-951 new-leader hint in Produce and Fetch answers.
    NOT_LEADER_OR_FOLLOWER = 6,
    COORDINATOR_NOT_AVAILABLE = 15,
    TOPIC_AUTHORIZATION_FAILED = 29,
    GROUP_AUTHORIZATION_FAILED = 30,
    CLUSTER_AUTHORIZATION_FAILED = 31,
    UNSUPPORTED_SASL_MECHANISM = 33,
    ILLEGAL_SASL_STATE = 34,
    UNSUPPORTED_VERSION = 35,
    TRANSACTIONAL_ID_AUTHORIZATION_FAILED = 53,
    /// The partitions of an AddPartitionsToTxn that were allowed but not added because another
    /// partition of the request was refused.
    OPERATION_NOT_ATTEMPTED = 55,
    SASL_AUTHENTICATION_FAILED = 58,
}

impl fmt::Display for ErrorCode {
    /// Kafka's name (`TOPIC_AUTHORIZATION_FAILED`), also for the codes only kafka-protocol
    /// knows; `error code 999` for the rest.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(name) = self.own_name() {
            return f.write_str(name);
        }
        match protocol_name(self.0) {
            Some(name) => f.write_str(&name),
            None => write!(f, "error code {}", self.0),
        }
    }
}

/// kafka-protocol's name of a code, in Kafka's spelling: its variants are CamelCase
/// (`NotLeaderOrFollower` → `NOT_LEADER_OR_FOLLOWER`).
fn protocol_name(code: i16) -> Option<String> {
    let known = match ResponseError::try_from_code(code)? {
        ResponseError::Unknown(_) => return None,
        known => known,
    };
    let mut name = String::new();
    for (i, c) in format!("{known:?}").chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            name.push('_');
        }
        name.push(c.to_ascii_uppercase());
    }
    Some(name)
}

impl fmt::Debug for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl From<i16> for ErrorCode {
    fn from(value: i16) -> Self {
        ErrorCode(value)
    }
}

impl From<ErrorCode> for i16 {
    fn from(code: ErrorCode) -> Self {
        code.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_codes_agree_with_the_protocol_crate() {
        for value in i16::MIN..=i16::MAX {
            let code = ErrorCode(value);
            if let Some(name) = code.own_name()
                && code != ErrorCode::NONE
            {
                assert_eq!(protocol_name(value).as_deref(), Some(name));
            }
        }
        assert_eq!(ErrorCode::NONE.to_string(), "NONE");
        assert_eq!(ResponseError::try_from_code(ErrorCode::NONE.0), None);
    }

    #[test]
    fn codes_without_a_constant_print_kafkas_name_or_their_number() {
        assert_eq!(ErrorCode(3).to_string(), "UNKNOWN_TOPIC_OR_PARTITION");
        assert_eq!(ErrorCode(-1).to_string(), "UNKNOWN_SERVER_ERROR");
        assert_eq!(ErrorCode(999).to_string(), "error code 999");
        assert_eq!(format!("{:?}", ErrorCode(999)), "error code 999");
        assert_eq!(
            format!("{:?}", ErrorCode::TOPIC_AUTHORIZATION_FAILED),
            "TOPIC_AUTHORIZATION_FAILED"
        );
        assert_eq!(i16::from(ErrorCode::from(29)), 29);
    }
}
