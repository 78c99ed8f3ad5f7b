//! The request side of proxy ACLs: one small filter per API, each deciding from a decoded
//! request body what reaches the broker and what the client is told.
//!
//! A check has four outcomes ([`Action`]):
//!
//! - everything is allowed: the client's frame is forwarded **as it came** (the body was decoded
//!   only to read resource names; nothing is re-encoded);
//! - part is denied (some topics of a Produce, some groups of a DescribeGroups, …): a narrowed
//!   copy of the request goes upstream, and a [`ResponsePatch`] adds the denied entries, with
//!   the error a broker would give, to the broker's answer — the client sees one response, as
//!   from a broker enforcing the same ACLs;
//! - everything is denied: the proxy answers itself (the same patch applied to an empty
//!   response) and the broker never sees the request;
//! - the API is one the proxy cannot authorize: [`Action::Refuse`] (the connection is closed;
//!   such APIs are also hidden from ApiVersions when ACLs are on, see [`super::apis`]).
//!
//! Every denied resource becomes a [`Denial`] for the log and the `kafka.Authorization` audit
//! record. Bodies come from the client: they are decoded by kafka-protocol behind
//! `catch_unwind` (`kafka::codec`), and a body that does not decode is an error for this
//! connection only.

mod admin;
mod groups;
#[cfg(test)]
mod tests;
mod topics;
mod txn;

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::{self, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable};

use super::patch::{ResponsePatch, patch_body};
use super::permissions::Permissions;
use super::rules::{Operation, ResourceType};
use crate::kafka::codec::{decode_request_body, encode_response, reencode_request_body};
use crate::kafka::{ApiKey, ProtocolError, RequestHeader, ResponseBody};

/// What to do with one request.
pub enum Action {
    /// Send `frame` (or, when `None`, the client's frame untouched) to the broker, and pass its
    /// answer through `patch` when there is one.
    Forward {
        frame: Option<Bytes>,
        patch: Option<ResponsePatch>,
    },
    /// Answer the client without asking the broker; `None` when no answer is due (a Produce
    /// with `acks=0`).
    Answer(Option<Bytes>),
    /// The proxy cannot authorize this request: refuse it (with this reason).
    Refuse(String),
}

impl Action {
    /// Send the client's frame to the broker as it came, and its answer back as it comes.
    fn forward_untouched() -> Self {
        Action::Forward {
            frame: None,
            patch: None,
        }
    }
}

impl std::fmt::Debug for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Action::Forward { frame, patch } => f
                .debug_struct("Forward")
                .field("narrowed", &frame.is_some())
                .field("patched", &patch.is_some())
                .finish(),
            Action::Answer(frame) => f.debug_tuple("Answer").field(&frame.is_some()).finish(),
            Action::Refuse(reason) => f.debug_tuple("Refuse").field(reason).finish(),
        }
    }
}

/// One denied resource, for the log and the audit record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    /// The request's api key.
    pub api_key: ApiKey,
    pub resource_type: ResourceType,
    pub resource: String,
    pub operation: Operation,
}

/// The outcome of checking one request.
#[derive(Debug)]
pub struct Checked {
    pub action: Action,
    pub denials: Vec<Denial>,
}

impl Checked {
    fn forward() -> Self {
        Checked {
            action: Action::forward_untouched(),
            denials: Vec::new(),
        }
    }
}

