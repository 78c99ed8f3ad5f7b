//! The in-flight manager: what the client asked and in which order the answers are due.
//!
//! Kafka answers the requests of one connection in the order they were sent, and a response
//! does not say what it answers (only the correlation id; no api key). So the requests side
//! records, before a request leaves, what answer to expect ([`Asked`]: api key, version,
//! correlation id, and what the filters want changed in the answer), and the responses side
//! matches each broker frame to the front of that record. The same queue carries everything
//! else that must keep its place in the order: answers the proxy gives itself, `acks=0`
//! produces that get no answer, a refusal that ends the session once earlier answers are
//! delivered, and the proxy's own requests on the live connection ([`InFlightTx::quiesce`]
//! then [`InFlightTx::own_request`], as Kroxylicious' `sendRequest`): KIP-368
//! re-authentication is their one user.
//!
//! The queue is bounded (`limits.max_in_flight_requests`; `session::handoff`, which holds no
//! room while empty): when the broker falls behind, the requests side stops reading the client,
//! as a broker does with `queued.max.requests`.

use std::collections::VecDeque;
use std::time::Instant;

use bytes::Bytes;
use tokio::sync::oneshot;

use super::end::{SessionEnd, UpstreamFault};
use super::handoff::{self, Receiver, Sender, TryRecvError};
use crate::acl::ResponsePatch;
use crate::kafka::ApiKey;

/// A request forwarded to the broker, whose answer is due to the client.
pub(crate) struct Asked {
    pub api_key: ApiKey,
    pub api_version: i16,
    pub correlation_id: i32,
    /// When the request left for the broker (request latency metric).
    pub sent: Instant,
    /// What the request filters want changed in the answer (proxy ACLs narrowed the request).
    pub patch: Option<ResponsePatch>,
}

/// One entry of the queue, in request order.
enum Entry {
    /// The broker will answer this request.
    Upstream(Asked),
    /// The proxy answers itself; with `close`, the session ends this way once it is written.
    Local {
        frame: Bytes,
        close: Option<SessionEnd>,
    },
    /// A Produce with `acks=0`: no answer is due (see [`UnansweredProduce`]).
    NoResponse { correlation_id: i32 },
    /// The session ends with this reason once every earlier request is answered.
    Refused { reason: String },
    /// The requests side will send requests of its own and forwards nothing until
    /// [`Entry::Resume`]. Due once every earlier request is answered: then `free_id` gets a
    /// correlation id no answer still due can carry ([`ProxyCorrelationIds`]).
    Quiesce { free_id: oneshot::Sender<i32> },
    /// A request of the proxy's own: its answer goes back through `reply`, never to the client.
    Own {
        correlation_id: i32,
        reply: oneshot::Sender<Bytes>,
    },
    /// The proxy's own exchange is over; client requests follow.
    Resume,
}

/// The other side has ended; the session is over for its reason.
#[derive(Debug)]
pub(crate) struct Gone;

/// The requests side of the queue.
pub(crate) struct InFlightTx {
    /// Entries are boxed: the queue's room is a slot per entry (8 bytes, where an unboxed
    /// entry takes 160), and what a full queue's wait holds is the box.
    tx: Sender<Box<Entry>>,
}

/// The responses side of the queue, and the state only it keeps.
pub(crate) struct InFlightRx {
    rx: Receiver<Box<Entry>>,
    /// Entries taken off the channel, in request order; at most `limit` (the channel is only
    /// read while there is room).
    queue: VecDeque<Box<Entry>>,
    limit: usize,
    unanswered: UnansweredProduce,
    own_ids: ProxyCorrelationIds,
    /// The requests side has ended: no more entries will come.
    requests_done: bool,
    /// Between a due [`Entry::Quiesce`] and its [`Entry::Resume`]: the proxy's own exchange
    /// (re-authentication) is under way.
    quiesced: bool,
}

