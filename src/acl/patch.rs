//! Response patches: what a check changes in the broker's answer to a narrowed request (the
//! denied entries added, a listing filtered), applied to the answer decoded once.
//!
//! A patch works on the decoded body and says whether it changed it, so the answer is encoded
//! again only when something did (the incremental-Fetch session check mostly changes nothing).

use bytes::Bytes;
use kafka_protocol::messages::ResponseKind;

use crate::kafka::{ApiKey, DecodedResponse, ProtocolError, ResponseBody};

/// Changes the broker's answer (decoded) before it goes to the client. A body of another api
/// than the request's is a [`ProtocolError::WrongBody`].
pub type ResponsePatch =
    Box<dyn FnOnce(&mut ResponseKind) -> Result<Patched, ProtocolError> + Send + Sync>;

/// Whether a patch changed the body (which must then be encoded again).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Patched {
    Unchanged,
    Changed,
}

impl Patched {
    pub fn is_changed(self) -> bool {
        self == Patched::Changed
    }

    /// Changed when either is.
    pub fn or(self, other: Patched) -> Patched {
        if self.is_changed() { self } else { other }
    }
}

/// A patch that lets `f` change a body of type `T`; it always counts as a change.
pub(crate) fn patch_body<T: ResponseBody>(
    f: impl FnOnce(&mut T) + Send + Sync + 'static,
) -> ResponsePatch {
    Box::new(move |kind: &mut ResponseKind| {
        f(T::of(kind)?);
        Ok(Patched::Changed)
    })
}

/// `patch` on a frame: the broker's answer to a request of `api_key` at `version` is decoded,
/// patched, and encoded again if the patch changed it (otherwise the frame goes on as it came).
pub fn apply_patch(
    patch: ResponsePatch,
    api_key: ApiKey,
    version: i16,
    frame: Bytes,
) -> Result<Bytes, ProtocolError> {
    let mut response = DecodedResponse::decode(api_key, version, &frame)?;
    match patch(&mut response.body)? {
        Patched::Changed => response.encode(),
        Patched::Unchanged => Ok(frame),
    }
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    reason = "in a test, a panic is the failure report"
)]
mod tests {
    use super::*;
    use kafka_protocol::messages::{ListGroupsResponse, MetadataResponse};

    #[test]
    fn a_patch_for_another_response_type_is_an_error_not_a_panic() {
        let patch = patch_body(|r: &mut ListGroupsResponse| r.groups.clear());
        let mut body = ResponseKind::Metadata(MetadataResponse::default());
        assert!(matches!(
            patch(&mut body),
            Err(ProtocolError::WrongBody {
                expected: "ListGroupsResponse"
            })
        ));
    }

    #[test]
    fn changed_wins() {
        use Patched::*;
        assert_eq!(Unchanged.or(Unchanged), Unchanged);
        assert_eq!(Unchanged.or(Changed), Changed);
        assert_eq!(Changed.or(Unchanged), Changed);
    }
}