/// Check one client request against `permissions`.
pub fn check_request(
    permissions: &Arc<Permissions>,
    header: &RequestHeader,
    frame: &Bytes,
) -> Result<Checked, ProtocolError> {
    let Some(key) = header.api_key.known() else {
        return Ok(Checked {
            action: Action::Refuse(format!(
                "api key {} is unknown to the proxy and cannot be authorized",
                header.api_key.0
            )),
            denials: Vec::new(),
        });
    };
    let mut req = Request {
        permissions,
        header,
        frame,
        key,
        denials: Vec::new(),
    };
    let action = match header.api_key {
        // Needs no authorization (Kafka checks none), but clients must only learn the APIs
        // they may use.
        ApiKey::API_VERSIONS => Action::Forward {
            frame: None,
            patch: Some(super::apis::api_versions_patch()),
        },
        // A version ApiVersions did not offer under ACLs (a client may send it anyway) is
        // refused, not guessed at: Produce v13 and Fetch v13+ name topics only by id (name-based
        // checks would see an empty name), AddPartitionsToTxn v4+ is the brokers' form.
        other
            if super::apis::range_with_acls(header.api_key)
                .is_some_and(|(min, max)| !(min..=max).contains(&header.api_version)) =>
        {
            Action::Refuse(format!(
                "{other:?} v{} is not available while proxy ACLs are enabled",
                header.api_version
            ))
        }
        ApiKey::DESCRIBE_CLUSTER => return Ok(Checked::forward()),
        ApiKey::PRODUCE => topics::produce(&mut req)?,
        ApiKey::FETCH => topics::fetch(&mut req)?,
        ApiKey::LIST_OFFSETS => topics::list_offsets(&mut req)?,
        ApiKey::METADATA => topics::metadata(&mut req)?,
        ApiKey::CREATE_TOPICS => topics::create_topics(&mut req)?,
        ApiKey::DELETE_TOPICS => topics::delete_topics(&mut req)?,
        ApiKey::OFFSET_COMMIT => groups::offset_commit(&mut req)?,
        ApiKey::OFFSET_FETCH => groups::offset_fetch(&mut req)?,
        ApiKey::FIND_COORDINATOR => groups::find_coordinator(&mut req)?,
        ApiKey::JOIN_GROUP => groups::join_group(&mut req)?,
        ApiKey::SYNC_GROUP => groups::sync_group(&mut req)?,
        ApiKey::HEARTBEAT => groups::heartbeat(&mut req)?,
        ApiKey::LEAVE_GROUP => groups::leave_group(&mut req)?,
        ApiKey::INIT_PRODUCER_ID => groups::init_producer_id(&mut req)?,
        ApiKey::DESCRIBE_GROUPS => admin::describe_groups(&mut req)?,
        ApiKey::LIST_GROUPS => admin::list_groups(&mut req)?,
        ApiKey::DELETE_GROUPS => admin::delete_groups(&mut req)?,
        ApiKey::OFFSET_DELETE => admin::offset_delete(&mut req)?,
        ApiKey::DELETE_RECORDS => admin::delete_records(&mut req)?,
        ApiKey::CREATE_PARTITIONS => admin::create_partitions(&mut req)?,
        ApiKey::OFFSET_FOR_LEADER_EPOCH => admin::offset_for_leader_epoch(&mut req)?,
        ApiKey::DESCRIBE_CONFIGS => admin::describe_configs(&mut req)?,
        ApiKey::ALTER_CONFIGS => admin::alter_configs(&mut req)?,
        ApiKey::INCREMENTAL_ALTER_CONFIGS => admin::incremental_alter_configs(&mut req)?,
        ApiKey::ADD_PARTITIONS_TO_TXN => txn::add_partitions_to_txn(&mut req)?,
        ApiKey::ADD_OFFSETS_TO_TXN => txn::add_offsets_to_txn(&mut req)?,
        ApiKey::END_TXN => txn::end_txn(&mut req)?,
        ApiKey::TXN_OFFSET_COMMIT => txn::txn_offset_commit(&mut req)?,
        other => Action::Refuse(format!(
            "{other:?} cannot be authorized by the proxy; it is not available while proxy ACLs \
             are enabled"
        )),
    };
    Ok(Checked {
        action,
        denials: req.denials,
    })
}

/// One request being checked: its bytes, its header, and the denials found so far.
pub(crate) struct Request<'a> {
    permissions: &'a Arc<Permissions>,
    header: &'a RequestHeader,
    frame: &'a Bytes,
    /// The request's api key as kafka-protocol knows it (checked requests have one).
    key: messages::ApiKey,
    denials: Vec<Denial>,
}