/// A queue of at most `limit` entries between the two sides of one session.
pub(crate) fn in_flight(limit: usize) -> (InFlightTx, InFlightRx) {
    // The handoff has room for at least one entry too.
    let limit = limit.max(1);
    let (tx, rx) = handoff::handoff(limit);
    (
        InFlightTx { tx },
        InFlightRx {
            rx,
            queue: VecDeque::new(),
            limit,
            unanswered: UnansweredProduce::default(),
            own_ids: ProxyCorrelationIds::default(),
            requests_done: false,
            quiesced: false,
        },
    )
}

/// An entry built and boxed before anything waits: a wait for room in the queue then holds
/// only the box (the requests loop's future, held by every idle session, is sized by its
/// largest wait).
pub(crate) struct Queued(Box<Entry>);

impl Queued {
    /// Expect the broker's answer to `asked`. Queued before the request is written, so the
    /// answer can never arrive first.
    pub fn asked(asked: Asked) -> Self {
        Self(Box::new(Entry::Upstream(asked)))
    }

    /// A request that gets no answer (`acks=0` produce).
    pub fn no_answer(correlation_id: i32) -> Self {
        Self(Box::new(Entry::NoResponse { correlation_id }))
    }

    /// The proxy's own answer, delivered in its place in the order.
    pub fn answer(frame: Bytes) -> Self {
        Self(Box::new(Entry::Local { frame, close: None }))
    }

    /// The proxy's own answer; once it is written the session ends with `end`.
    pub fn answer_and_close(frame: Bytes, end: SessionEnd) -> Self {
        let close = Some(end);
        Self(Box::new(Entry::Local { frame, close }))
    }

    /// End the session with `reason` once every earlier request is answered.
    pub fn refuse(reason: String) -> Self {
        Self(Box::new(Entry::Refused { reason }))
    }
}

impl InFlightTx {
    /// Queue `entry`, waiting while the queue is full.
    pub async fn push(&self, entry: Queued) -> Result<(), Gone> {
        self.tx.send(entry.0).await.map_err(|_| Gone)
    }

    /// Wait until every earlier request is answered; returns a correlation id for the proxy's
    /// own requests. Forward no client request until [`InFlightTx::resume`].
    pub async fn quiesce(&self) -> Result<oneshot::Receiver<i32>, Gone> {
        let (free_id, id) = oneshot::channel();
        self.push(Queued(Box::new(Entry::Quiesce { free_id })))
            .await?;
        Ok(id)
    }

    /// Expect the broker's answer to a request of the proxy's own (after [`Self::quiesce`]).
    pub async fn own_request(&self, correlation_id: i32) -> Result<oneshot::Receiver<Bytes>, Gone> {
        let (reply, answer) = oneshot::channel();
        let own = Entry::Own {
            correlation_id,
            reply,
        };
        self.push(Queued(Box::new(own))).await?;
        Ok(answer)
    }

    /// The proxy's own exchange is over.
    pub async fn resume(&self) -> Result<(), Gone> {
        self.push(Queued(Box::new(Entry::Resume))).await
    }
}

/// What is due to the client without waiting for the broker.
pub(crate) enum Due {
    /// Send this answer of the proxy's own.
    Send(Bytes),
    /// Send this answer, then end the session this way.
    SendAndClose(Bytes, SessionEnd),
    /// End the session: a request was refused.
    Refuse(String),
}

/// What a broker frame answered.
pub(crate) enum Answer {
    /// A client request: filter and deliver.
    Client(Asked, Bytes),
    /// A request of the proxy's own: handed back.
    Own,
    /// An answer to an `acks=0` produce that a Kafka-compatible broker sent anyway: dropped.
    Dropped,
}

impl InFlightRx {
    /// Whether the requests side has ended and every answer has been delivered.
    pub fn finished(&self) -> bool {
        self.requests_done && self.queue.is_empty()
    }

    /// Whether the requests side has ended (it will send nothing more).
    pub fn requests_done(&self) -> bool {
        self.requests_done
    }

    /// Whether another entry may be taken off the channel.
    pub fn has_room(&self) -> bool {
        !self.requests_done && self.queue.len() < self.limit
    }

    /// Entries still queued (for logs).
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// Whether the proxy's own exchange is under way (the broker closing now is its outcome,
    /// not a reason of its own).
    pub fn quiesced(&self) -> bool {
        self.quiesced
    }

    /// Take the next entry off the channel (only when [`Self::has_room`]). Cancel-safe.
    pub async fn take(&mut self) {
        match self.rx.recv().await {
            Some(entry) => self.queue.push_back(entry),
            None => self.requests_done = true,
        }
    }

    /// What is due at the front without the broker: the proxy's own answers and refusals are
    /// returned; `acks=0` markers, quiesce and resume are settled here.
    pub fn due(&mut self) -> Option<Due> {
        loop {
            match &**self.queue.front()? {
                Entry::Upstream(_) | Entry::Own { .. } => return None,
                Entry::NoResponse { correlation_id } => {
                    self.unanswered.push(*correlation_id);
                    self.queue.pop_front();
                }
                Entry::Resume => {
                    self.quiesced = false;
                    self.queue.pop_front();
                }
                Entry::Quiesce { .. } => {
                    if let Some(Entry::Quiesce { free_id }) = self.queue.pop_front().map(|e| *e) {
                        self.quiesced = true;
                        // Nobody waits if the requests side has ended.
                        let _ = free_id.send(self.own_ids.pick(&self.unanswered));
                    }
                }
                Entry::Local { .. } => {
                    let Some(Entry::Local { frame, close }) = self.queue.pop_front().map(|e| *e)
                    else {
                        return None;
                    };
                    return Some(match close {
                        Some(end) => Due::SendAndClose(frame, end),
                        None => Due::Send(frame),
                    });
                }
                Entry::Refused { .. } => {
                    let Some(Entry::Refused { reason }) = self.queue.pop_front().map(|e| *e) else {
                        return None;
                    };
                    return Some(Due::Refuse(reason));
                }
            }
        }
    }

    /// Match a broker `frame` carrying `correlation_id` to the request it answers. The entry is
    /// always queued before its request is written, but may still sit in the channel: what is
    /// there is taken first (settling the front as [`Self::due`] does, whose client-bound
    /// items are returned through `deliver` in order).
    pub fn answer(
        &mut self,
        correlation_id: i32,
        frame: Bytes,
        deliver: &mut Vec<Due>,
    ) -> Result<Answer, SessionEnd> {
        loop {
            while let Some(due) = self.due() {
                deliver.push(due);
            }
            if !self.queue.is_empty() {
                break;
            }
            match self.rx.try_recv() {
                Ok(entry) => self.queue.push_back(entry),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Closed) => {
                    self.requests_done = true;
                    break;
                }
            }
        }
        let got = correlation_id;
        match self.queue.front().map(|e| &**e) {
            Some(Entry::Upstream(asked)) if asked.correlation_id == got => {
                match self.queue.pop_front().map(|e| *e) {
                    Some(Entry::Upstream(asked)) => Ok(Answer::Client(asked, frame)),
                    _ => Err(UpstreamFault::Unsolicited(got).into()),
                }
            }
            Some(Entry::Own {
                correlation_id: expected,
                ..
            }) if *expected == got => {
                if let Some(Entry::Own { reply, .. }) = self.queue.pop_front().map(|e| *e) {
                    // The requests side may have given up (timeout): then nobody waits.
                    let _ = reply.send(frame);
                }
                Ok(Answer::Own)
            }
            _ if self.unanswered.take(got) => Ok(Answer::Dropped),
            Some(
                Entry::Upstream(Asked {
                    correlation_id: expected,
                    ..
                })
                | Entry::Own {
                    correlation_id: expected,
                    ..
                },
            ) => Err(UpstreamFault::CorrelationMismatch {
                expected: *expected,
                got,
            }
            .into()),
            _ => Err(UpstreamFault::Unsolicited(got).into()),
        }
    }

    /// The oldest request still waiting for the broker, for logs: "Metadata v12, correlation
    /// id 2, sent 1520 ms ago".
    pub fn oldest(&self) -> Option<String> {
        self.queue.iter().find_map(|entry| match &**entry {
            Entry::Upstream(asked) => Some(format!(
                "{} v{}, correlation id {}, sent {} ms ago",
                asked.api_key.label(),
                asked.api_version,
                asked.correlation_id,
                asked.sent.elapsed().as_millis()
            )),
            _ => None,
        })
    }
}