impl Request<'_> {
    fn version(&self) -> i16 {
        self.header.api_version
    }

    /// Decode the body as `T` at the request's version.
    fn decode<T: Decodable>(&self) -> Result<T, ProtocolError> {
        let offered = super::apis::range_with_acls(self.header.api_key)
            .is_some_and(|(min, max)| (min..=max).contains(&self.version()));
        if !offered {
            return Err(ProtocolError::UnsupportedVersion {
                api: crate::kafka::codec::type_name::<T>(),
                version: self.version(),
            });
        }
        decode_request_body(self.frame, self.header.header_len, self.version())
    }

    /// Is `op` on this resource allowed? A denial is recorded when not.
    fn allowed(&mut self, op: Operation, resource_type: ResourceType, name: &str) -> bool {
        if self.permissions.allows(op, resource_type, name) {
            return true;
        }
        self.deny(op, resource_type, name);
        false
    }

    fn allowed_cluster(&mut self, op: Operation) -> bool {
        self.allowed(
            op,
            ResourceType::Cluster,
            super::rules::CLUSTER_RESOURCE_NAME,
        )
    }

    fn deny(&mut self, op: Operation, resource_type: ResourceType, name: &str) {
        let denial = Denial {
            api_key: self.header.api_key,
            resource_type,
            resource: name.to_owned(),
            operation: op,
        };
        if !self.denials.contains(&denial) {
            self.denials.push(denial);
        }
    }

    /// The narrowed request: the client's header bytes, then `body`.
    fn narrowed<T: Encodable>(&self, body: &T) -> Result<Bytes, ProtocolError> {
        reencode_request_body(self.frame, self.header.header_len, body, self.version())
    }

    /// The proxy's own complete answer.
    fn answer<T: Encodable>(&self, body: &T) -> Result<Bytes, ProtocolError> {
        let header = ResponseHeader::default().with_correlation_id(self.header.correlation_id);
        let version = self.version();
        encode_response(
            &header,
            self.key.response_header_version(version),
            body,
            version,
        )
    }

    /// A patch that lets `f` change the broker's `T` answer (always re-encoded).
    fn patch<T: ResponseBody>(
        &self,
        f: impl FnOnce(&mut T) + Send + Sync + 'static,
    ) -> ResponsePatch {
        patch_body(f)
    }

    /// Removes from `entries` those `allowed` refuses, and returns them in their order; the
    /// allowed ones stay, in theirs. `allowed` records the denials (through [`Request::allowed`]);
    /// it is handed the request rather than capturing it, as this method holds it meanwhile.
    fn take_denied<T>(
        &mut self,
        entries: &mut Vec<T>,
        mut allowed: impl FnMut(&mut Self, &T) -> bool,
    ) -> Vec<T> {
        let Ok(denied) = self.try_take_denied(entries, |req, entry| {
            Ok::<_, Infallible>(allowed(req, entry))
        });
        denied
    }

    /// [`Request::take_denied`] for a check that can meet an entry it cannot judge at all: the
    /// first such entry's error ends it, and the entries after it are not checked (so not
    /// reported as denied either); `entries` is then left empty.
    fn try_take_denied<T, E>(
        &mut self,
        entries: &mut Vec<T>,
        mut allowed: impl FnMut(&mut Self, &T) -> Result<bool, E>,
    ) -> Result<Vec<T>, E> {
        let mut denied = Vec::new();
        let mut kept = Vec::with_capacity(entries.len());
        for entry in std::mem::take(entries) {
            if allowed(self, &entry)? {
                kept.push(entry);
            } else {
                denied.push(entry);
            }
        }
        *entries = kept;
        Ok(denied)
    }

    /// The whole of the usual per-entry check: each entry of the body's list `entries` is checked
    /// by `allowed`; the denied ones leave the request, and `denied_entry` turns each into the
    /// response entry a broker would give it, which goes into the response's list
    /// `response_entries` (see [`Request::split_denied`]).
    fn check_each<Body, T, D, Resp>(
        &mut self,
        mut body: Body,
        entries: impl FnOnce(&mut Body) -> &mut Vec<T>,
        allowed: impl FnMut(&mut Self, &T) -> bool,
        denied_entry: impl FnMut(T) -> D,
        response_entries: fn(&mut Resp) -> &mut Vec<D>,
    ) -> Result<Action, ProtocolError>
    where
        Body: Encodable,
        D: Send + Sync + 'static,
        Resp: ResponseBody + Encodable + Default,
    {
        let entries = entries(&mut body);
        let denied = self.take_denied(entries, allowed);
        let any_allowed = !entries.is_empty();
        let denied = denied.into_iter().map(denied_entry).collect();
        self.split_denied(&body, any_allowed, denied, response_entries)
    }

    /// [`Request::split`] for a check that denied the response entries `denied`: they are added
    /// to the response's list `response_entries`, next to the broker's answers for the allowed
    /// ones (`any_allowed`: some are left in `narrowed`).
    fn split_denied<Req, D, Resp>(
        &self,
        narrowed: &Req,
        any_allowed: bool,
        denied: Vec<D>,
        response_entries: fn(&mut Resp) -> &mut Vec<D>,
    ) -> Result<Action, ProtocolError>
    where
        Req: Encodable,
        D: Send + Sync + 'static,
        Resp: ResponseBody + Encodable + Default,
    {
        self.split(
            !denied.is_empty(),
            any_allowed,
            narrowed,
            move |r: &mut Resp| response_entries(r).extend(denied),
        )
    }

    /// The usual ending of a per-resource check: forward untouched when nothing was denied,
    /// answer alone when nothing is left to ask, otherwise forward the narrowed request and
    /// patch the denied entries into the answer.
    fn split<Req, Resp>(
        &self,
        any_denied: bool,
        any_allowed: bool,
        narrowed: &Req,
        add_denied: impl FnOnce(&mut Resp) + Send + Sync + 'static,
    ) -> Result<Action, ProtocolError>
    where
        Req: Encodable,
        Resp: ResponseBody + Encodable + Default,
    {
        if !any_denied {
            return Ok(Action::forward_untouched());
        }
        if !any_allowed {
            let mut body = Resp::default();
            add_denied(&mut body);
            return Ok(Action::Answer(Some(self.answer(&body)?)));
        }
        Ok(Action::Forward {
            frame: Some(self.narrowed(narrowed)?),
            patch: Some(self.patch(add_denied)),
        })
    }
}