/// Correlation ids for the proxy's own requests on a live session (re-authentication).
///
/// Why they never equal a client id the broker may still answer: the proxy's requests leave
/// only once [`Entry::Quiesce`] reached the front of the queue — every earlier client request
/// that expects an answer has been answered — and no client request is forwarded until the
/// exchange is over. The only client ids still in flight are then those of recent `acks=0`
/// produce requests (a Kafka broker never answers them, tansu does), which
/// [`UnansweredProduce`] holds, and the id is picked outside that set. A client may use any
/// `i32`, negative ones included, so no range can be reserved without remapping every client
/// id on the hot path; checking the one set that matters is exact and costs nothing per frame.
/// One id serves a whole exchange: its steps are strictly sequential. Counting up from
/// `i32::MIN` merely keeps the proxy's requests easy to tell apart in broker logs from the
/// small positive ids clients usually use.
struct ProxyCorrelationIds {
    next: i32,
}

impl Default for ProxyCorrelationIds {
    fn default() -> Self {
        Self { next: i32::MIN }
    }
}

impl ProxyCorrelationIds {
    fn pick(&mut self, unanswered: &UnansweredProduce) -> i32 {
        // Ends within `UnansweredProduce::CAPACITY + 1` steps: the set is that small.
        loop {
            let id = self.next;
            self.next = self.next.wrapping_add(1);
            if !unanswered.contains(id) {
                return id;
            }
        }
    }
}

/// Correlation ids of recent `acks=0` produce requests.
///
/// Kafka brokers never answer them, but some Kafka-compatible brokers (tansu 0.6) do; such an
/// answer is dropped instead of being taken for a protocol error (a client would choke on it
/// too). Bounded: against a real broker the ids are never taken, and the oldest fall off.
#[derive(Default)]
struct UnansweredProduce {
    ids: VecDeque<i32>,
}

impl UnansweredProduce {
    const CAPACITY: usize = 1024;

    fn push(&mut self, correlation_id: i32) {
        if self.ids.len() == Self::CAPACITY {
            self.ids.pop_front();
        }
        self.ids.push_back(correlation_id);
    }

    fn contains(&self, correlation_id: i32) -> bool {
        self.ids.contains(&correlation_id)
    }

    /// Whether `correlation_id` is a recent acks=0 request; forgets it and every older one
    /// (answers come in request order).
    fn take(&mut self, correlation_id: i32) -> bool {
        match self.ids.iter().position(|&id| id == correlation_id) {
            Some(i) => {
                self.ids.drain(..=i);
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    reason = "in a test, a panic is the failure report"
)]
mod tests {
    use super::*;

    /// The queue's room is a slot per entry while requests are in flight: a slot must stay
    /// pointer-sized (an unboxed entry took 160 bytes).
    #[test]
    fn a_slot_of_the_in_flight_queue_is_pointer_sized() {
        fn slot<T>(_: &Sender<T>) -> usize {
            std::mem::size_of::<T>()
        }
        let (tx, _rx) = in_flight(8);
        assert_eq!(slot(&tx.tx), std::mem::size_of::<usize>());
    }

    fn asked(correlation_id: i32) -> Asked {
        Asked {
            api_key: ApiKey::METADATA,
            api_version: 12,
            correlation_id,
            sent: Instant::now(),
            patch: None,
        }
    }

    #[test]
    fn the_proxys_correlation_id_skips_every_unanswered_acks0_id() {
        let mut unanswered = UnansweredProduce::default();
        // A client that uses exactly the ids the proxy counts from, and a negative one.
        for id in (i32::MIN..i32::MIN + 5).chain([-1]) {
            unanswered.push(id);
        }
        let mut ids = ProxyCorrelationIds::default();
        assert_eq!(ids.pick(&unanswered), i32::MIN + 5);
        assert_eq!(ids.pick(&unanswered), i32::MIN + 6);
        // Once answered (and forgotten), an id is free again; the counter wraps past i32::MAX.
        let mut ids = ProxyCorrelationIds { next: i32::MAX };
        assert_eq!(ids.pick(&unanswered), i32::MAX);
        assert_eq!(ids.pick(&unanswered), i32::MIN + 5);
    }

    #[tokio::test]
    async fn answers_are_matched_in_request_order_and_local_answers_keep_their_place() {
        let (tx, mut rx) = in_flight(8);
        tx.push(Queued::asked(asked(1))).await.unwrap();
        tx.push(Queued::answer(Bytes::from_static(b"local")))
            .await
            .unwrap();
        tx.push(Queued::no_answer(7)).await.unwrap();
        tx.push(Queued::asked(asked(2))).await.unwrap();
        let mut deliver = Vec::new();
        assert!(matches!(
            rx.answer(1, Bytes::new(), &mut deliver).unwrap(),
            Answer::Client(
                Asked {
                    correlation_id: 1,
                    ..
                },
                _
            )
        ));
        assert!(deliver.is_empty());
        // The local answer is due before the broker's answer to 2; the acks=0 marker settles.
        assert!(matches!(
            rx.answer(2, Bytes::new(), &mut deliver).unwrap(),
            Answer::Client(
                Asked {
                    correlation_id: 2,
                    ..
                },
                _
            )
        ));
        assert!(matches!(deliver.as_slice(), [Due::Send(f)] if f == "local"));
        // A broker that answers the acks=0 produce anyway: dropped, not an error.
        assert!(matches!(
            rx.answer(7, Bytes::new(), &mut Vec::new()).unwrap(),
            Answer::Dropped
        ));
        drop(tx);
        rx.take().await;
        assert!(rx.finished());
    }

    #[tokio::test]
    async fn a_wrong_or_unsolicited_correlation_id_ends_the_session() {
        let (tx, mut rx) = in_flight(8);
        tx.push(Queued::asked(asked(5))).await.unwrap();
        let end = rx.answer(6, Bytes::new(), &mut Vec::new()).err().unwrap();
        assert_eq!(
            end.to_string(),
            "upstream answered correlation id 6, expected 5"
        );
        let (_tx, mut rx) = in_flight(8);
        let end = rx.answer(9, Bytes::new(), &mut Vec::new()).err().unwrap();
        assert_eq!(
            end.to_string(),
            "upstream sent a response (correlation id 9) to no request"
        );
    }

    #[tokio::test]
    async fn the_proxys_own_request_waits_for_earlier_answers_and_its_answer_comes_back() {
        let (tx, mut rx) = in_flight(8);
        tx.push(Queued::asked(asked(1))).await.unwrap();
        let mut free_id = tx.quiesce().await.unwrap();
        rx.take().await;
        rx.take().await;
        assert!(rx.due().is_none());
        // Not released while the client's request 1 is unanswered.
        assert!(free_id.try_recv().is_err());
        rx.answer(1, Bytes::new(), &mut Vec::new()).unwrap();
        assert!(rx.due().is_none());
        assert!(rx.quiesced());
        let id = free_id.await.unwrap();
        assert_eq!(id, i32::MIN);
        let reply = tx.own_request(id).await.unwrap();
        assert!(matches!(
            rx.answer(id, Bytes::from_static(b"sasl"), &mut Vec::new())
                .unwrap(),
            Answer::Own
        ));
        assert_eq!(reply.await.unwrap(), "sasl");
        tx.resume().await.unwrap();
        rx.take().await;
        assert!(rx.due().is_none());
        assert!(!rx.quiesced());
    }

    #[tokio::test(start_paused = true)]
    async fn the_queue_is_bounded() {
        let (tx, mut rx) = in_flight(2);
        for id in 0..2 {
            tx.push(Queued::asked(asked(id))).await.unwrap();
        }
        rx.take().await;
        rx.take().await;
        assert!(!rx.has_room());
        for id in 2..4 {
            tx.push(Queued::asked(asked(id))).await.unwrap();
        }
        // Queue and channel full: the next request waits (back-pressure on the client).
        let next = tx.push(Queued(Box::new(Entry::Resume)));
        let waited = tokio::time::timeout(std::time::Duration::from_secs(60), next).await;
        assert!(waited.is_err(), "a fifth entry fits in two and two");
    }
}
